// One bill: issue or cancel it, record a payment, open or resolve a dispute — through the API.
import { pageData, post, say, t } from "./core.js";

function act(button, url, body, confirmText) {
  button?.addEventListener("click", async () => {
    if (confirmText && !window.confirm(confirmText)) return;
    button.disabled = true;
    try {
      await post(url, body);
      location.reload();
    } catch (error) {
      say(document.getElementById("invoice-message"), error.message, "bad");
      button.disabled = false;
    }
  });
}

function submit(formId, url, read) {
  const form = document.getElementById(formId);
  form?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      await post(url, read(new FormData(form)));
      location.reload();
    } catch (error) {
      say(document.getElementById("invoice-message"), error.message, "bad");
      button.disabled = false;
    }
  });
}

export function start() {
  const { invoice_id: id } = pageData();
  const base = `/api/v1/invoices/${id}`;
  act(document.getElementById("issue-invoice"), `${base}/issue`);
  act(document.getElementById("cancel-invoice"), `${base}/cancel`, {}, t("invoice.confirm_cancel"));
  submit("payment-form", `${base}/payments`, (f) => ({
    amount: f.get("amount"), reference: f.get("reference") || "",
  }));
  submit("dispute-form", `${base}/disputes`, (f) => ({ reason: f.get("reason") }));
  submit("resolve-form", `${base}/disputes/resolve`, (f) => ({
    upheld: f.get("upheld") === "true", resolution: f.get("resolution"),
  }));
}
