// Time-series charts drawn in the browser with uPlot (served by the app): times in the board's
// zone (named on the axis), units on the value axis, hover values, drag to zoom (double-click
// to zoom out), gaps in the data drawn as gaps, and a sentence instead of an empty plot.
import { number, t } from "./core.js";

export const drawn = {};  // chart id -> the data it drew (for tests and for people who ask)
window.gridgateCharts = drawn;
export const plots = {};  // chart id -> its uPlot (for tests: the ticks it drew, where)
window.gridgatePlots = plots;
const resizers = {};  // chart id -> the observer that keeps its plot as wide as its box

const COLORS = ["#2b6cb0", "#c05621", "#2f855a", "#805ad5", "#b83280", "#4a5568"];

function widthOf(box) {
  return Math.max(260, Math.floor(box.getBoundingClientRect().width) - 4);
}

// The time axis: each tick names the time of day (or the day, month or year, as far apart as
// the ticks are); a second line gives the date on the first tick and where the day changes, with
// the year only when it is not this year's (or once, for months). Ticks stand at least the widest
// label and a gap apart, so labels never run together however narrow the chart: a phone gets
// fewer ticks, not overlapping ones.
const AXIS_FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
const TICK_GAP_PX = 14;
const DAY_S = 86400;
// the 28th of each month, at noon so it is the 28th in any zone: the widest "28 May" of them
const SAMPLE_DAYS = Array.from({ length: 12 }, (_, month) => new Date(Date.UTC(2000, month, 28, 12)));
let measurer = null;

function textWidth(text) {
  measurer ??= document.createElement("canvas").getContext("2d");
  measurer.font = AXIS_FONT;
  return Math.max(...text.split("\n").map((line) => measurer.measureText(line).width));
}

function yearIn(seconds, zone) {
  return uPlot.tzDate(new Date(seconds * 1000), zone).getFullYear();
}

const widest = {};  // "with year" / "without" -> px

function tickSpace(zone) {
  return (u, axisIdx, min, max) => {
    const thisYear = yearIn(Date.now() / 1000, zone);
    const withYear = yearIn(min, zone) !== thisYear || yearIn(max, zone) !== thisYear;
    widest[withYear] ??= Math.max(
      textWidth("00:00:00"),
      ...SAMPLE_DAYS.map((d) => textWidth(uPlot.fmtDate(withYear ? "{D} {MMM} {YYYY}" : "{D} {MMM}")(d))),
    );
    return Math.ceil(widest[withYear]) + TICK_GAP_PX;
  };
}

function tickLabels(zone) {
  return (u, splits, axisIdx, space, incr) => {
    const thisYear = yearIn(Date.now() / 1000, zone);
    let before = null;
    return splits.map((split) => {
      const date = uPlot.tzDate(new Date(split * 1000), zone);
      const label = tickLabel(date, before, incr, thisYear);
      before = date;
      return label;
    });
  };
}

function tickLabel(date, before, incr, thisYear) {
  const year = date.getFullYear();
  const newYear = before === null || before.getFullYear() !== year;
  const otherYear = year !== thisYear;
  if (incr >= 365 * DAY_S) return String(year);
  if (incr >= 28 * DAY_S) return uPlot.fmtDate("{MMM}")(date) + (newYear ? `\n${year}` : "");
  if (incr >= DAY_S) return uPlot.fmtDate("{D} {MMM}")(date) + (newYear && otherYear ? `\n${year}` : "");
  const time = uPlot.fmtDate(incr >= 60 ? "{HH}:{mm}" : "{HH}:{mm}:{ss}")(date);
  const newDay = newYear || before.getMonth() !== date.getMonth() || before.getDate() !== date.getDate();
  if (!newDay) return time;
  return `${time}\n${uPlot.fmtDate(otherYear ? "{D} {MMM} {YYYY}" : "{D} {MMM}")(date)}`;
}

// x: seconds since epoch; series: [{label, unit, values, bars}]. Returns true if drawn.
export function timeSeries(id, { x, series, zone, empty, step, daily, hourOfDay, counts }) {
  const box = document.getElementById(id);
  if (!box) return false;
  resizers[id]?.disconnect();
  plots[id]?.destroy();
  delete plots[id];
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
      // one point alone stands in its step (or an hour) either side: uPlot would give it a day
      // in milliseconds, a thousand days in our seconds
      x: { time: true, range: (u, lo, hi) => (onePoint(u.data[0]) ? aroundPoint(u.data[0][0], step) : [lo, hi]) },
      // bars stand on zero; lines (voltage near 230 V) use the range of their values
      ...(series.some((s) => s.bars) ? { y: { range: (u, lo, hi) => [0, hi > 0 ? hi * 1.1 : 1] } } : {}),
    },
    axes: [
      {
        label: hourOfDay ? t("chart.hour_of_day", { zone: hourOfDay })
          : daily ? t("chart.day") : t("chart.time_in", { zone }),
        labelSize: 18,
        size: 50,  // two lines of ticks and the axis label, none touching
        font: AXIS_FONT,
        // days as "27 Nov", hours as "18:00": the way the rest of the app writes them
        ...(!hourOfDay ? { values: tickLabels(zone), space: tickSpace(zone) } : {}),
        ...(daily ? { incrs: [DAY_S, 2 * DAY_S, 7 * DAY_S, 14 * DAY_S] } : {}),
        ...(hourOfDay ? {
          values: (u, ticks) => ticks.map((v) => `${String(new Date(v * 1000).getUTCHours()).padStart(2, "0")}:00`),
          incrs: [3600, 3 * 3600, 6 * 3600],
        } : {}),
      },
      {
        label: units.join(", "),
        labelSize: 18,
        size: 64,
        font: AXIS_FONT,
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
  plots[id] = plot;
  resizers[id] = new ResizeObserver(() => plot.setSize({ width: widthOf(box), height: 260 }));
  resizers[id].observe(box);
  return true;
}

function onePoint(xs) {
  return xs.length > 0 && xs[0] === xs[xs.length - 1];
}

function aroundPoint(at, step) {
  const pad = Number(step) || 3600;  // "local" or none: an hour
  return [at - pad, at + pad];
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
