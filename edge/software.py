"""The daemon's part in software updates: run the cloud's `update` command, prove a new version
healthy (or give it up), and tell the cloud how an update ended.

- `update` (the command): fetch the wheel with a signed request and check its sha256 against the
  one in the signed command (a wrong hash: nothing installed, nothing flipped), install it
  beside the running version, write the marker and flip `current` (`edge/updater.py`). The
  controller reports "installed" and the daemon stops; the service manager starts the new one.
- `watch` (every start): a daemon that finds itself on trial confirms once it is healthy (the
  store open, the buses started and, when a cloud is configured, one batch accepted by it)
  before the marker's deadline; past the deadline it rolls back and stops. Then, and whenever an
  outcome is waiting (this daemon's, or the guard's), it reports it with a signed `UpdateReport`
  until the cloud has it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from . import updater
from .cloud_http import CloudUnreachable, Transport, cloud_client
from .refusal import CommandRefused
from .updater import Layout

if TYPE_CHECKING:
    from shared import PrivateKey

log = structlog.get_logger(__name__)
try:
    VERSION = metadata.version("gridgate")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0+unknown"
MAX_WHEEL_BYTES = 50 * 1024 * 1024
REPORT_RETRY_S = 30.0
HEALTH_POLL_S = 0.5


class SoftwareAgent:
    def __init__(
        self,
        *,
        layout: Layout | None,
        running: str,
        grace_s: float,
        gateway_id: str,
        key: PrivateKey | None,
        cloud_url: str | None,
        timeout_s: float = 30.0,
        transport: Transport | None = None,
    ) -> None:
        self.layout = layout
        self.running = running
        self.grace_s = grace_s
        self.gateway_id = gateway_id
        self.key = key
        self._client = cloud_client(cloud_url, timeout_s, transport) if cloud_url else None
        self.confirmed = asyncio.Event()  # this start proved a new version healthy

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    # -- the command ---------------------------------------------------------------------------
    async def update(
        self, command_id: str, version: str, sha256: str | None
    ) -> tuple[dict[str, Any], str]:
        layout = self.layout
        if layout is None:
            raise CommandRefused(
                "this daemon does not run from <prefix>/versions/<version> (see [update] prefix"
                " and systemd/install-edge.sh): it cannot update itself"
            )
        updater.check_version(version)
        if version == self.running:
            raise CommandRefused(f"version {version} is the one running")
        if await asyncio.to_thread(updater.pending, layout) is not None:
            raise CommandRefused("another update is still proving itself")
        wheel = await self._download(layout, version, sha256) if sha256 else None
        try:
            log.info("installing a software version", version=version, wheel=bool(wheel))
            await asyncio.to_thread(updater.install, layout, version, wheel)
            await asyncio.to_thread(
                updater.begin,
                layout,
                command_id=command_id,
                from_version=self.running,
                to_version=version,
                grace_s=self.grace_s,
            )
        finally:
            if wheel is not None:
                wheel.unlink(missing_ok=True)
        log.warning("software version installed; restarting into it", version=version)
        return (
            {"from": self.running, "to": version},
            f"installed {version}, restarting (it has {self.grace_s:.0f} s to prove itself)",
        )

    async def _download(self, layout: Layout, version: str, sha256: str) -> Path:
        """The wheel, streamed to the downloads directory and checked against `sha256`."""
        from shared import WheelRequest  # the update machinery, loaded when an update comes

        if self._client is None or self.key is None:
            raise CommandRefused("no cloud to fetch the wheel from")
        body = WheelRequest(
            gateway_id=self.gateway_id, sent_at=datetime.now(UTC), version=version
        ).model_dump_json()
        await asyncio.to_thread(layout.downloads.mkdir, parents=True, exist_ok=True)
        path = layout.downloads / f"gridgate-{version}-py3-none-any.whl"
        digest, size = hashlib.sha256(), 0
        with path.open("wb") as sink:

            def take(chunk: bytes) -> None:
                nonlocal size
                size += len(chunk)
                if size > MAX_WHEEL_BYTES:
                    raise updater.UpdateError(f"the wheel is over {MAX_WHEEL_BYTES} bytes")
                digest.update(chunk)
                sink.write(chunk)

            try:
                response = await self._client.download(
                    "/api/v1/control/software/wheel",
                    body.encode(),
                    self._signed(body.encode()),
                    take,
                )
            except CloudUnreachable as exc:
                path.unlink(missing_ok=True)
                raise updater.UpdateError(f"the wheel of {version} did not arrive: {exc}") from exc
            except BaseException:  # over the size, or stopped: no half wheel left behind
                path.unlink(missing_ok=True)
                raise
        if response.status_code != 200:
            path.unlink(missing_ok=True)
            raise updater.UpdateError(
                f"the cloud answered {response.status_code} for the wheel of {version}:"
                f" {response.text[:200]}"
            )
        if digest.hexdigest() != sha256:
            path.unlink(missing_ok=True)
            raise updater.HashMismatch(
                f"the wheel's sha256 is {digest.hexdigest()}, the command named {sha256}:"
                " not installed"
            )
        return path

    def _signed(self, body: bytes) -> dict[str, str]:
        from shared import GATEWAY_HEADER, SIGNATURE_HEADER, sign_body

        assert self.key is not None
        return {
            "Content-Type": "application/json",
            GATEWAY_HEADER: self.gateway_id,
            SIGNATURE_HEADER: sign_body(self.key, body),
        }

    # -- after a start -------------------------------------------------------------------------
    async def watch(self, healthy: Callable[[], bool], stop: Callable[[], None]) -> None:
        """Confirm or give up the version on trial, then report how it ended (retrying until
        the cloud has it). Returns when there is nothing (more) to do."""
        layout = self.layout
        if layout is None:
            return
        marker = await asyncio.to_thread(updater.pending, layout)
        if marker:
            if marker.get("to") != self.running:
                # started as the old version while the marker stood (the guard did not run):
                # the new one never got its chance; put `current` back where this daemon is
                await asyncio.to_thread(
                    updater.roll_back,
                    layout,
                    marker | {"from": self.running},
                    f"version {self.running} ran instead of {marker.get('to')}; rolled back",
                )
            elif await self._prove(marker, healthy):
                await asyncio.to_thread(updater.confirm, layout, marker)
                self.confirmed.set()
                log.info("software version confirmed healthy", version=self.running)
            else:
                reason = (
                    f"version {self.running} was not healthy within its grace period;"
                    f" rolled back to {marker['from']}"
                )
                await asyncio.to_thread(updater.roll_back, layout, marker, reason)
                log.error("software version rolled back", reason=reason)
                await self._report_once()
                stop()
                return
        while await asyncio.to_thread(updater.unreported, layout) is not None:
            if await self._report_once():
                return
            await asyncio.sleep(REPORT_RETRY_S)

    async def _prove(self, marker: dict[str, Any], healthy: Callable[[], bool]) -> bool:
        deadline_s = float(marker.get("deadline") or 0)
        while time.time() < deadline_s:
            if healthy():
                return True
            await asyncio.sleep(HEALTH_POLL_S)
        return False

    async def _report_once(self) -> bool:
        """Send the waiting outcome; True once there is nothing left to send."""
        from shared import UpdateReport

        layout = self.layout
        assert layout is not None
        outcome = await asyncio.to_thread(updater.unreported, layout)
        if not outcome:
            await asyncio.to_thread(updater.forget_outcome, layout)
            return True
        if self._client is None or self.key is None or not outcome.get("command"):
            log.info("update outcome kept locally (no cloud to tell)", outcome=outcome)
            await asyncio.to_thread(updater.forget_outcome, layout)
            return True
        try:
            report = UpdateReport(
                gateway_id=self.gateway_id,
                sent_at=datetime.now(UTC),
                command_id=outcome["command"],
                version=outcome["to"],
                from_version=outcome["from"],
                outcome=outcome["outcome"],
                detail=outcome.get("detail", "")[:500],
            )
        except ValueError as exc:  # a damaged file: nothing the cloud could use
            log.error("update outcome unreadable; dropped", error=str(exc))
            await asyncio.to_thread(updater.forget_outcome, layout)
            return True
        body = report.model_dump_json().encode()
        try:
            response = await self._client.post(
                "/api/v1/control/software/report", content=body, headers=self._signed(body)
            )
        except CloudUnreachable as exc:
            log.warning("update outcome not reported yet", error=str(exc)[:200])
            return False
        if response.status_code in (200, 404, 409, 422):  # taken, or never takeable
            with contextlib.suppress(OSError):
                await asyncio.to_thread(updater.forget_outcome, layout)
            log.info("update outcome reported", outcome=report.outcome, status=response.status_code)
            return True
        log.warning("update outcome not reported yet", status=response.status_code)
        return False
