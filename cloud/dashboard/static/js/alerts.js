// The alert list: each alert in words (what it is about: the meter and its consumer, or the
// gateway), acknowledged or resolved in place, and kept live by the server-sent-events stream.
import { localTime, pageData, post, say, t } from "./core.js";

function cell(row, label, content) {
  const td = document.createElement("td");
  td.dataset.label = label;
  if (typeof content === "string") td.textContent = content; else if (content) td.append(content);
  row.append(td);
  return td;
}

function badge(kind, value) {
  const span = document.createElement("span");
  span.className = `badge b-${value}`;
  span.textContent = t(`${kind}.${value}`);
  return span;
}

function about(alert) {
  if (alert.meter) {
    const link = document.createElement("a");
    link.href = `/dashboard/meters/${alert.meter_id}`;
    link.textContent = t("alerts.meter", { meter: alert.meter });
    const span = document.createElement("span");
    span.append(link);
    if (alert.consumer_name) span.append(` · ${alert.consumer_name}`);
    return span;
  }
  if (alert.gateway_code) return t("alerts.gateway", { gateway: alert.gateway_code });
  return t("alerts.board", { board: alert.board_code || "" });
}

function row(alert, canManage) {
  const tr = document.createElement("tr");
  tr.id = `alert-${alert.id}`;
  tr.dataset.state = alert.state;
  cell(tr, t("col.opened"), localTime(alert.opened_at, alert.time_zone || "UTC"));
  cell(tr, t("col.severity"), badge("severity", alert.severity));
  cell(tr, t("col.kind"), t(`kind.${alert.kind}`) === `kind.${alert.kind}` ? alert.kind : t(`kind.${alert.kind}`));
  cell(tr, t("col.about"), about(alert));
  cell(tr, t("col.message"), alert.message || "—");
  const state = cell(tr, t("col.state"), badge("alert_state", alert.state));
  state.className = "state";
  const actions = cell(tr, "", null);
  actions.className = "actions";
  if (canManage) {
    for (const action of ["acknowledge", "resolve"]) {
      const allowed = action === "acknowledge" ? alert.state === "active" : alert.state !== "resolved";
      if (!allowed) continue;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "quiet";
      button.dataset.action = action;
      button.textContent = t(`alerts.${action}`);
      button.addEventListener("click", async () => {
        const note = action === "resolve" ? window.prompt(t("alerts.resolution_note"), "") ?? null : "";
        if (note === null) return;
        try {
          show(await post(`/api/v1/alerts/${alert.id}/${action}`, { note }), canManage);
        } catch (error) {
          say(document.getElementById("alert-message"), error.message, "bad");
        }
      });
      actions.append(button);
    }
  }
  return tr;
}

const known = new Map();

function show(alert, canManage) {
  const merged = { ...(known.get(alert.id) || {}), ...alert };
  known.set(alert.id, merged);
  const body = document.getElementById("alerts-body");
  const fresh = row(merged, canManage);
  const old = document.getElementById(`alert-${alert.id}`);
  if (old) old.replaceWith(fresh); else body.prepend(fresh);
  document.getElementById("alerts-empty").hidden = body.children.length > 0;
}

export function start() {
  const data = pageData();
  for (const alert of data.alerts) {
    known.set(alert.id, alert);
    document.getElementById("alerts-body").append(row(alert, data.can_manage));
  }
  document.getElementById("alerts-empty").hidden = data.alerts.length > 0;
  const status = document.getElementById("live-status");
  const stream = new EventSource("/api/v1/alerts/stream");
  stream.addEventListener("ready", () => {
    document.body.dataset.live = "yes";
    status.textContent = t("alerts.live");
  });
  stream.addEventListener("alert", (event) => show(JSON.parse(event.data), data.can_manage));
  stream.addEventListener("session_ended", () => { stream.close(); location.reload(); });
  stream.onerror = () => { status.textContent = t("alerts.reconnecting"); };
}
