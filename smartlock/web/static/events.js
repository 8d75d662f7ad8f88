import { api, el, pct, clock, timeAgo, shell, poll, KIND_LABELS } from "/static/common.js";

shell("events");

const list = document.getElementById("events");
const more = document.getElementById("more");
const personSelect = document.getElementById("person");
const kindSelect = document.getElementById("kind");
const sinceInput = document.getElementById("since");
const untilInput = document.getElementById("until");
const periodError = document.getElementById("period-error");
let nextBefore = null;
const expanded = new Set(); // visits the user opened (by their newest unlock's id), kept across refreshes

const params = new URLSearchParams(location.search);
if (params.get("kind")) kindSelect.value = params.get("kind");

// -- the frame viewer: the picture with each face's box, name, confidence (and liveness verdict) ------------
const viewer = document.getElementById("viewer");
const viewerImg = document.getElementById("viewer-img");
const viewerMarks = document.getElementById("viewer-marks");
const viewerFaces = document.getElementById("viewer-faces");
const viewerClose = document.getElementById("viewer-close");
const SVG = "http://www.w3.org/2000/svg";
let opener = null;

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function livenessText(liveness) {
  if (liveness === undefined || liveness === null) return "";
  if (typeof liveness === "boolean") return liveness ? "live" : "NOT LIVE";
  if (typeof liveness === "object") {
    const live = liveness.live ?? liveness.is_live ?? liveness.verdict;
    const score = typeof liveness.score === "number" ? ` ${pct(liveness.score)}` : "";
    if (typeof live === "boolean") return `${live ? "live" : "NOT LIVE"}${score}`;
    if (typeof live === "string") return `${live}${score}`;
    return score.trim();
  }
  return String(liveness);
}

function faceLabel(face) {
  const name = face.label === "unknown" ? "unknown" : face.label;
  const live = livenessText(face.liveness);
  return `${name} ${pct(face.confidence, 1)}${live ? ` · ${live}` : ""}`;
}

function drawFaces(marks) {
  viewerMarks.replaceChildren();
  viewerFaces.replaceChildren();
  const width = marks.width || viewerImg.naturalWidth;
  const height = marks.height || viewerImg.naturalHeight;
  if (!width || !height) return;
  viewerMarks.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const stroke = Math.max(2, Math.round(width / 320));
  const font = Math.max(12, Math.round(width / 45));
  for (const face of marks.faces || []) {
    const b = face.box;
    const known = face.label && face.label !== "unknown";
    const spoof = face.liveness !== undefined && livenessText(face.liveness).startsWith("NOT");
    const cls = spoof ? "spoof" : known ? "known" : "unknown";
    const label = faceLabel(face);
    viewerMarks.append(
      svg("rect", { x: b.left, y: b.top, width: b.right - b.left, height: b.bottom - b.top, class: `box ${cls}`,
        "stroke-width": stroke }),
      svg("text", { x: b.left, y: Math.max(font, b.top - stroke * 2), class: `tag ${cls}`, "font-size": font }, label));
    viewerFaces.append(el("li", { class: cls }, label));
  }
  if (!(marks.faces || []).length) viewerFaces.append(el("li", { class: "muted" }, "no face boxes saved with this frame"));
}

async function openViewer(event, from) {
  opener = from || document.activeElement;
  const who = event.kind === "stranger" ? "Unknown person" : (event.person || "");
  document.getElementById("viewer-title").textContent =
    `${KIND_LABELS[event.kind] || event.kind}${who ? ` · ${who}` : ""} · ${clock(event.time)}`;
  viewerMarks.replaceChildren();
  viewerFaces.replaceChildren();
  viewerImg.src = event.frame;
  viewer.classList.remove("hidden");
  viewerClose.focus();
  let marks = { width: 0, height: 0, faces: [] };
  try { if (event.faces) marks = await api(event.faces); } catch (err) { /* the picture alone */ }
  if (viewerImg.complete) drawFaces(marks);
  else viewerImg.onload = () => drawFaces(marks);
}

function closeViewer() {
  if (viewer.classList.contains("hidden")) return;
  viewer.classList.add("hidden");
  viewerImg.removeAttribute("src");
  if (opener && opener.focus) opener.focus();
  opener = null;
}

viewerClose.addEventListener("click", closeViewer);
viewer.addEventListener("click", (e) => { if (e.target === viewer) closeViewer(); });
document.addEventListener("keydown", (e) => {
  if (viewer.classList.contains("hidden")) return;
  if (e.key === "Escape") { e.preventDefault(); closeViewer(); }
  if (e.key === "Tab") { e.preventDefault(); viewerClose.focus(); } // the dialog's one control keeps focus
});

// -- the timeline, unlocks grouped per visit ------------------------------------------------------------
function thumbOf(event) {
  if (!event.thumb) return el("div", { class: "thumb empty" }, "no frame");
  const button = el("button", { type: "button", class: "thumb-button", "aria-label": `show the frame of ${event.person || "the event"}` },
    el("img", { class: "thumb", src: event.thumb, alt: "", loading: "lazy" }));
  button.addEventListener("click", () => openViewer(event, button));
  return button;
}

function hhmm(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function row(event) {
  const who = event.kind === "stranger" ? "Unknown person" : event.kind === "lock" ? "Dashboard" : (event.person || "–");
  const facts = [];
  const visit = event.visit;
  if (visit) facts.push(`${visit.count} unlocks, ${hhmm(visit.first_time)}–${hhmm(visit.last_time)}`);
  if (event.confidence !== null && event.confidence !== undefined) facts.push(`confidence ${pct(event.confidence, 1)}`);
  const closest = event.details && event.details.best_label;
  if (event.kind === "stranger" && closest && closest !== "unknown") facts.push(`closest: ${closest}`);
  if (event.count > 1) facts.push(`seen ${event.count}× until ${clock(event.last_time)}`);
  const title = el("div", {}, el("span", { class: `badge ${event.kind}` }, KIND_LABELS[event.kind] || event.kind), " ",
    el("span", { class: "who" }, who), visit ? el("span", { class: "times" }, ` ×${visit.count}`) : null);
  const body = el("div", {}, title, el("div", { class: "muted small" }, facts.join(" · ")));
  const item = el("li", { "data-kind": event.kind, "data-person": event.person || "", class: visit ? "visit" : "" },
    thumbOf(event), body,
    el("div", { class: "when" }, el("div", {}, clock(visit ? visit.last_time : event.time)),
      el("div", {}, timeAgo(visit ? visit.last_time : event.time))));
  if (visit) {
    const open = expanded.has(event.id);
    const nested = el("ul", { class: `timeline nested${open ? "" : " hidden"}`, id: `visit-${event.id}` },
      visit.unlocks.map((unlock) => el("li", {}, thumbOf(unlock),
        el("div", { class: "small" }, `confidence ${pct(unlock.confidence, 1)}`),
        el("div", { class: "when small" }, clock(unlock.time)))));
    const toggle = el("button", { type: "button", class: "link small", "aria-expanded": String(open),
      "aria-controls": `visit-${event.id}` }, open ? "Hide the unlocks" : `Show the ${visit.count} unlocks`);
    toggle.addEventListener("click", () => {
      const now = nested.classList.toggle("hidden") === false;
      if (now) expanded.add(event.id); else expanded.delete(event.id);
      toggle.setAttribute("aria-expanded", String(now));
      toggle.textContent = now ? "Hide the unlocks" : `Show the ${visit.count} unlocks`;
    });
    body.append(toggle, nested);
  }
  return item;
}

function query(before) {
  const q = new URLSearchParams({ limit: "30", group: "visits" });
  if (personSelect.value) q.set("person", personSelect.value);
  if (kindSelect.value) q.set("kind", kindSelect.value);
  if (before) q.set("before", before);
  return `/api/events?${q}`;
}

function fillPeople(people) {
  const chosen = personSelect.value;
  personSelect.replaceChildren(el("option", { value: "" }, "Everyone"),
    ...people.map((name) => el("option", { value: name }, name)));
  personSelect.value = people.includes(chosen) ? chosen : "";
}

async function load() {
  const data = await api(query());
  fillPeople(data.people);
  list.replaceChildren(...(data.events.length ? data.events.map(row) : [el("li", { class: "empty-state" }, "No events match.")]));
  nextBefore = data.next_before;
  more.classList.toggle("hidden", !nextBefore);
  document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

more.addEventListener("click", async () => {
  const data = await api(query(nextBefore));
  list.append(...data.events.map(row));
  nextBefore = data.next_before;
  more.classList.toggle("hidden", !nextBefore);
});
personSelect.addEventListener("change", load);
kindSelect.addEventListener("change", load);
// refresh the first page while the user has not paged on and no frame is open
poll(async () => { if (viewer.classList.contains("hidden") && (!nextBefore || list.children.length <= 30)) await load(); }, 3000);

// -- the period (local days) and the CSV exports --------------------------------------------------------
function period() {
  // a chosen day is the user's local day: from its midnight to the next one, sent as UTC ISO 8601
  const q = new URLSearchParams();
  if (sinceInput.value) q.set("since", new Date(`${sinceInput.value}T00:00:00`).toISOString());
  if (untilInput.value) {
    const end = new Date(`${untilInput.value}T00:00:00`);
    end.setDate(end.getDate() + 1);
    q.set("until", end.toISOString());
  }
  return q;
}

function showPeriodError(message) {
  periodError.textContent = message || "";
  for (const input of [sinceInput, untilInput]) input.setAttribute("aria-invalid", message ? "true" : "false");
}

async function download(path) {
  let q;
  try { q = period(); } catch (err) { showPeriodError("choose valid dates"); return; }
  const response = await fetch(`${path}?${q}`, { credentials: "same-origin" });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).message || message; } catch (err) { /* not JSON */ }
    showPeriodError(message);
    return;
  }
  showPeriodError("");
  const disposition = response.headers.get("content-disposition") || "";
  const name = (disposition.match(/filename="([^"]+)"/) || [])[1] || "smartlock.csv";
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

for (const button of document.querySelectorAll("[data-export]")) {
  button.addEventListener("click", () => download(button.dataset.export));
}
document.getElementById("period").addEventListener("submit", (e) => e.preventDefault());
for (const input of [sinceInput, untilInput]) {
  input.addEventListener("change", () => {
    showPeriodError(sinceInput.value && untilInput.value && untilInput.value < sinceInput.value ? "“To” is before “From”" : "");
    if (!document.getElementById("activity-tab").classList.contains("hidden")) loadActivity().catch(() => {});
  });
}

// -- door audit ------------------------------------------------------------------------------------
async function loadAudit() {
  const data = await api("/api/door/events?limit=100");
  document.getElementById("audit").replaceChildren(...data.events.map((e) => el("tr", {},
    el("td", {}, clock(typeof e.time === "number" ? e.time : Date.parse(e.time) / 1000)),
    el("td", {}, e.action || ""), el("td", {}, `${e.outcome || ""}${e.status ? ` (${e.status})` : ""}`),
    el("td", {}, e.person || e.key_id || ""), el("td", {}, e.client || ""), el("td", {}, e.reason || ""))));
}

// -- activity: what users did (GET /api/audit: {"actions": [{id, time, user, action, details}]}) ------------
function seconds(time) { return typeof time === "number" ? time : Date.parse(time) / 1000; }

function detailsText(details) {
  if (details === null || details === undefined) return "";
  if (typeof details !== "object") return String(details);
  return Object.entries(details).map(([key, value]) =>
    `${key}: ${typeof value === "object" ? JSON.stringify(value) : value}`).join(", ");
}

async function loadActivity() {
  const q = new URLSearchParams({ limit: "200" });
  const chosen = period();
  if (chosen.get("since")) q.set("since", String(Date.parse(chosen.get("since")) / 1000));
  if (chosen.get("until")) q.set("until", String(Date.parse(chosen.get("until")) / 1000));
  const missing = document.getElementById("activity-missing");
  let data;
  try {
    data = await api(`/api/audit?${q}`);
  } catch (err) {
    missing.textContent = err.status === 404 ? "This dashboard keeps no record of user actions yet." : err.message;
    missing.classList.remove("hidden");
    return;
  }
  missing.classList.add("hidden");
  const rows = (data.actions || []).map((a) => el("tr", {},
    el("td", {}, clock(seconds(a.time))), el("td", {}, a.user || "–"), el("td", {}, a.action || ""),
    el("td", {}, detailsText(a.details))));
  document.getElementById("activity").replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "4", class: "muted" }, "Nothing in this period."))]));
}

const TABS = ["timeline", "audit", "activity"];
for (const tab of document.querySelectorAll(".tabs button")) {
  tab.addEventListener("click", () => {
    for (const other of document.querySelectorAll(".tabs button")) {
      other.classList.toggle("active", other === tab);
      other.setAttribute("aria-selected", String(other === tab));
    }
    for (const name of TABS) document.getElementById(`${name}-tab`).classList.toggle("hidden", tab.dataset.tab !== name);
    if (tab.dataset.tab === "audit") loadAudit().catch(() => {});
    if (tab.dataset.tab === "activity") loadActivity().catch(() => {});
  });
}
