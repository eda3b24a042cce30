// Time-series charts drawn in the browser with uPlot (served by the app): times in the board's
// zone (named on the axis), units on the value axis, hover values, drag to zoom (double-click
// to zoom out), gaps in the data drawn as gaps, and a sentence instead of an empty plot.
import { number, t } from "./core.js";

export const drawn = {};  // chart id -> the data it drew (for tests and for people who ask)
window.gridgateCharts = drawn;

const COLORS = ["#2b6cb0", "#c05621", "#2f855a", "#805ad5", "#b83280", "#4a5568"];

function widthOf(box) {
  return Math.max(260, Math.floor(box.getBoundingClientRect().width) - 4);
}

// x: seconds since epoch; series: [{label, unit, values, bars}]. Returns true if drawn.
// uPlot's tick formats: [step, format, and the first line's context when the year, month,
// day, hour, minute or second changes, mode]
const TIME_TICKS = [
  [86400 * 365, "{YYYY}", null, null, null, null, null, null, 1],
  [86400 * 28, "{MMM}", "\n{YYYY}", null, null, null, null, null, 1],
  [86400, "{D} {MMM}", "\n{YYYY}", null, null, null, null, null, 1],
  [3600, "{HH}:{mm}", "\n{D} {MMM} {YYYY}", null, "\n{D} {MMM}", null, null, null, 1],
  [60, "{HH}:{mm}", "\n{D} {MMM} {YYYY}", null, "\n{D} {MMM}", null, null, null, 1],
  [1, "{HH}:{mm}:{ss}", "\n{D} {MMM} {YYYY}", null, "\n{D} {MMM}", null, null, null, 1],
];

export function timeSeries(id, { x, series, zone, empty, step, daily, hourOfDay, counts }) {
  const box = document.getElementById(id);
  if (!box) return false;
  box.querySelector(".uplot")?.remove();
  const message = box.querySelector(".chart-empty");
  drawn[id] = { x, series: series.map((s) => ({ label: s.label, values: s.values })) };
  const hasData = series.some((s) => s.values.some((v) => v !== null && v !== undefined));
  if (!x.length || !hasData) {
    message.textContent = empty || message.dataset.empty;
    message.hidden = false;
    return false;
  }
  message.hidden = true;
  const units = [...new Set(series.map((s) => s.unit))];
  const withGaps = step ? addGaps(x, series, step) : { x, series };
  const options = {
    width: widthOf(box),
    height: 260,
    tzDate: (seconds) => uPlot.tzDate(new Date(seconds * 1000), zone),
    cursor: { drag: { x: true, y: false } },
    scales: {
      x: { time: true },
      // bars stand on zero; lines (voltage near 230 V) use the range of their values
      ...(series.some((s) => s.bars) ? { y: { range: (u, lo, hi) => [0, hi > 0 ? hi * 1.1 : 1] } } : {}),
    },
    axes: [
      {
        label: hourOfDay ? t("chart.hour_of_day", { zone: hourOfDay })
          : daily ? t("chart.day") : t("chart.time_in", { zone }),
        labelSize: 18,
        size: 46,
        // days as "27 Nov", hours as "18:00": the way the rest of the app writes them
        ...(!daily && !hourOfDay ? { values: TIME_TICKS } : {}),
        ...(daily ? {
          values: (u, ticks) => ticks.map((v) => dayLabel(v, zone)),
          incrs: [86400, 2 * 86400, 7 * 86400, 14 * 86400],
          space: 50,
        } : {}),
        ...(hourOfDay ? {
          values: (u, ticks) => ticks.map((v) => `${String(new Date(v * 1000).getUTCHours()).padStart(2, "0")}:00`),
          incrs: [3600, 3 * 3600, 6 * 3600],
        } : {}),
      },
      {
        label: units.join(", "),
        labelSize: 18,
        size: 64,
        // as many decimals as the step between ticks has: 0.95, 0.975, 1 not 0.9, 1.0, 1.0
        values: (u, ticks, axis, space, step) => ticks.map((v) => number(v, decimalsOf(step ?? 0.1))),
        // things counted (alerts) step by whole numbers
        ...(counts ? { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000] } : {}),
      },
    ],
    series: [
      { label: hourOfDay ? t("chart.hour") : daily ? t("chart.day") : t("chart.time"),
        value: (u, v) => (v === null ? "—" : hourOfDay ? `${String(new Date(v * 1000).getUTCHours()).padStart(2, "0")}:00` : daily ? dayLabel(v, zone) : uPlot.fmtDate("{D} {MMM} {HH}:{mm}")(uPlot.tzDate(new Date(v * 1000), zone))) },
      ...withGaps.series.map((s, i) => ({
        label: s.label,
        stroke: COLORS[i % COLORS.length],
        fill: s.bars ? `${COLORS[i % COLORS.length]}55` : undefined,
        width: 1.6,
        spanGaps: false,
        paths: s.bars ? uPlot.paths.bars({ size: [0.8, 40] }) : undefined,
        // a value with gaps on both sides has no line to draw: it gets a dot, however dense
        points: s.bars ? undefined : { filter: (u, i, shown) => (shown ? null : isolated(u.data[i])) },
        value: (u, v) => (v === null || v === undefined ? "—" : `${number(v, 2)} ${s.unit}`),
        dash: s.dash,
      })),
    ],
  };
  const plot = new uPlot(options, [withGaps.x, ...withGaps.series.map((s) => s.values)], box);
  new ResizeObserver(() => plot.setSize({ width: widthOf(box), height: 260 })).observe(box);
  return true;
}

function decimalsOf(step) {
  return (String(Number(step.toPrecision(6))).split(".")[1] || "").length;
}

function isolated(values) {
  const lone = [];
  for (let i = 0; i < values.length; i += 1) {
    const alone = (j) => j < 0 || j >= values.length || values[j] === null || values[j] === undefined;
    if (!alone(i) && alone(i - 1) && alone(i + 1)) lone.push(i);
  }
  return lone.length ? lone : null;
}

function dayLabel(seconds, zone) {
  return uPlot.fmtDate("{D} {MMM}")(uPlot.tzDate(new Date(seconds * 1000), zone));
}

// a null where two points are further apart than 2.5 steps, so uPlot draws a gap; with step
// "local" (raw readings, whose cadence changes: imported history every 15 minutes, live reads
// every few seconds) 2.5 times the spacing the points kept before
function addGaps(x, series, step) {
  const xs = [];
  const values = series.map(() => []);
  let cadence = step === "local" ? null : step;
  for (let i = 0; i < x.length; i += 1) {
    const apart = i > 0 ? x[i] - x[i - 1] : 0;
    if (i > 0 && cadence && apart > cadence * 2.5) {
      xs.push(x[i - 1] + cadence);
      values.forEach((v) => v.push(null));
    } else if (i > 0 && step === "local") {
      cadence = apart;
    }
    xs.push(x[i]);
    series.forEach((s, j) => values[j].push(s.values[i]));
  }
  return { x: xs, series: series.map((s, j) => ({ ...s, values: values[j] })) };
}

export const seconds = (iso) => Date.parse(iso) / 1000;

export function rangeButtons(id, onPick) {
  const buttons = document.querySelectorAll(`button[data-chart="${id}"]`);
  for (const button of buttons) {
    button.addEventListener("click", () => {
      for (const other of buttons) other.setAttribute("aria-pressed", String(other === button));
      onPick(button.dataset.range);
    });
  }
  return buttons.length ? buttons[0].dataset.range : null;
}
