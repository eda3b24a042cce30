// A board's report formats and schedules: the forms that make and change them (filled from the
// kinds' catalog the page embeds) and the buttons that delete them. Everything goes through the
// API, which checks, scopes and audits it; its answer's words are shown as they come.
import { pageData, say, send, t } from "./core.js";

export function start() {
  const data = pageData();
  if (!data.catalog) return;
  startFormats(data);
  startSchedules(data);
}

// --- formats ---------------------------------------------------------------------------------

function columnItem(column, chosen, heading) {
  const item = document.createElement("li");
  item.dataset.key = column.key;
  item.classList.toggle("off", !chosen);
  const label = document.createElement("label");
  label.className = "check";
  const box = document.createElement("input");
  box.type = "checkbox";
  box.checked = chosen;
  box.addEventListener("change", () => {
    // the chosen columns come first, in their order: one ticked joins them at their end, one
    // unticked goes to the others below
    item.classList.toggle("off", !box.checked);
    const list = item.parentElement;
    const chosen = [...list.children].filter((other) => other !== item && !other.classList.contains("off"));
    if (!box.checked) list.append(item);
    else if (chosen.length) chosen[chosen.length - 1].after(item);
    else list.prepend(item);
    item.dispatchEvent(new Event("columns", { bubbles: true }));
  });
  label.append(box, ` ${column.label}`);
  const text = document.createElement("input");
  text.type = "text";
  text.maxLength = 60;
  text.value = heading || "";
  text.placeholder = t("rformat.heading_hint", { label: column.label });
  text.setAttribute("aria-label", t("rformat.heading_for", { label: column.label }));
  const up = document.createElement("button");
  up.type = "button";
  up.className = "quiet move";
  up.textContent = "↑";
  up.setAttribute("aria-label", t("rformat.move_up", { label: column.label }));
  up.addEventListener("click", () => {
    if (item.previousElementSibling) item.previousElementSibling.before(item);
    item.dispatchEvent(new Event("columns", { bubbles: true }));
    up.focus();
  });
  const down = document.createElement("button");
  down.type = "button";
  down.className = "quiet move";
  down.textContent = "↓";
  down.setAttribute("aria-label", t("rformat.move_down", { label: column.label }));
  down.addEventListener("click", () => {
    const next = item.nextElementSibling;
    if (next && !next.classList.contains("off")) next.after(item);
    item.dispatchEvent(new Event("columns", { bubbles: true }));
    down.focus();
  });
  item.append(label, text, up, down);
  return item;
}

function options(select, choices, selected) {
  select.replaceChildren(...choices.map(([value, text]) => {
    const option = new Option(text, value);
    option.selected = value === (selected ?? "");
    return option;
  }));
}

function startFormats(data) {
  const form = document.getElementById("format-form");
  if (!form) return;
  const list = document.getElementById("column-list");
  const message = document.getElementById("format-message");
  const cancel = document.getElementById("format-cancel");
  const title = document.getElementById("format-form-title");
  let editing = null;

  function chosenColumns() {
    return [...list.children].filter((item) => item.querySelector("input[type=checkbox]").checked);
  }

  function refreshSorts(selected) {
    const kind = data.catalog[form.kind.value];
    const labels = Object.fromEntries(kind.columns.map((c) => [c.key, c.label]));
    const current = selected ?? form.sort_by.value;
    options(form.sort_by, [["", t("rformat.no_sort")],
      ...chosenColumns().map((item) => [item.dataset.key, labels[item.dataset.key]])], current);
  }

  function fill(format) {
    const kind = data.catalog[form.kind.value];
    const headings = Object.fromEntries((format?.columns || []).map((c) => [c.column, c.label]));
    const order = format ? format.columns.map((c) => c.column) : kind.default_columns;
    const rest = kind.columns.filter((c) => !order.includes(c.key));
    const byKey = Object.fromEntries(kind.columns.map((c) => [c.key, c]));
    list.replaceChildren(
      ...order.filter((key) => byKey[key]).map((key) => columnItem(byKey[key], true, headings[key])),
      ...rest.map((c) => columnItem(c, false, "")),
    );
    options(form.group_by, [["", t("rformat.no_grouping")], ...kind.groupings.map((g) => [g.key, g.label])],
      format?.group_by);
    refreshSorts(format?.sort_by ?? "");
    form.sort_desc.checked = Boolean(format?.sort_desc);
  }

  function reset() {
    editing = null;
    form.reset();
    title.textContent = t("rformat.new");
    cancel.hidden = true;
    fill(null);
  }

  list.addEventListener("columns", () => refreshSorts());
  form.kind.addEventListener("change", () => fill(null));
  cancel.addEventListener("click", reset);
  fill(null);

  for (const button of document.querySelectorAll(".edit-format")) {
    button.addEventListener("click", () => {
      const format = data.formats.find((f) => f.id === Number(button.dataset.id));
      editing = format.id;
      form.elements["name"].value = format.name;
      form.kind.value = format.kind;
      form.file_type.value = format.file_type;
      fill(format);
      title.textContent = t("rformat.editing", { name: format.name });
      cancel.hidden = false;
      form.scrollIntoView({ behavior: "smooth", block: "start" });
      form.elements["name"].focus();
    });
  }
  for (const button of document.querySelectorAll(".delete-format")) {
    button.addEventListener("click", () => remove(`/api/v1/report-formats/${button.dataset.id}`,
      button.dataset.name, document.getElementById("formats-message")));
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      name: form.elements["name"].value.trim(),
      kind: form.kind.value,
      file_type: form.file_type.value,
      columns: chosenColumns().map((item) => {
        const heading = item.querySelector("input[type=text]").value.trim();
        return heading ? { column: item.dataset.key, label: heading } : { column: item.dataset.key };
      }),
      group_by: form.group_by.value || null,
      sort_by: form.sort_by.value || null,
      sort_desc: form.sort_desc.checked,
    };
    if (!body.columns.length) {
      say(message, t("rformat.pick_a_column"), "bad");
      return;
    }
    try {
      if (editing) await send("PUT", `/api/v1/report-formats/${editing}`, body);
      else await send("POST", `/api/v1/boards/${data.board_id}/report-formats`, body);
      say(message, t("rformat.saved", { name: body.name }), "good");
      location.reload();
    } catch (error) {
      say(message, error.message, "bad");
    }
  });
}

async function remove(url, name, message) {
  if (!window.confirm(t("rformat.confirm_delete", { name }))) return;
  try {
    await send("DELETE", url);
    location.reload();
  } catch (error) {
    say(message, error.message, "bad");
  }
}

// --- schedules -------------------------------------------------------------------------------

function startSchedules(data) {
  const form = document.getElementById("schedule-form");
  if (!form) return;
  const message = document.getElementById("schedule-message");
  const cancel = document.getElementById("schedule-cancel");
  const title = document.getElementById("schedule-form-title");
  const kindPart = document.getElementById("schedule-kind");
  const weekPart = document.getElementById("schedule-week");
  let editing = null;

  function shape() {
    kindPart.hidden = form.format_id.value !== "";
    weekPart.hidden = form.querySelector("input[name=cadence]:checked").value !== "weekly";
  }
  function reset() {
    editing = null;
    form.reset();
    title.textContent = t("rschedule.new");
    cancel.hidden = true;
    shape();
  }
  form.format_id.addEventListener("change", shape);
  for (const radio of form.querySelectorAll("input[name=cadence]")) radio.addEventListener("change", shape);
  cancel.addEventListener("click", reset);
  shape();

  for (const button of document.querySelectorAll(".edit-schedule")) {
    button.addEventListener("click", () => {
      const schedule = data.schedules.find((s) => s.id === Number(button.dataset.id));
      editing = schedule.id;
      form.elements["name"].value = schedule.name;
      form.format_id.value = schedule.format_id ?? "";
      form.kind.value = schedule.kind;
      form.file_type.value = schedule.file_type;
      form.querySelector(`input[name=cadence][value=${schedule.cadence}]`).checked = true;
      if (schedule.cadence === "weekly") {
        form.weekday.value = String(schedule.weekday);
        form.at_time.value = schedule.at_time.slice(0, 5);
      }
      for (const box of form.querySelectorAll("input[name=user_ids]")) {
        box.checked = schedule.user_ids.includes(Number(box.value));
      }
      form.emails.value = schedule.emails.join(", ");
      form.enabled.checked = schedule.enabled;
      title.textContent = t("rschedule.editing", { name: schedule.name });
      cancel.hidden = false;
      shape();
      form.scrollIntoView({ behavior: "smooth", block: "start" });
      form.elements["name"].focus();
    });
  }
  for (const button of document.querySelectorAll(".delete-schedule")) {
    button.addEventListener("click", () => remove(`/api/v1/report-schedules/${button.dataset.id}`,
      button.dataset.name, document.getElementById("schedules-message")));
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const cadence = form.querySelector("input[name=cadence]:checked").value;
    const formatId = form.format_id.value ? Number(form.format_id.value) : null;
    const body = {
      name: form.elements["name"].value.trim(),
      format_id: formatId,
      kind: formatId ? null : form.kind.value,
      file_type: formatId ? null : form.file_type.value,
      cadence,
      weekday: cadence === "weekly" ? Number(form.weekday.value) : null,
      at_time: cadence === "weekly" ? form.at_time.value : null,
      user_ids: [...form.querySelectorAll("input[name=user_ids]:checked")].map((box) => Number(box.value)),
      emails: form.emails.value.split(/[\s,;]+/).map((part) => part.trim()).filter(Boolean),
      enabled: form.enabled.checked,
    };
    try {
      if (editing) await send("PUT", `/api/v1/report-schedules/${editing}`, body);
      else await send("POST", `/api/v1/boards/${data.board_id}/report-schedules`, body);
      say(message, t("rschedule.saved", { name: body.name }), "good");
      location.reload();
    } catch (error) {
      say(message, error.message, "bad");
    }
  });
}
