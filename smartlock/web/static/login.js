import { api } from "/static/common.js";

// Where to go after signing in: the server checks `next` (a path of this site only, else "/").
const next = new URLSearchParams(location.search).get("next") || "/live";

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("error");
  const button = event.target.querySelector("button");
  error.textContent = "";
  button.disabled = true;
  try {
    const answer = await api("/api/auth/login", {
      method: "POST", json: {
        username: document.getElementById("username").value,
        password: document.getElementById("password").value,
        next,
      },
    });
    location.href = answer.next;
  } catch (err) {
    error.textContent = err.message;
    button.disabled = false;
  }
});
