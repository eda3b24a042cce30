// Billing operations: set the board's billing cycle, start a run and follow its progress, issue the drafts one picks, mark
// overdue bills. Each goes through the API, so it is permitted, audited and idempotent as there.
import { get, number, pageData, post, say, send, t } from "./core.js";

function monthEnd(first) {
  const [year, month] = first.split("-").map(Number);
  const next = new Date(Date.UTC(year, month, 1));  // month is 1-based: this is the next one
  return next.toISOString().slice(0, 10);
}

async function followRun(boardId, done) {
  const box = document.getElementById("run-progress");
  const bar = box.querySelector(".progress > span");
  const status = document.getElementById("run-status");
  box.hidden = false;
  while (!done.finished) {
    const runs = await get("/api/v1/billing/runs", { board_id: boardId, limit: 1 });
    const run = runs.items[0];
    if (run && run.status === "running") {
      const share = run.consumers ? (100 * run.measured) / run.consumers : 0;
      bar.style.width = `${share.toFixed(0)}%`;
      status.textContent = t("billing.progress", { measured: number(run.measured, 0),
                                                  consumers: number(run.consumers, 0) });
    }
    await new Promise((wake) => setTimeout(wake, 700));
  }
  box.hidden = true;
}

function startRuns(data) {
  const form = document.getElementById("run-form");
  if (!form) return;
  const message = document.getElementById("run-message");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    const first = new FormData(form).get("month");
    const done = { finished: false };
    const watching = followRun(data.board_id, done);
    try {
      const run = await post("/api/v1/billing/runs", {
        board_id: data.board_id, period_start: first, period_end: monthEnd(first),
      });
      say(message, t("billing.run_done", {
        created: run.created, revised: run.revised, unchanged: run.unchanged,
        estimated: run.estimated, failed: run.failed, unmeasured: run.unmeasured,
      }), run.failed ? "bad" : "good");
      setTimeout(() => location.reload(), 1500);
    } catch (error) {
      say(message, error.message, "bad");
    } finally {
      done.finished = true;
      await watching;
      button.disabled = false;
    }
  });
}

function startIssuing() {
  const button = document.getElementById("issue-selected");
  if (!button) return;
  const boxes = () => [...document.querySelectorAll("input.pick")];
  const update = () => {
    const picked = boxes().filter((b) => b.checked).length;
    button.disabled = picked === 0;
    button.textContent = picked === 1 ? t("billing.issue_1")
      : picked ? t("billing.issue_n", { n: picked }) : t("billing.issue_selected");
  };
  document.addEventListener("change", (event) => { if (event.target.matches("input.pick")) update(); });
  const selectDrafts = document.getElementById("select-drafts");
  if (selectDrafts) selectDrafts.disabled = boxes().length === 0;  // no drafts on this page
  selectDrafts?.addEventListener("click", () => {
    boxes().forEach((b) => { b.checked = true; });
    update();
  });
  const message = document.getElementById("issue-message");
  button.addEventListener("click", async () => {
    const ids = boxes().filter((b) => b.checked).map((b) => Number(b.value));
    button.disabled = true;
    try {
      const result = await post("/api/v1/invoices/issue", { invoice_ids: ids });
      const refused = result.refused.map((r) => r.reason).join("; ");
      say(message, t("billing.issued", { n: result.issued.length }) + (refused ? ` ${refused}` : ""),
          refused ? "bad" : "good");
      setTimeout(() => location.reload(), 1200);
    } catch (error) {
      say(message, error.message, "bad");
      button.disabled = false;
    }
  });
}

function startOverdue(data) {
  const button = document.getElementById("mark-overdue");
  if (!button) return;
  const message = document.getElementById("overdue-message");
  button.addEventListener("click", async () => {
    try {
      const result = await post(`/api/v1/billing/overdue?board_id=${data.board_id}`);
      say(message, t("billing.marked", { n: result.marked_overdue }), "good");
    } catch (error) {
      say(message, error.message, "bad");
    }
  });
}

function startCycle(data) {
  const form = document.getElementById("cycle-form");
  if (!form) return;
  const message = document.getElementById("cycle-message");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = new FormData(form);
    try {
      const cycle = await send("PUT", `/api/v1/boards/${data.board_id}/billing-cycle`, {
        cycle_day: Number(fields.get("cycle_day")),
        cycle: fields.get("cycle"),
        auto_issue: fields.get("auto_issue") === "on",
        enabled: fields.get("enabled") === "on",
      });
      say(message, cycle.enabled ? t("cycle.saved", { day: cycle.next_run_on }) : t("cycle.saved_paused"),
          "good");
      setTimeout(() => location.reload(), 1200);
    } catch (error) {
      say(message, error.message, "bad");
    }
  });
}

export function start() {
  const data = pageData();
  startCycle(data);
  startRuns(data);
  startIssuing();
  startOverdue(data);
}
