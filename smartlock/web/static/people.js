import { api, el, clock, toast, shell, lightbox } from "/static/common.js";

shell("people");

const nameInput = document.getElementById("name");
const outcomes = document.getElementById("outcomes");

function initials(name) {
  return name.split(/[\s_-]+/).filter(Boolean).slice(0, 2).map((part) => part[0].toUpperCase()).join("");
}

function photoUrl(name, imageId) {
  return `/api/people/photo.jpg?${new URLSearchParams({ name, image_id: imageId })}`;
}

function photo(person, image) {
  const fallback = el("div", { class: "avatar" }, initials(person.name));
  const picture = el("img", { src: photoUrl(person.name, image.image_id), alt: image.source || image.image_id, title: image.source || "" });
  picture.addEventListener("error", () => picture.replaceWith(fallback));
  return el("div", { class: "photo" }, picture,
    el("button", { title: "Remove this photo", "aria-label": `remove photo ${image.source || image.image_id}`,
      onclick: () => removePhoto(person.name, image) }, "×"));
}

function personBlock(person) {
  const facts = [`${person.image_count} photo${person.image_count === 1 ? "" : "s"}`,
    `${person.unlocks} unlock${person.unlocks === 1 ? "" : "s"}`];
  if (person.last_unlock) facts.push(`last ${clock(person.last_unlock)}`);
  return el("div", { class: "person", "data-name": person.name },
    el("div", { class: "row between" },
      el("div", {}, el("div", { class: "who" }, person.name), el("div", { class: "muted small" }, facts.join(" · "))),
      el("div", { class: "row" },
        el("button", { class: "link", onclick: () => { nameInput.value = person.name; nameInput.focus(); } }, "Add photos"),
        el("button", { class: "danger", onclick: () => removePerson(person.name) }, "Remove"))),
    el("div", { class: "photos" }, person.images.map((image) => photo(person, image))));
}

async function loadPeople() {
  const box = document.getElementById("people");
  try {
    const data = await api("/api/people");
    document.getElementById("count").textContent = `${data.people.length} enrolled`;
    box.replaceChildren(...(data.people.length ? data.people.map(personBlock)
      : [el("p", { class: "empty-state" }, "Nobody is enrolled yet: add someone on the right.")]));
    document.getElementById("names").replaceChildren(...data.people.map((p) => el("option", { value: p.name })));
  } catch (err) {
    box.replaceChildren(el("p", { class: "error" }, `Cannot list people: ${err.message}`));
  }
}

async function removePerson(name) {
  if (!confirm(`Remove ${name} and all their photos? They will no longer be let in.`)) return;
  try { await api(`/api/people?${new URLSearchParams({ name })}`, { method: "DELETE" }); toast(`Removed ${name}`); }
  catch (err) { toast(err.message, true); }
  loadPeople();
}

async function removePhoto(name, image) {
  if (!confirm(`Remove this photo of ${name}?`)) return;
  try {
    await api(`/api/people/photo?${new URLSearchParams({ name, image_id: image.image_id })}`, { method: "DELETE" });
    toast("Photo removed");
  } catch (err) { toast(err.message, true); }
  loadPeople();
}

function showOutcomes(result) {
  outcomes.replaceChildren(...result.outcomes.map((o) => el("li", { class: o.enrolled ? "ok" : "refused" },
    `${o.enrolled ? "✓ enrolled" : "✗ refused"}: ${o.filename}${o.reason ? ` (${o.reason})` : ""}`)));
  const summary = `${result.name}: ${result.enrolled} photo(s) enrolled, ${result.refused} refused`;
  toast(summary, result.enrolled === 0);
  loadPeople();
}

function chosenName() {
  const name = nameInput.value.trim();
  if (!name) { toast("Type the person's name first", true); nameInput.focus(); return null; }
  return name;
}

async function busy(button, work) {
  button.disabled = true;
  const label = button.textContent;
  button.textContent = "Working…";
  try { await work(); } catch (err) { toast(err.message, true); } finally { button.disabled = false; button.textContent = label; }
}

// -- upload ------------------------------------------------------------------------------------------
document.getElementById("upload").addEventListener("click", (event) => busy(event.target, async () => {
  const name = chosenName();
  const files = document.getElementById("photos").files;
  if (!name) return;
  if (!files.length) { toast("Choose one or more photos", true); return; }
  const form = new FormData();
  form.append("name", name);
  for (const file of files) form.append("photos", file, file.name);
  showOutcomes(await api("/api/people/enroll", { method: "POST", form }));
  document.getElementById("photos").value = "";
}));

// -- picking frames ----------------------------------------------------------------------------------
function pickTile(src, caption, value) {
  const tile = el("div", { class: "pick", "data-value": value, title: caption },
    el("img", { src, alt: caption, loading: "lazy" }), el("div", { class: "cap" }, caption));
  tile.addEventListener("click", () => tile.classList.toggle("selected"));
  tile.addEventListener("dblclick", () => lightbox(src));
  return tile;
}
const selected = (grid) => [...document.querySelectorAll(`#${grid} .pick.selected`)].map((t) => t.dataset.value);

async function loadCaptures() {
  const data = await api("/api/captures");
  const grid = document.getElementById("captures");
  grid.replaceChildren(...data.captures.map((c) =>
    pickTile(c.image, clock(Number(c.id.split("-")[0]) / 1000), c.id)));
  document.getElementById("captures-note").textContent = data.captures.length ? "click to select" : "no frames yet";
}
document.getElementById("take").addEventListener("click", (event) => busy(event.target, async () => {
  await api("/api/captures", { method: "POST" });
  await loadCaptures();
  document.querySelector("#captures .pick")?.classList.add("selected");
}));
document.getElementById("enroll-captures").addEventListener("click", (event) => busy(event.target, async () => {
  const name = chosenName();
  const ids = selected("captures");
  if (!name) return;
  if (!ids.length) { toast("Select one or more frames", true); return; }
  showOutcomes(await api("/api/people/enroll-captures", { method: "POST", json: { name, ids } }));
  await loadCaptures();
}));

async function loadCollected() {
  const data = await api("/api/collected");
  const grid = document.getElementById("collected");
  grid.replaceChildren(...(data.frames.length ? data.frames.map((f) =>
    pickTile(f.thumb, `${f.label} ${(f.confidence * 100).toFixed(0)}% · ${f.taken.slice(11, 19)}`, f.name))
    : [el("p", { class: "muted small" }, "The collector has saved no frames yet.")]));
}
document.getElementById("enroll-collected").addEventListener("click", (event) => busy(event.target, async () => {
  const name = chosenName();
  const frames = selected("collected");
  if (!name) return;
  if (!frames.length) { toast("Select one or more frames", true); return; }
  showOutcomes(await api("/api/people/enroll-collected", { method: "POST", json: { name, frames } }));
}));

for (const tab of document.querySelectorAll(".tabs button")) {
  tab.addEventListener("click", () => {
    for (const other of document.querySelectorAll(".tabs button")) other.classList.toggle("active", other === tab);
    for (const panel of document.querySelectorAll("[data-panel]")) panel.classList.toggle("hidden", panel.dataset.panel !== tab.dataset.tab);
    if (tab.dataset.tab === "captures") loadCaptures().catch((err) => toast(err.message, true));
    if (tab.dataset.tab === "collected") loadCollected().catch((err) => toast(err.message, true));
  });
}

loadPeople();
