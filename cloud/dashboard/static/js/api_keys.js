// API keys: make one (its secret shown here once, from the API's answer), revoke one.
import { post, say, send, t } from "./core.js";

export function start() {
  const form = document.getElementById("key-form");
  const status = document.getElementById("key-status");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const permissions = data.getAll("permissions");
    if (!permissions.length) {
      say(status, t("keys.pick_one"), "bad");
      return;
    }
    const days = Number(data.get("days"));
    try {
      const key = await post("/api/v1/users/me/api-keys", {
        name: String(data.get("name")).trim(),
        permissions,
        expires_at: new Date(Date.now() + days * 86400000).toISOString(),
      });
      say(status, "");
      show(key.key);
      form.reset();
      await refreshList();
    } catch (error) {
      say(status, error.message, "bad");
    }
  });
  document.getElementById("key-copy").addEventListener("click", copy);
  document.getElementById("keys-table").addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-revoke]");
    if (!button || !window.confirm(t("keys.revoke_confirm", { name: button.dataset.name }))) return;
    try {
      await send("DELETE", `/api/v1/users/me/api-keys/${button.dataset.revoke}`);
      say(status, t("keys.revoked", { name: button.dataset.name }), "good");
      await refreshList();
    } catch (error) {
      say(status, error.message, "bad");
    }
  });
}

function show(secret) {
  document.getElementById("key-secret").textContent = secret;
  document.getElementById("key-copied").hidden = true;
  document.getElementById("key-new").hidden = false;
}

async function copy() {
  const secret = document.getElementById("key-secret");
  try {
    await navigator.clipboard.writeText(secret.textContent);
    document.getElementById("key-copied").hidden = false;
  } catch {
    // no clipboard (a page not served over https): select it for the person to copy
    const range = document.createRange();
    range.selectNodeContents(secret);
    window.getSelection().removeAllRanges();
    window.getSelection().addRange(range);
  }
}

// the list as the server draws it now
async function refreshList() {
  const response = await fetch(window.location.href, { credentials: "same-origin" });
  if (!response.ok) return;
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const fresh = page.querySelector("#keys-table tbody");
  if (fresh) document.querySelector("#keys-table tbody").replaceWith(fresh);
}
