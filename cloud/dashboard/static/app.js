// The dashboard's little behaviour: changes through the API with the CSRF token, and the live
// alert list fed by the server-sent-events stream.
function csrf() {
  const match = document.cookie.match(/(?:^|; )gg_csrf=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: JSON.stringify(body || {}),
    credentials: "same-origin",
  });
  if (!response.ok) {
    const problem = await response.json().catch(() => ({ detail: response.statusText }));
    throw new Error(problem.detail || response.statusText);
  }
  return response.json();
}

function alertRow(alert) {
  const row = document.createElement("tr");
  row.id = `alert-${alert.id}`;
  row.dataset.state = alert.state;
  const cells = [alert.opened_at.replace("T", " ").slice(0, 16), alert.kind, alert.severity,
                 alert.subject, alert.message];
  for (const text of cells) {
    const cell = document.createElement("td");
    cell.textContent = text;
    row.appendChild(cell);
  }
  const state = document.createElement("td");
  state.className = `state state-${alert.state}`;
  state.textContent = alert.state;
  row.appendChild(state);
  const actions = document.createElement("td");
  for (const [action, label] of [["acknowledge", "Acknowledge"], ["resolve", "Resolve"]]) {
    const allowed = action === "acknowledge" ? alert.state === "active" : alert.state !== "resolved";
    if (!allowed) continue;
    const button = document.createElement("button");
    button.textContent = label;
    button.dataset.action = action;
    button.addEventListener("click", async () => {
      const note = action === "resolve" ? prompt("Resolution note", "") || "" : "";
      try {
        showAlert(await post(`/api/v1/alerts/${alert.id}/${action}`, { note }));
      } catch (error) {
        document.getElementById("alert-error").textContent = error.message;
      }
    });
    actions.appendChild(button);
  }
  row.appendChild(actions);
  return row;
}

function showAlert(alert) {
  const body = document.getElementById("alerts-body");
  if (!body) return;
  const fresh = alertRow(alert);
  const old = document.getElementById(`alert-${alert.id}`);
  if (old) old.replaceWith(fresh); else body.prepend(fresh);
}

function liveAlerts() {
  const body = document.getElementById("alerts-body");
  if (!body) return;
  for (const alert of JSON.parse(document.getElementById("alerts-data").textContent)) {
    body.appendChild(alertRow(alert));
  }
  const stream = new EventSource("/api/v1/alerts/stream");
  stream.addEventListener("ready", () => { document.body.dataset.live = "yes"; });
  stream.addEventListener("alert", (event) => showAlert(JSON.parse(event.data)));
}

async function requestReport(form) {
  const data = Object.fromEntries(new FormData(form).entries());
  data.board_id = Number(data.board_id);
  const status = document.getElementById("report-status");
  try {
    let report = await post("/api/v1/reports", data);
    status.textContent = `Report ${report.id}: ${report.status}`;
    while (report.status === "queued" || report.status === "running") {
      await new Promise((done) => setTimeout(done, 400));
      report = await (await fetch(`/api/v1/reports/${report.id}`)).json();
    }
    status.textContent = `Report ${report.id}: ${report.status}`;
    if (report.status === "done") {
      const link = document.createElement("a");
      link.href = `/api/v1/reports/${report.id}/download`;
      link.textContent = `Download report ${report.id} (${report.format})`;
      link.id = "report-download";
      status.appendChild(document.createTextNode(" "));
      status.appendChild(link);
    }
  } catch (error) {
    status.textContent = error.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  liveAlerts();
  const form = document.getElementById("report-form");
  if (form) form.addEventListener("submit", (event) => { event.preventDefault(); requestReport(form); });
});
