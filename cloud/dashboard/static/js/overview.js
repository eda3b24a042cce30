// The overview: the board's load over the last day, week or month (from the aggregates'
// API), against its capacity, and the alerts opened per day.
import { get, pageData, t } from "./core.js";
import { rangeButtons, seconds, timeSeries } from "./charts.js";

const STEP = { "15min": 900, hour: 3600, day: 86400 };

export async function loadChart(id, data, days) {
  const to = new Date();
  const from = new Date(to.getTime() - days * 86400_000);
  const interval = days <= 2 ? "15min" : "hour";
  const load = await get("/api/v1/analytics/load", {
    board_id: data.board_id, from: from.toISOString(), to: to.toISOString(), interval,
  });
  const x = load.points.map((p) => seconds(p.bucket));
  const series = [{ label: t("chart.load"), unit: "kW", values: load.points.map((p) => p.kw) }];
  if (data.capacity_kw) {
    series.push({ label: t("chart.capacity"), unit: "kW", dash: [6, 4],
                  values: x.map(() => Number(data.capacity_kw)) });
  }
  timeSeries(id, { x, series, zone: data.time_zone, step: STEP[interval],
                   empty: t("chart.no_load", { n: days }) });
}

export function start() {
  const data = pageData();
  const first = rangeButtons("load-chart", (days) => loadChart("load-chart", data, Number(days)));
  loadChart("load-chart", data, Number(first || 1));
  const perDay = data.alerts_per_day || [];
  if (document.getElementById("alert-chart")) {
    timeSeries("alert-chart", {
      x: perDay.map((d) => seconds(`${d.day}T00:00:00Z`)),
      series: [{ label: t("chart.alerts_opened"), unit: t("chart.alerts"), bars: true,
                 values: perDay.map((d) => d.opened) }],
      zone: "UTC",
      daily: true,
      counts: true,
      empty: t("chart.no_alerts"),
    });
  }
}
