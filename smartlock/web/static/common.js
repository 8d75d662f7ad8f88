// Shared by every dashboard page: API calls (with the anti-CSRF header), the top bar, small helpers.

export class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

export async function api(path, { method = "GET", json, form } = {}) {
  const headers = {};
  let body;
  if (method !== "GET") headers["X-Smartlock-Request"] = "1";
  if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  if (form !== undefined) body = form;
  let response;
  try {
    response = await fetch(path, { method, headers, body, credentials: "same-origin" });
  } catch (err) {
    throw new ApiError("the dashboard did not answer (is smartlock up still running?)", 0);
  }
  if (response.status === 401 && !path.startsWith("/api/auth/")) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    throw new ApiError("signed out", 401);
  }
  let data = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("application/json")) data = await response.json();
  if (!response.ok) throw new ApiError((data && data.message) || `${response.status} ${response.statusText}`, response.status);
  return data;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function pct(value, digits = 0) {
  return value === null || value === undefined ? "–" : `${(value * 100).toFixed(digits)}%`;
}

export function timeAgo(seconds) {
  const delta = Math.max(0, Date.now() / 1000 - seconds);
  if (delta < 45) return "just now";
  if (delta < 3600) return `${Math.round(delta / 60)} min ago`;
  if (delta < 86400) return `${Math.round(delta / 3600)} h ago`;
  return `${Math.round(delta / 86400)} d ago`;
}

export function clock(seconds) {
  const date = new Date(seconds * 1000);
  const today = new Date();
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return date.toDateString() === today.toDateString() ? time : `${date.toLocaleDateString()} ${time}`;
}

let toastTimer = null;
export function toast(message, bad = false) {
  let node = document.querySelector(".toast");
  if (!node) { node = el("div", { class: "toast", role: "status" }); document.body.append(node); }
  node.textContent = message;
  node.classList.toggle("bad", bad);
  node.classList.remove("hidden");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => node.classList.add("hidden"), bad ? 7000 : 3500);
}

export function lightbox(src) {
  const box = el("div", { class: "lightbox", onclick: () => box.remove() }, el("img", { src, alt: "frame" }));
  document.body.append(box);
}

export const KIND_LABELS = { unlock: "Unlocked", stranger: "Stranger", sighting: "Below threshold", lock: "Locked by hand",
  spoof: "Refused: not live", lockout: "Face unlock paused" };

const PAGES = [["live", "Live"], ["events", "Events"], ["people", "People"], ["calibration", "Calibration"]];

// Who is signed in ({user, role}), asked once per page; null when it cannot be told.
let meAnswer = null;
export function me() {
  if (!meAnswer) meAnswer = api("/api/me").catch(() => null);
  return meAnswer;
}

// A viewer's pages: the html element gets the class "role-viewer" and accounts.css hides what only admins may
// do (the server refuses it anyway, with 403).
async function applyRole(nav, active, who) {
  const account = await me();
  if (!account) return;
  const admin = account.role === "admin";
  if (!admin && !document.querySelector('link[href="/static/accounts.css"]')) {
    // the class goes on once the sheet that hides the admin's controls has loaded (what tests wait for)
    const sheet = el("link", { rel: "stylesheet", href: "/static/accounts.css" });
    const loaded = new Promise((resolve) => { sheet.onload = sheet.onerror = resolve; });
    document.head.append(sheet);
    await loaded;
  }
  document.documentElement.classList.toggle("role-viewer", !admin);
  const link = (page, label) => el("a", { href: `/${page}`, class: page === active ? "active" : "" }, label);
  if (admin) nav.append(link("settings", "Settings"));
  nav.append(link("accounts", admin ? "Accounts" : "My account"));
  who.textContent = account.user;
  who.title = `signed in as ${account.user} (${account.role})`;
}

// Builds the top bar and keeps the parts' status dots fresh.
export function shell(active) {
  const parts = el("div", { class: "parts", "aria-label": "parts" });
  const nav = el("nav", { class: "nav" }, PAGES.map(([page, label]) =>
    el("a", { href: `/${page}`, class: page === active ? "active" : "" }, label)));
  const who = el("span", { class: "muted small", id: "signed-in-user" });
  const bar = el("header", { class: "topbar" },
    el("a", { class: "brand", href: "/live" }, el("img", { src: "/static/logo.svg", alt: "" }), "smartlock"),
    nav,
    el("div", { class: "spacer" }),
    parts,
    who,
    el("button", { class: "link", onclick: signOut }, "Sign out"));
  document.body.prepend(bar);
  applyRole(nav, active, who);
  const refresh = async () => {
    try {
      const system = await api("/api/system");
      const mqtt = system.mqtt ? [el("span", { class: "part", title: `MQTT broker: ${system.mqtt}` },
        el("span", { class: `dot ${system.mqtt === "connected" ? "running" : "stopped"}` }), "mqtt")] : [];
      parts.replaceChildren(...system.children.map((child) =>
        el("span", { class: "part", title: `${child.name}: ${child.state}${child.restarts ? `, ${child.restarts} restart(s)` : ""}` },
          el("span", { class: `dot ${child.state}` }), child.name)), ...mqtt);
    } catch (err) { /* the page shows its own errors */ }
  };
  refresh();
  setInterval(() => { if (!document.hidden) refresh(); }, 5000);
}

async function signOut() {
  try { await api("/api/auth/logout", { method: "POST" }); } finally { location.href = "/login"; }
}

// Runs fn every `ms` while the page is visible, never two at once.
export function poll(fn, ms) {
  let stopped = false;
  const loop = async () => {
    if (stopped) return;
    if (!document.hidden) { try { await fn(); } catch (err) { /* shown by fn */ } }
    setTimeout(loop, ms);
  };
  loop();
  return () => { stopped = true; };
}
