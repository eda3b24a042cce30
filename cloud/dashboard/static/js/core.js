// What every page's script needs: its words and data (embedded in the page, never in the
// script), calls to the API with the CSRF token, and numbers and times as people read them.

export const strings = JSON.parse(document.getElementById("strings")?.textContent || "{}");

export function t(key, values = {}) {
  // a count of one takes the key's singular where it has one ("1 bill", not "1 bills")
  let text = (String(values.n) === "1" && strings[`${key}_one`]) || strings[key] || key;
  for (const [name, value] of Object.entries(values)) text = text.replaceAll(`{${name}}`, value);
  return text;
}

export function pageData() {
  const element = document.getElementById("page-data");
  return element ? JSON.parse(element.textContent) : {};
}

function csrf() {
  const match = document.cookie.match(/(?:^|; )gg_csrf=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export class ApiError extends Error {}

async function answer(response) {
  if (response.status === 401) {  // the session ended: sign in again, then come back here
    window.location.href = `/dashboard/session/refresh?next=${encodeURIComponent(location.pathname + location.search)}`;
    throw new ApiError(t("session_ended"));
  }
  if (!response.ok) {
    const problem = await response.json().catch(() => ({ detail: response.statusText }));
    const detail = String(problem.detail || response.statusText);
    throw new ApiError(detail.charAt(0).toUpperCase() + detail.slice(1));  // a sentence
  }
  return response.status === 204 ? null : response.json();
}

export async function get(url, params = {}) {
  const query = new URLSearchParams(params).toString();
  return answer(await fetch(query ? `${url}?${query}` : url, { credentials: "same-origin" }));
}

export async function send(method, url, body) {
  return answer(await fetch(url, {
    method,
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  }));
}

export const post = (url, body = {}) => send("POST", url, body);

const numbers = new Map();
export function number(value, decimals = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  const key = decimals;
  if (!numbers.has(key)) {
    numbers.set(key, new Intl.NumberFormat(document.documentElement.lang || "en",
      { minimumFractionDigits: decimals, maximumFractionDigits: decimals }));
  }
  return numbers.get(key).format(value);
}

// '1 Oct 2026, 05:30 IST', as the server writes times (the zone's short name from the en-IN
// locale, which knows IST where plain English says GMT+5:30)
export function localTime(iso, zone) {
  const when = new Date(iso);
  const text = new Intl.DateTimeFormat("en-GB", {
    timeZone: zone, day: "numeric", month: "short", year: "numeric", hour: "2-digit",
    minute: "2-digit", hourCycle: "h23",
  }).format(when);
  const name = new Intl.DateTimeFormat("en-IN", { timeZone: zone, timeZoneName: "short" })
    .formatToParts(when).find((part) => part.type === "timeZoneName")?.value || zone;
  return `${text} ${name}`;
}

// one message element per page section, announced to screen readers
export function say(element, text, kind = "") {
  if (!element) return;
  element.textContent = text;
  element.className = kind ? `notice ${kind}` : "notice";
  element.hidden = !text;
  element.setAttribute("role", kind === "bad" ? "alert" : "status");
}
