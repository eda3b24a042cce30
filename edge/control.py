"""The gateway's end of the control channel: commands from the cloud, each run at most once.

The syncer hears from every acknowledgement whether commands wait (`wake`). The controller then
posts a signed `ControlRequest` to `POST /api/v1/control/exchange` carrying the results it has
not reported yet, and gets the commands still to run, which it accepts only with a valid
signature of the cloud's key (`cloud.pub`, written at enrollment; a gateway enrolled before keys
were given learns it once from `/api/v1/control/cloud-key` and keeps it).

At most once: a command's id is written to the store, with the moment it started, before it
runs, and that write is durable (the store commits with `synchronous=FULL`). A command the store
already knows is never started again, whatever the cloud sends; one that was running when the
daemon stopped (a crash, a power cut) is reported as interrupted at the next start. The cloud
hands a command over until its result arrives, so a lost answer costs nothing but a resend.
Results are kept until reported, and the ids for `KEEP_IDS` after.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from shared import (
    CLOUD_SIGNATURE_HEADER,
    DEFAULT_MAX_DRIFT_S,
    GATEWAY_HEADER,
    SIGNATURE_HEADER,
    Command,
    CommandKind,
    CommandResult,
    ConfigReport,
    ControlReply,
    ControlRequest,
    DesiredConfig,
    KeyInvalid,
    Outcome,
    PrivateKey,
    PublicKey,
    SignatureInvalid,
    backfill_range_problem,
    load_public_key,
    sign_body,
    verify_body,
)

from .cloud_http import CloudAnswered, CloudUnreachable, Transport, cloud_client
from .refusal import CommandRefused
from .store import Store

log = structlog.get_logger(__name__)
PREFIX = "command:"
REPORT_KEY = "config:report"  # the outcome of the last configuration handled, and if told
KEEP_IDS = timedelta(days=90)
PERIOD_S = 300.0  # asked at least this often, so results go out even without a wake-up


@dataclass
class Actions:
    """What the daemon does for each kind of command."""

    read_now: Callable[[str, list[str] | None], Awaitable[dict[str, Any]]]
    switch_supply: Callable[[str, bool], Awaitable[dict[str, Any]]]
    backfill: Callable[[str, datetime, datetime], Awaitable[dict[str, Any]]]
    set_meter_clock: Callable[[str, float], Awaitable[dict[str, Any]]]
    doctor: Callable[[], Awaitable[dict[str, Any]]]
    log_lines: Callable[[int], list[str]]
    restart: Callable[[], None]
    # configuration: try a version from the cloud; a version a stop interrupted; what runs now
    apply_config: Callable[[DesiredConfig], Awaitable[ConfigReport]]
    resume_config: Callable[[], Awaitable[ConfigReport | None]]
    running: Callable[[int, str, str], ConfigReport]
    # install a version beside the running one (command id, version, wheel sha256 or None)
    update: Callable[[str, str, str | None], Awaitable[tuple[dict[str, Any], str]]] | None = None


class Controller:
    def __init__(
        self,
        *,
        gateway_id: str,
        key: PrivateKey,
        cloud_url: str,
        cloud_key_path: Path,
        store_call,  # async callable running a Store method in the store's thread
        actions: Actions,
        timeout_s: float = 10.0,
        transport: Transport | None = None,
    ) -> None:
        self.gateway_id = gateway_id
        self.key = key
        self._cloud_key_path = cloud_key_path
        self._cloud_key: PublicKey | None = None
        self._store = store_call
        self._actions = actions
        self._client = cloud_client(cloud_url, timeout_s, transport)
        self.wake = asyncio.Event()
        self.last_error: str | None = None
        self.ran = 0  # commands run by this process

    async def close(self) -> None:
        await self._client.aclose()

    # -- the store ----------------------------------------------------------------------------
    async def _known(self) -> dict[str, dict[str, Any]]:
        items = await self._store(Store.state_items, PREFIX)
        return {key[len(PREFIX) :]: value for key, value in items.items()}

    async def _save(self, command_id: str, record: dict[str, Any]) -> None:
        await self._store(Store.put_state, {PREFIX + command_id: record})

    async def recover(self) -> int:
        """Commands that were running when the daemon stopped: interrupted, never rerun; ids
        reported long ago: forgotten. How many were interrupted."""
        now = datetime.now(UTC)
        interrupted = 0
        stale = []
        for command_id, record in (await self._known()).items():
            if record.get("started_at") and not record.get("finished_at"):
                interrupted += 1
                await self._save(
                    command_id,
                    record
                    | {
                        "finished_at": now.isoformat(),
                        "outcome": Outcome.INTERRUPTED.value,
                        "detail": "the gateway stopped while running it; not run again",
                    },
                )
            elif (
                record.get("reported")
                and record.get("finished_at")
                and now - datetime.fromisoformat(record["finished_at"]) > KEEP_IDS
            ):
                stale.append(PREFIX + command_id)
        if stale:
            await self._store(Store.delete_state, stale)
        if interrupted:
            log.warning("commands interrupted by a stop will not run again", count=interrupted)
        return interrupted

    # -- the exchange -------------------------------------------------------------------------
    async def _cloud_public_key(self) -> PublicKey:
        if self._cloud_key is None:
            path = self._cloud_key_path
            if not await asyncio.to_thread(path.exists):
                response = await self._client.get("/api/v1/control/cloud-key")
                response.raise_for_status()
                try:
                    text = str(response.json()["public_key"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise KeyInvalid(f"the cloud's answer holds no public key: {exc!r}") from exc
                load_public_key(text)
                await asyncio.to_thread(path.write_text, text + "\n")
                log.warning(
                    "the cloud's key was not given at enrollment; learned and kept it",
                    path=str(path),
                )
            text = (await asyncio.to_thread(path.read_text)).strip()
            self._cloud_key = load_public_key(text)
        return self._cloud_key

    async def exchange(self) -> int:
        """Report what is finished, take what is to run, run it; repeat while the cloud hands
        over something new. How many commands ran."""
        ran = 0
        for _ in range(10):  # bounded: a cloud that keeps sending commands waits for the next
            known = await self._known()
            unreported = {
                cid: r for cid, r in known.items() if r.get("finished_at") and not r.get("reported")
            }
            report = await self._store(Store.get_state, REPORT_KEY)
            told = report if report and not report.get("reported") else None
            reply = await self._post(unreported, told)
            for command_id in unreported:
                await self._save(command_id, known[command_id] | {"reported": True})
            if told is not None:
                report = told | {"reported": True}
                await self._store(Store.put_state, {REPORT_KEY: report})
            handled = await self._handle_config(reply, report)
            fresh = [c for c in reply.commands if str(c.id) not in known]
            # handed over again: our answer was lost on the way; report it again, never rerun
            resend = [
                str(c.id)
                for c in reply.commands
                if str(c.id) in known and known[str(c.id)].get("finished_at")
            ]
            for command_id in resend:
                await self._save(command_id, known[command_id] | {"reported": False})
            if not fresh and not resend and not handled:
                return ran
            for command in fresh:
                await self._run(command)
                ran += 1
                if command.kind in (CommandKind.RESTART, CommandKind.UPDATE):
                    return ran  # the rest wait for the daemon that starts next
        return ran

    async def _handle_config(self, reply: ControlReply, report: dict[str, Any] | None) -> bool:
        """Try the configuration the cloud handed over, if its version is new here; one handed
        over again means our report was lost: it is sent again. Whether there is news to tell."""
        if reply.config is None:
            return False
        if report is not None and reply.config.version <= report["version"]:
            if report.get("reported"):
                await self._store(Store.put_state, {REPORT_KEY: report | {"reported": False}})
                return True
            return False
        outcome = await self._actions.apply_config(reply.config)
        await self._keep_report(outcome)
        return True

    async def _keep_report(self, report: ConfigReport) -> None:
        await self._store(
            Store.put_state, {REPORT_KEY: report.model_dump(mode="json") | {"reported": False}}
        )

    async def start_config(self) -> None:
        """At start: finish a version a stop interrupted, and tell the cloud what runs."""
        report = await self._actions.resume_config()
        if report is None:
            saved = await self._store(Store.get_state, REPORT_KEY) or {}
            report = self._actions.running(
                saved.get("version", 0), saved.get("state", "applied"), saved.get("detail", "")
            )
        await self._keep_report(report)

    async def _post(
        self, unreported: dict[str, dict[str, Any]], config: dict[str, Any] | None = None
    ) -> ControlReply:
        results = [
            CommandResult(
                id=cid,
                outcome=record["outcome"],
                detail=record.get("detail", "")[:2000],
                data=record.get("data") or {},
                started_at=record.get("started_at"),
                finished_at=record["finished_at"],
            )
            for cid, record in list(unreported.items())[:50]
        ]
        request = ControlRequest(
            gateway_id=self.gateway_id,
            sent_at=datetime.now(UTC),
            results=results,
            config=ConfigReport.model_validate({k: v for k, v in config.items() if k != "reported"})
            if config
            else None,
        )
        body = request.model_dump_json().encode()
        response = await self._client.post(
            "/api/v1/control/exchange",
            content=body,
            headers={
                "Content-Type": "application/json",
                GATEWAY_HEADER: self.gateway_id,
                SIGNATURE_HEADER: sign_body(self.key, body),
            },
        )
        if response.status_code != 200:
            raise CloudAnswered(response)
        try:
            verify_body(
                await self._cloud_public_key(),
                response.content,
                response.header(CLOUD_SIGNATURE_HEADER),
            )
        except (SignatureInvalid, KeyInvalid) as exc:
            raise SignatureInvalid(f"the commands are not signed by the cloud: {exc}") from exc
        return ControlReply.model_validate_json(response.content)

    # -- running ------------------------------------------------------------------------------
    async def _run(self, command: Command) -> None:
        command_id = str(command.id)
        record: dict[str, Any] = {
            "kind": command.kind,
            "meter_id": command.meter_id,
            "received_at": datetime.now(UTC).isoformat(),
            "started_at": datetime.now(UTC).isoformat(),
        }
        await self._save(command_id, record)  # durable before anything is done: at most once
        log.info("running a command", command=command_id, kind=command.kind, meter=command.meter_id)
        started = time.monotonic()
        outcome, detail, data = Outcome.SUCCEEDED, "", {}
        try:
            if command.expires_at <= datetime.now(UTC):
                raise CommandRefused("it expired before it arrived")
            data, detail = await self._perform(command)
        except CommandRefused as exc:
            outcome, detail = Outcome.REFUSED, str(exc)
        except Exception as exc:  # a command's failure is its result, not the daemon's
            outcome, detail = Outcome.FAILED, f"{type(exc).__name__}: {exc}"[:2000]
        self.ran += 1
        await self._save(
            command_id,
            record
            | {
                "finished_at": datetime.now(UTC).isoformat(),
                "outcome": outcome.value,
                "detail": detail[:2000],
                "data": data,
            },
        )
        log.info(
            "command done",
            command=command_id,
            kind=command.kind,
            outcome=outcome.value,
            seconds=round(time.monotonic() - started, 2),
        )
        if command.kind in (CommandKind.RESTART, CommandKind.UPDATE) and (
            outcome == Outcome.SUCCEEDED
        ):
            with contextlib.suppress(Exception):  # tell the cloud now; else after the restart
                await self._post({command_id: await self._record(command_id)})
                await self._save(command_id, await self._record(command_id) | {"reported": True})
            self._actions.restart()

    async def _record(self, command_id: str) -> dict[str, Any]:
        return await self._store(Store.get_state, PREFIX + command_id)

    async def _perform(self, command: Command) -> tuple[dict[str, Any], str]:
        kind = command.kind
        if kind == CommandKind.READ_NOW:
            if not command.meter_id:
                raise CommandRefused("no meter named")
            values = await self._actions.read_now(command.meter_id, command.args.quantities)
            return values, f"{len(values.get('values', {}))} values read"
        if kind in (CommandKind.DISCONNECT, CommandKind.RECONNECT):
            if not command.meter_id:
                raise CommandRefused("no meter named")
            relay = await self._actions.switch_supply(
                command.meter_id, kind == CommandKind.RECONNECT
            )
            return relay, f"supply {'connected' if relay['connected'] else 'disconnected'}"
        if kind == CommandKind.BACKFILL:
            start, end = command.args.start, command.args.end
            if not command.meter_id:
                raise CommandRefused("no meter named")
            if problem := backfill_range_problem(start, end):
                raise CommandRefused(problem)
            assert start is not None
            assert end is not None
            done = await self._actions.backfill(command.meter_id, start, end)
            held = f", {done['already_held']} already held" if done["already_held"] else ""
            return done, (
                f"{done['intervals']} intervals read from the meter's load profile:"
                f" {done['stored']} readings stored{held}"
            )
        if kind == CommandKind.SET_CLOCK:
            if not command.meter_id:
                raise CommandRefused("no meter named")
            limit = command.args.max_drift_s or DEFAULT_MAX_DRIFT_S
            done = await self._actions.set_meter_clock(command.meter_id, limit)
            if not done["set"]:
                return (
                    done,
                    f"drift {abs(done['drift_s']):.1f} s within {limit:g} s: clock left alone",
                )
            return done, (
                f"clock set: it was {done['drift_before_s']:+.1f} s off, now"
                f" {done['drift_after_s']:+.1f} s"
            )
        if kind == CommandKind.DOCTOR:
            report = await self._actions.doctor()
            problems = sum(1 for f in report["findings"] if not f["ok"])
            return report, f"{problems} of {len(report['findings'])} checks found a problem"
        if kind == CommandKind.UPLOAD_LOG:
            lines = self._actions.log_lines(command.args.lines or 200)
            return {"lines": lines}, f"{len(lines)} lines"
        if kind == CommandKind.RESTART:
            return {}, "restarting: the service manager starts the daemon again"
        if kind == CommandKind.UPDATE and self._actions.update is not None:
            if not command.args.version:
                raise CommandRefused("no version named")
            return await self._actions.update(
                str(command.id), command.args.version, command.args.sha256
            )
        raise CommandRefused(f"this gateway's software does not know the command {kind!r}")

    async def run(self) -> None:
        """Report and collect at start, then whenever the syncer wakes us (and every few
        minutes); failures are retried at the next turn."""
        await self.recover()
        await self.start_config()
        while True:
            try:
                await self.exchange()
                self.last_error = None
            except (
                CloudUnreachable,
                CloudAnswered,
                SignatureInvalid,
                KeyInvalid,
                ValidationError,
            ) as exc:
                self.last_error = str(exc)[:300]
                log.warning("command exchange failed", error=self.last_error)
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), PERIOD_S)
