// Reports: ask for one, follow it until it is made, then offer the download.
import { get, post, say, t } from "./core.js";

export function start() {
  const form = document.getElementById("report-form");
  if (!form) return;
  const status = document.getElementById("report-status");
  // a format is its board's: offer the chosen board's, and with one chosen it decides the
  // report's kind and file type
  const shape = () => {
    for (const option of form.format_id.options) {
      option.hidden = option.value !== "" && option.dataset.board !== form.board_id.value;
    }
    if (form.format_id.selectedOptions[0]?.hidden) form.format_id.value = "";
    for (const label of form.querySelectorAll("label.standard")) label.hidden = form.format_id.value !== "";
  };
  form.board_id.addEventListener("change", shape);
  form.format_id.addEventListener("change", shape);
  shape();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form).entries());
    data.board_id = Number(data.board_id);
    // the form names the last day, as people do; the API takes the first day after it
    const after = new Date(`${data.period_end}T00:00:00Z`);
    after.setUTCDate(after.getUTCDate() + 1);
    data.period_end = after.toISOString().slice(0, 10);
    if (data.format_id) {
      data.format_id = Number(data.format_id);
      delete data.kind;
      delete data.format;
    } else {
      delete data.format_id;
    }
    try {
      let report = await post("/api/v1/reports", data);
      say(status, t("reports.making"));
      while (report.status === "queued" || report.status === "running") {
        await new Promise((wake) => setTimeout(wake, 400));
        report = await get(`/api/v1/reports/${report.id}`);
      }
      if (report.status !== "done") {
        say(status, t("reports.failed", { error: report.error || "" }), "bad");
        return;
      }
      say(status, t("reports.ready"), "good");
      const link = document.createElement("a");
      link.href = `/api/v1/reports/${report.id}/download`;
      link.id = "report-download";
      link.textContent = t("reports.download_it", { format: report.format.toUpperCase() });
      status.append(" ", link);
      await refreshList();
    } catch (error) {
      say(status, error.message, "bad");
    }
  });
}

// the list as the server draws it now (with the new report at its top)
async function refreshList() {
  const response = await fetch(window.location.href, { credentials: "same-origin" });
  if (!response.ok) return;
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const fresh = page.querySelector("#reports-table tbody");
  if (fresh) document.querySelector("#reports-table tbody").replaceWith(fresh);
}
