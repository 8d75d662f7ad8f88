import { api } from "/static/common.js";

function target() {
  const next = new URLSearchParams(location.search).get("next") || "/live";
  return next.startsWith("/") && !next.startsWith("//") ? next : "/live";
}

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("error");
  const button = event.target.querySelector("button");
  error.textContent = "";
  button.disabled = true;
  try {
    await api("/api/auth/login", { method: "POST", json: { password: document.getElementById("password").value } });
    location.href = target();
  } catch (err) {
    error.textContent = err.message;
    button.disabled = false;
  }
});
