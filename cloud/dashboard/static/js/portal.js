// A consumer's page: this month's use day by day, against the same days of last month and of
// the same month last year.
import { pageData, t } from "./core.js";
import { timeSeries } from "./charts.js";

export function start() {
  const data = pageData();
  const usage = data.usage;
  if (!usage) return;
  // each day of this month at noon in the board's zone, approximated as noon UTC + offset 0:
  // the axis shows dates, so the hour does not matter
  const x = usage.days.map((d) => Date.parse(`${d.day}T12:00:00Z`) / 1000);
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
