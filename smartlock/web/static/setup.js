import { api } from "/static/common.js";

// The one-time token leaves the address bar (and the history) as soon as it is read.
const token = new URLSearchParams(location.search).get("token") || "";
history.replaceState(null, "", "/setup");

document.getElementById("setup").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("error");
  const password = document.getElementById("password").value;
  error.textContent = "";
  if (password !== document.getElementById("repeat").value) {
    error.textContent = "the two passwords differ";
    return;
  }
  if (!token) {
    error.textContent = "this page needs the setup link printed by `smartlock up` (with its token)";
    return;
  }
  try {
    await api("/api/auth/setup", { method: "POST", json: { token, password, username: document.getElementById("username").value } });
    location.href = "/live";
  } catch (err) {
    error.textContent = err.message;
  }
});
