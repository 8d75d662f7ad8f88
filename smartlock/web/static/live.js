import { api, el, pct, clock, timeAgo, toast, shell, poll, KIND_LABELS } from "/static/common.js";

shell("live");

const img = document.getElementById("stream");
// the engine's analysed frame, shown over the stream while it reports faces: its boxes were computed on it
const analysed = document.getElementById("analysed");
const canvas = document.getElementById("overlay");
const notice = document.getElementById("stream-notice");
let faces = { width: 0, height: 0, faces: [], threshold: 0.8 };

// -- the stream ---------------------------------------------------------------------------------
function openStream() {
  img.src = `/api/camera/stream.mjpg?t=${Date.now()}`;
}
img.addEventListener("load", () => { notice.classList.add("hidden"); draw(); });
img.addEventListener("error", () => {
  notice.textContent = "The camera is not streaming right now; retrying…";
  notice.classList.remove("hidden");
  setTimeout(openStream, 2000);
});
document.addEventListener("visibilitychange", () => { if (!document.hidden && !img.complete) openStream(); });
openStream();

// -- boxes over the faces ----------------------------------------------------------------------------
// below the threshold: the closest enrolled person, when there is one (the API says "unknown" otherwise)
const guess = (face) => (face.label && face.label !== "unknown" ? ` · ${face.label}? ${pct(face.confidence)}` : "");

function draw() {
  const shown = !analysed.classList.contains("hidden") ? analysed : img;
  const width = shown.clientWidth, height = shown.clientHeight;
  const ratio = window.devicePixelRatio || 1;
  canvas.style.width = `${width}px`; canvas.style.height = `${height}px`;
  canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  if (!faces.width || !width) return;
  const scale = width / faces.width;
  ctx.font = "600 14px system-ui, sans-serif";
  for (const face of faces.faces) {
    const known = face.confidence !== null && face.confidence >= faces.threshold;
    const spoof = face.liveness === "attack";
    const color = spoof ? "#e5484d" : known ? "#3ccf8e" : face.label === null ? "#9aa4b2" : "#f2b233";
    const x = face.box.left * scale, y = face.box.top * scale;
    const w = (face.box.right - face.box.left) * scale, h = (face.box.bottom - face.box.top) * scale;
    ctx.lineWidth = 3; ctx.strokeStyle = color; ctx.strokeRect(x, y, w, h);
    const live = face.liveness ? ` · ${face.liveness}` : "";
    const label = (face.label === null ? "face" : known ? `${face.label} ${pct(face.confidence)}` : `unknown${guess(face)}`) + live;
    const textWidth = ctx.measureText(label).width + 10;
    const top = y > 24 ? y - 22 : y + h;
    ctx.fillStyle = color; ctx.fillRect(x - 1.5, top, textWidth, 22);
    ctx.fillStyle = "#0b0f16"; ctx.fillText(label, x + 4, top + 16);
  }
}
window.addEventListener("resize", draw);

analysed.addEventListener("load", draw);
async function refresh() {
  try {
    faces = await api("/api/live/faces");
  } catch (err) {
    faces = { width: 0, height: 0, faces: [], threshold: faces.threshold, frame: null };
  }
  if (faces.frame) {
    analysed.src = faces.frame;  // drawn once it has loaded, so the boxes and the picture always match
    analysed.classList.remove("hidden");
  } else {
    analysed.classList.add("hidden");
    draw();
  }
  const list = document.getElementById("faces");
  list.replaceChildren(...(faces.faces.length ? faces.faces.map((face) => {
    const known = face.confidence !== null && face.confidence >= faces.threshold;
    const live = face.liveness ? ` · ${face.liveness}` : "";
    if (face.label === null) return el("li", {}, el("span", { class: "who" }, "a face"), el("span", { class: "muted" }, `being recognised${live}`));
    return el("li", {}, el("span", { class: "who" }, known ? face.label : "unknown"),
      el("span", { class: "muted" }, (known ? pct(face.confidence)
        : face.label && face.label !== "unknown" ? `closest: ${face.label} ${pct(face.confidence)}` : "nobody enrolled matches") + live));
  }) : [el("li", { class: "muted" }, "Nobody")]));
  // while faces are in view, follow them closely; otherwise look now and then
  setTimeout(refresh, faces.faces.length ? 200 : 650);
}
refresh();

poll(async () => {
  const health = await api("/api/camera/health").catch(() => null);
  const info = document.getElementById("camera-info");
  if (!health) { info.textContent = "camera unavailable"; return; }
  const fps = health.fps;
  if (health.state === "failing") {
    notice.textContent = `The camera source is failing: ${health.error || "no frames"}. Retrying…`;
    notice.classList.remove("hidden");
  }
  const source = String(health.source || "").replace(/^file .*\//, "file ");
  info.textContent = [source, fps !== undefined && fps !== null ? `${Number(fps).toFixed(1)} fps` : null]
    .filter(Boolean).join(" · ");
}, 5000);

// -- the door -------------------------------------------------------------------------------------------
let door = null, doorAt = 0;
function showDoor() {
  const box = document.getElementById("door");
  const state = document.getElementById("door-state");
  const detail = document.getElementById("door-detail");
  if (!door) { box.className = "door-state unknown"; state.textContent = "Unknown"; return; }
  const left = Math.max(0, (door.seconds_left || 0) - (performance.now() - doorAt) / 1000);
  const locked = door.locked !== false || left <= 0;
  box.className = `door-state ${locked ? "locked" : "unlocked"}`;
  const icon = `/static/${locked ? "locked" : "unlocked"}.svg`;
  const image = document.getElementById("door-icon");
  if (!image.src.endsWith(icon)) image.src = icon;
  state.textContent = locked ? "Locked" : "Unlocked";
  detail.textContent = locked ? (door.fault ? `fault: ${door.fault}` : "") : `locks again in ${left.toFixed(1)} s`;
  const last = door.last_unlock;
  document.getElementById("last-unlock").textContent = last
    ? `Last unlock: ${last.person || "by hand"} ${last.time ? timeAgo(Date.parse(last.time) / 1000 || last.time) : ""}` : "";
}
poll(async () => {
  try { door = await api("/api/door/status"); doorAt = performance.now(); } catch (err) { door = null; }
  showDoor();
}, 1000);
setInterval(showDoor, 100);

document.getElementById("lock-now").addEventListener("click", async () => {
  try { door = await api("/api/door/lock", { method: "POST" }); doorAt = performance.now(); showDoor(); toast("Door locked"); }
  catch (err) { toast(`Could not lock: ${err.message}`, true); }
});

document.getElementById("capture").addEventListener("click", async () => {
  try { await api("/api/captures", { method: "POST" }); toast("Frame saved: enroll it on the People page (From live view)"); }
  catch (err) { toast(`No frame: ${err.message}`, true); }
});

// -- face unlock paused after repeated presentation attacks ---------------------------------------------
poll(async () => {
  const state = await api("/api/door/face-unlock").catch(() => null);
  const banner = document.getElementById("lockout");
  if (!state || !state.paused_until) { banner.classList.add("hidden"); return; }
  document.getElementById("lockout-text").textContent =
    `Face unlock is paused until ${clock(state.paused_until)}: repeated attempts with a photo or a screen.`;
  banner.classList.remove("hidden");
}, 5000);

document.getElementById("lockout-resume").addEventListener("click", async () => {
  try { await api("/api/door/face-unlock/resume", { method: "POST" }); toast("Face unlock resumed");
    document.getElementById("lockout").classList.add("hidden"); }
  catch (err) { toast(`Could not resume: ${err.message}`, true); }
});

// -- recent events -------------------------------------------------------------------------------------
poll(async () => {
  const data = await api("/api/events?limit=6");
  const list = document.getElementById("recent");
  list.replaceChildren(...(data.events.length ? data.events.map((event) => el("li", {},
    el("span", {}, el("span", { class: `badge ${event.kind}` }, KIND_LABELS[event.kind] || event.kind), " ",
      event.person || ""),
    el("span", { class: "muted small", title: clock(event.time) }, timeAgo(event.last_time || event.time)))) :
    [el("li", { class: "muted" }, "No events yet")]));
}, 3000);
