// Analytics: the board's daily peak and mean load over the period against its capacity, and
// its mean load by hour of the day, weekdays and weekends apart.
import { get, pageData, t } from "./core.js";
import { seconds, timeSeries } from "./charts.js";

export async function start() {
  const data = pageData();
  if (data.error) return;  // the page says what is wrong with the period; nothing to draw
  const load = await get("/api/v1/analytics/load", {
    board_id: data.board_id, from: data.start_instant, to: data.end_instant, interval: "hour",
  });
  const x = load.points.map((p) => seconds(p.bucket));
  const series = [{ label: t("chart.load"), unit: "kW", values: load.points.map((p) => p.kw) }];
  if (data.capacity_kw) {
    series.push({ label: t("chart.capacity"), unit: "kW", dash: [6, 4],
                  values: x.map(() => Number(data.capacity_kw)) });
  }
  timeSeries("daily-load-chart", { x, series, zone: data.time_zone, step: 3600 });
  const profile = await get("/api/v1/analytics/profile", {
    board_id: data.board_id, from: data.from, to: data.to,
  });
  // hours of the day, drawn on a reference day (1 January 2001, in the board's zone)
  const hours = profile.hours.map((h) => Date.UTC(2001, 0, 1, h.hour) / 1000);
  timeSeries("profile-chart", {
    x: hours,
    series: [
      { label: t("chart.weekdays"), unit: "kW", values: profile.hours.map((h) => h.weekday_kw) },
      { label: t("chart.weekends"), unit: "kW", values: profile.hours.map((h) => h.weekend_kw) },
    ],
    zone: "UTC",
    hourOfDay: data.time_zone,
  });
}
