// The alert list: each alert in words (what it is about: the meter and its consumer, or the
// gateway), acknowledged or resolved in place, and kept live by the server-sent-events stream.
import { localTime, number, pageData, post, say, t } from "./core.js";

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
  const note = alert.state === "resolved" ? alert.resolve_note : alert.acknowledge_note;
  if (note) {
    const said = document.createElement("div");
    said.className = "small muted note";
    said.textContent = note;
    state.append(said);
  }
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
      button.addEventListener("click", () => (action === "resolve"
        ? askForNote(actions, alert, canManage)
        : change(alert, "acknowledge", "", canManage)));
      actions.append(button);
    }
  }
  return tr;
}

async function change(alert, action, note, canManage) {
  try {
    show(await post(`/api/v1/alerts/${alert.id}/${action}`, { note }), canManage);
  } catch (error) {
    say(document.getElementById("alert-message"), error.message, "bad");
  }
}

// resolving asks what was done, in the row itself
function askForNote(actions, alert, canManage) {
  const form = document.createElement("form");
  form.className = "resolve-note";
  const input = document.createElement("input");
  input.name = "note";
  input.maxLength = 500;
  input.placeholder = t("alerts.resolution_note");
  input.setAttribute("aria-label", t("alerts.resolution_note"));
  const confirm = document.createElement("button");
  confirm.type = "submit";
  confirm.textContent = t("alerts.resolve");
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "quiet";
  cancel.textContent = t("alerts.cancel");
  cancel.addEventListener("click", () => show(alert, canManage));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    change(alert, "resolve", input.value.trim(), canManage);
  });
  form.append(input, confirm, cancel);
  actions.replaceChildren(form);
  input.focus();
}

const known = new Map();

function show(alert, canManage) {
  const merged = { ...(known.get(alert.id) || {}), ...alert };
  known.set(alert.id, merged);
  const body = document.getElementById("alerts-body");
  const fresh = row(merged, canManage);
  const old = document.getElementById(`alert-${alert.id}`);
  if (old) {
    old.replaceWith(fresh);
  } else {
    body.prepend(fresh);
    counted(1);
  }
  document.getElementById("alerts-empty").hidden = body.children.length > 0;
}

// the footer's "n shown of m" follows the rows the stream adds
function counted(added) {
  const count = document.querySelector(".table-count");
  if (!count) return;
  count.dataset.shown = Number(count.dataset.shown) + added;
  count.dataset.total = Number(count.dataset.total) + added;
  count.textContent = t("table.showing", {
    shown: count.dataset.shown, total: number(Number(count.dataset.total), 0),
  });
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
