import { api, el, shell } from "/static/common.js";

shell("settings");

// Which inputs each form sends; a secret (password, code) only when something was typed.
const SECRETS = ["mqtt_password", "mqtt_unlock_code"];
const PARTS = { door: ["lock_delay"], recognition: ["threshold", "liveness", "liveness_still_frame"], camera: ["camera"],
  retention: ["keep_days", "keep_unlocks", "timeline_max_events"],
  mqtt: ["mqtt_url", "mqtt_user", "mqtt_password", "door_name", "mqtt_images", "mqtt_allow_unlock", "mqtt_unlock_code"] };
const NUMBERS = new Set(["lock_delay", "threshold", "keep_days", "keep_unlocks", "timeline_max_events"]);
let state = null;

function input(form, name) { return form.elements.namedItem(name); }

function valueOf(form, name) {
  const field = input(form, name);
  if (field.type === "checkbox") return field.checked;
  if (NUMBERS.has(name)) return field.value.trim() === "" ? null : Number(field.value);
  return field.value.trim() === "" && !SECRETS.includes(name) ? null : field.value;
}

function current(name) {
  const value = state.settings[name];
  return value === undefined ? null : value;
}

function show(data) {
  state = data;
  for (const [section, names] of Object.entries(PARTS)) {
    const form = document.querySelector(`form[data-section=${section}]`);
    const parts = new Set(names.flatMap((name) => data.restarts[name] || []).filter((part) => part !== "dashboard"));
    form.querySelector(".restarts").textContent = parts.size ? `a change restarts: ${[...parts].join(", ")}` : "";
    for (const name of names) {
      const field = input(form, name);
      if (SECRETS.includes(name)) {
        field.value = "";
        const set = data.settings[`${name}_set`];
        form.querySelector(`[data-secret=${name}]`).textContent = set ? "(set)" : "(not set)";
        field.placeholder = set ? "set; leave empty to keep" : "not set";
      } else if (field.type === "checkbox") field.checked = Boolean(current(name));
      else field.value = current(name) === null ? "" : String(current(name));
      const label = field.closest("label");
      label.querySelector(".flag-note")?.remove();
      if (data.from_command_line[name]) {
        label.append(el("span", { class: "flag-note", text: `given at start by ${data.from_command_line[name]}` }));
      }
    }
  }
  const note = document.getElementById("liveness-note");
  const liveness = input(document.querySelector("form[data-section=recognition]"), "liveness");
  liveness.disabled = !data.liveness;
  input(document.querySelector("form[data-section=recognition]"), "liveness_still_frame").disabled = !data.liveness;
  note.textContent = data.liveness ? (current("liveness") ? "" : "off: photos and screens open the door") : "coming";
  const flags = Object.entries(data.from_command_line);
  document.getElementById("flags-note").classList.toggle("hidden", flags.length === 0);
  document.getElementById("flags").replaceChildren(...[...new Set(flags.map(([, flag]) => flag))].map((flag) =>
    el("li", {}, el("code", { text: flag }), ": ",
      flags.filter(([, f]) => f === flag).map(([name]) => name.replaceAll("_", " ")).join(", "))));
}

function clearErrors(form) {
  form.querySelectorAll(".field-error").forEach((node) => { node.textContent = ""; });
  form.querySelectorAll(".invalid").forEach((node) => node.classList.remove("invalid"));
}

function result(form, text, ok) {
  const node = form.querySelector(".result");
  node.textContent = text;
  node.classList.toggle("ok", ok);
  node.classList.toggle("bad", !ok);
}

async function save(form) {
  clearErrors(form);
  const changes = {};
  for (const name of PARTS[form.dataset.section]) {
    const value = valueOf(form, name);
    if (SECRETS.includes(name)) { if (value !== "") changes[name] = value; continue; }
    if (value !== current(name)) changes[name] = value;
  }
  if (Object.keys(changes).length === 0) { result(form, "Nothing changed.", true); return; }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  result(form, "Applying… (restarting the parts it concerns)", true);
  try {
    const response = await fetch("/api/settings", {
      method: "PUT", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Smartlock-Request": "1" }, body: JSON.stringify(changes) });
    if (response.status === 401) { location.href = "/login?next=/settings"; return; }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const target = data.field && form.querySelector(`.field-error[data-for=${data.field}]`);
      if (target) {
        target.textContent = data.message;
        input(form, data.field)?.classList.add("invalid");
        result(form, "Not saved: see the field above.", false);
      } else result(form, data.message || `${response.status} ${response.statusText}`, false);
      return;
    }
    show(data);
    result(form, data.message, true);
  } catch (err) {
    result(form, "the dashboard did not answer (is smartlock up still running?)", false);
  } finally { button.disabled = false; }
}

for (const form of document.querySelectorAll("form[data-section]")) {
  form.addEventListener("submit", (event) => { event.preventDefault(); save(form); });
}

api("/api/settings").then(show).catch((err) => {
  const node = document.getElementById("load-error");
  node.textContent = err.status === 403 ? "Only admins can see and change the settings." : `Cannot load the settings: ${err.message}`;
  node.classList.remove("hidden");
  document.querySelectorAll("form[data-section]").forEach((form) => form.classList.add("hidden"));
});
