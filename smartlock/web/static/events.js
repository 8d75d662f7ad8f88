import { api, el, pct, clock, timeAgo, shell, poll, lightbox, KIND_LABELS } from "/static/common.js";

shell("events");

const list = document.getElementById("events");
const more = document.getElementById("more");
const personSelect = document.getElementById("person");
const kindSelect = document.getElementById("kind");
let nextBefore = null;

const params = new URLSearchParams(location.search);
if (params.get("kind")) kindSelect.value = params.get("kind");

function row(event) {
  const thumb = event.thumb
    ? el("img", { class: "thumb", src: event.thumb, alt: `frame of ${event.person || "the event"}`, loading: "lazy",
      onclick: () => lightbox(event.frame) })
    : el("div", { class: "thumb empty" }, "no frame");
  const who = event.kind === "stranger" ? "Unknown person" : event.kind === "lock" ? "Dashboard" : (event.person || "–");
  const facts = [];
  if (event.confidence !== null && event.confidence !== undefined) facts.push(`confidence ${pct(event.confidence, 1)}`);
  const closest = event.details && event.details.best_label;
  if (event.kind === "stranger" && closest && closest !== "unknown") facts.push(`closest: ${closest}`);
  if (event.count > 1) facts.push(`seen ${event.count}× until ${clock(event.last_time)}`);
  return el("li", { "data-kind": event.kind, "data-person": event.person || "" },
    thumb,
    el("div", {},
      el("div", {}, el("span", { class: `badge ${event.kind}` }, KIND_LABELS[event.kind] || event.kind), " ",
        el("span", { class: "who" }, who)),
      el("div", { class: "muted small" }, facts.join(" · "))),
    el("div", { class: "when" }, el("div", {}, clock(event.time)), el("div", {}, timeAgo(event.time))));
}

function query(before) {
  const q = new URLSearchParams({ limit: "30" });
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
// refresh the first page while the user has not paged on
poll(async () => { if (!nextBefore || list.children.length <= 30) await load(); }, 3000);

// -- door audit ------------------------------------------------------------------------------------
async function loadAudit() {
  const data = await api("/api/door/events?limit=100");
  document.getElementById("audit").replaceChildren(...data.events.map((e) => el("tr", {},
    el("td", {}, clock(typeof e.time === "number" ? e.time : Date.parse(e.time) / 1000)),
    el("td", {}, e.action || ""), el("td", {}, `${e.outcome || ""}${e.status ? ` (${e.status})` : ""}`),
    el("td", {}, e.person || e.key_id || ""), el("td", {}, e.client || ""), el("td", {}, e.reason || ""))));
}

for (const tab of document.querySelectorAll(".tabs button")) {
  tab.addEventListener("click", () => {
    for (const other of document.querySelectorAll(".tabs button")) other.classList.toggle("active", other === tab);
    document.getElementById("timeline-tab").classList.toggle("hidden", tab.dataset.tab !== "timeline");
    document.getElementById("audit-tab").classList.toggle("hidden", tab.dataset.tab !== "audit");
    if (tab.dataset.tab === "audit") loadAudit().catch(() => {});
  });
}
