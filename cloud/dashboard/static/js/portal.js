// A consumer's page: this month's use day by day, against the same days of last month and of
// the same month last year; and the answers to the ways to pay less (seen when shown, done,
// not for me), through the API.
import { pageData, t, send, say } from "./core.js";
import { timeSeries } from "./charts.js";

function badge(status) {
  const span = document.createElement("span");
  span.className = `badge b-${status}`;
  span.textContent = t(`rec_status.${status}`);
  return span;
}

function show(item, status) {
  item.dataset.status = status;
  item.className = item.className.replace(/\bs-\w+/, `s-${status}`);
  item.querySelector(".status .now").replaceChildren(badge(status));
  for (const button of item.querySelectorAll("button[data-answer]")) {
    button.hidden = button.dataset.answer === status;
  }
}

async function answer(item, status) {
  const row = await send("PATCH", `/api/v1/recommendations/${item.dataset.id}`, { status });
  show(item, row.status);
  return row;
}

function answers() {
  const list = document.getElementById("advice");
  const message = document.getElementById("advice-message");
  if (!list || !list.querySelector("button[data-answer]")) return;  // not the consumer's to answer
  for (const item of list.querySelectorAll("li[data-status='new']")) {
    answer(item, "seen").catch((error) => say(message, error.message, "bad"));
  }
  list.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-answer]");
    if (!button) return;
    button.disabled = true;
    try {
      await answer(button.closest("li"), button.dataset.answer);
      say(message, t("save.answer_saved"));
    } catch (error) {
      say(message, error.message, "bad");
    } finally {
      button.disabled = false;
    }
  });
}

export function start() {
  answers();
  const data = pageData();
  const usage = data.usage;
  if (!usage) return;
  // each day of this month as its date (midnight on an axis in UTC, which only names dates):
  // a bar stands centred over its own day's label, as the overview's daily charts do
  const x = usage.days.map((d) => Date.parse(`${d.day}T00:00:00Z`) / 1000);
  const pick = (days) => usage.days.map((_, i) => (days[i] ? days[i].energy_kwh : null));
  timeSeries("usage-chart", {
    x,
    series: [
      { label: t("chart.this_month"), unit: "kWh", bars: true, values: usage.days.map((d) => d.energy_kwh) },
      { label: t("chart.last_month"), unit: "kWh", values: pick(usage.previous_month.days) },
      { label: t("chart.last_year"), unit: "kWh", dash: [4, 4], values: pick(usage.same_month_last_year.days) },
    ],
    zone: "UTC",
    daily: true,
    empty: t("chart.no_usage"),
  });
}
