// A meter's page: a chart per kind of value the meter reports (power, energy per bucket,
// voltage and current per phase, power factor, distortion), over 6 hours to 30 days, drawn
// from the readings API — the same figures anyone may fetch from it.
import { get, pageData, post, say, t } from "./core.js";
import { seconds, timeSeries } from "./charts.js";

const RANGES = {  // hours, interval for instantaneous values, interval for energy
  "6h": [6, "raw", "15min"],
  "1d": [24, "15min", "hour"],
  "7d": [168, "hour", "day"],
  "30d": [720, "hour", "day"],
};
const STEP = { raw: 0, "15min": 900, hour: 3600, day: 86400 };

async function draw(data, chart, range) {
  const [hours, instant, energy] = RANGES[range];
  const interval = chart.kind === "energy" ? energy : instant;
  const to = new Date();
  const from = new Date(to.getTime() - hours * 3600_000);
  const answers = await Promise.all(chart.quantities.map((quantity) => get(
    `/api/v1/meters/${data.meter_id}/readings`,
    { quantity, interval, from: from.toISOString(), to: to.toISOString() },
  )));
  const stamps = new Set();
  const byQuantity = answers.map((answer) => {
    const values = new Map();
    for (const p of answer.points) {
      const at = seconds(p.ts || p.bucket);
      stamps.add(at);
      values.set(at, chart.kind === "energy" ? p.energy : (p.value ?? p.avg));
    }
    return values;
  });
  const x = [...stamps].sort((a, b) => a - b);
  const series = chart.quantities.map((quantity, i) => ({
    label: data.names[quantity],
    unit: data.units[quantity] || "",
    bars: chart.kind === "energy",
    values: x.map((at) => byQuantity[i].get(at) ?? null),
  }));
  const step = STEP[interval] || "local";
  timeSeries(chart.id, { x, series, zone: data.time_zone, step,
                         empty: t("chart.no_readings_range", { hours }) });
}

export function start() {
  const data = pageData();
  const buttons = document.querySelectorAll("button[data-meter-range]");
  const drawAll = (range) => data.charts.forEach((chart) => draw(data, chart, range).catch(
    (error) => say(document.querySelector(`#${chart.id} .chart-empty`), error.message, "bad"),
  ));
  for (const button of buttons) {
    button.addEventListener("click", () => {
      for (const other of buttons) other.setAttribute("aria-pressed", String(other === button));
      drawAll(button.dataset.meterRange);
    });
  }
  drawAll("1d");
  const confirm = document.getElementById("confirm-meter");
  confirm?.addEventListener("click", async () => {
    try {
      await post(`/api/v1/meters/${confirm.dataset.meter}/confirm`);
      say(document.getElementById("confirm-box"), t("meter.confirmed"), "good");
    } catch (error) {
      say(document.getElementById("confirm-box"), error.message, "bad");
    }
  });
}
