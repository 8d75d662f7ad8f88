import { api, el, clock, toast, shell, me } from "/static/common.js";

shell("accounts");

const rows = document.querySelector("#accounts tbody");
let self = null;

function row(account, admins) {
  const lastAdmin = account.role === "admin" && admins <= 1;
  const role = el("select", { "aria-label": `role of ${account.user}`, disabled: lastAdmin,
    title: lastAdmin ? "the last admin stays an admin" : undefined,
    onchange: () => setRole(account.user, role.value, role) },
    ["admin", "viewer"].map((r) => el("option", { value: r, selected: r === account.role }, r)));
  return el("tr", { "data-user": account.user },
    el("td", {}, el("strong", {}, account.user), account.user === self?.user ? el("span", { class: "muted small" }, " (you)") : null),
    el("td", {}, role),
    el("td", { class: "muted small" }, account.created ? clock(account.created) : "–"),
    el("td", {}, el("div", { class: "row" },
      el("button", { class: "link", onclick: () => resetPassword(account.user) }, "Reset password"),
      el("button", { class: "danger", disabled: lastAdmin, title: lastAdmin ? "the last admin cannot be removed" : undefined,
        onclick: () => removeAccount(account.user) }, "Remove"))));
}

async function load() {
  try {
    const { accounts } = await api("/api/accounts");
    const admins = accounts.filter((a) => a.role === "admin").length;
    rows.replaceChildren(...accounts.map((a) => row(a, admins)));
    document.getElementById("count").textContent = `${accounts.length} account(s), ${admins} admin(s)`;
  } catch (err) {
    rows.replaceChildren(el("tr", {}, el("td", { colspan: "4", class: "error" }, `Cannot list accounts: ${err.message}`)));
  }
}

// Runs one change; true when it was made (its message shown), false when refused (the reason shown).
async function change(path, options) {
  try { toast((await api(path, options)).message); return true; }
  catch (err) { toast(err.message, true); return false; }
}

async function setRole(user, role, select) {
  select.disabled = true;
  const done = await change(`/api/accounts/${encodeURIComponent(user)}/role`, { method: "PUT", json: { role } });
  if (done && user === self?.user && role !== "admin") { location.href = "/login"; return; }
  await load();
}

async function resetPassword(user) {
  const password = prompt(`New password for ${user} (at least 8 characters). Their sessions end.`);
  if (password === null) return;
  const done = await change(`/api/accounts/${encodeURIComponent(user)}/password`, { method: "PUT", json: { password } });
  if (done && user === self?.user) location.href = "/login";
}

async function removeAccount(user) {
  if (!confirm(`Remove the account ${user}? Their sessions end at once.`)) return;
  const done = await change(`/api/accounts/${encodeURIComponent(user)}`, { method: "DELETE" });
  if (done && user === self?.user) { location.href = "/login"; return; }
  await load();
}

document.getElementById("add").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("add-error");
  error.textContent = "";
  try {
    const answer = await api("/api/accounts", { method: "POST", json: {
      username: document.getElementById("new-user").value,
      password: document.getElementById("new-password").value,
      role: document.getElementById("new-role").value,
    } });
    toast(answer.message);
    event.target.reset();
    await load();
  } catch (err) { error.textContent = err.message; }
});

document.getElementById("own").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("own-error");
  error.textContent = "";
  const next = document.getElementById("new").value;
  if (next !== document.getElementById("repeat").value) { error.textContent = "the two new passwords differ"; return; }
  try {
    const answer = await api("/api/auth/password", { method: "POST", json: { current: document.getElementById("current").value, new: next } });
    toast(answer.message);
    event.target.reset();
  } catch (err) { error.textContent = err.message; }
});

(async () => {
  self = await me();
  if (!self) return;
  document.getElementById("me").textContent = `Signed in as ${self.user} (${self.role}).`;
  if (self.role === "admin") {
    for (const card of document.querySelectorAll(".admin-only")) card.classList.remove("hidden");
    await load();
  }
})();
