"""The cloud's own checks, run periodically over every board (the gateways check their meters;
these see what no single gateway can):

- regional overload: the board's load (the sum of its meters' mean power over a window) above
  90 % of its configured capacity for two windows running;
- gateway silent: no batch from an active gateway for `gateway_silent_s`;
- meter data missing: a meter on a gateway with no reading for `meter_missing_s` — unless the
  meter is inactive or under maintenance (nobody expects its readings; an alert already open is
  resolved), or faulty: a faulty meter has one `meter_faulty` alert instead, open while it is
  marked faulty (its silence is explained; staff are told once, not every run);
- gateway clock unsynchronised: as its last heartbeat said;
- backlog growing: a gateway's unsent backlog grew at each of the last three runs;
- a support query past its service level (`cloud.services.support.check_sla`).

Each opens a deduplicated alert while its condition holds and resolves it when it ends. The
little state some need between runs (the last windows, the last backlogs) is kept in
`check_state`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from . import support
from .alerts import CLOUD_ALERT_KINDS, close_alert, open_alert

BY = "cloud-checks"


@dataclass(frozen=True)
class CheckSettings:
    window_s: int = 900
    overload_share: float = 0.9
    gateway_silent_s: int = 900
    meter_missing_s: int = 3600
    backlog_runs: int = 3


async def _state(conn: AsyncConnection, key: str) -> Any:
    row = await (
        await conn.execute("SELECT value FROM check_state WHERE key = %s", (key,))
    ).fetchone()
    return row["value"] if row else None


async def _save(conn: AsyncConnection, key: str, value: Any) -> None:
    await conn.execute(
        "INSERT INTO check_state (key, value) VALUES (%s, %s) ON CONFLICT (key)"
        " DO UPDATE SET value = excluded.value, updated_at = now()",
        (key, Jsonb(value)),
    )


async def _set(
    conn: AsyncConnection,
    holds: bool,
    *,
    board_id: int,
    subject: str,
    kind: str,
    now: datetime,
    message: str = "",
    details: dict[str, Any] | None = None,
    gateway_id: int | None = None,
    meter_id: int | None = None,
) -> None:
    if holds:
        await open_alert(
            conn,
            board_id=board_id,
            subject=subject,
            kind=kind,
            severity=CLOUD_ALERT_KINDS[kind][0],
            source="cloud",
            at=now,
            message=message or CLOUD_ALERT_KINDS[kind][1],
            details=details,
            gateway_id=gateway_id,
            meter_id=meter_id,
        )
    else:
        await close_alert(conn, board_id=board_id, subject=subject, kind=kind, by=BY, at=now)


async def run_checks(
    conn: AsyncConnection, now: datetime, settings: CheckSettings = CheckSettings()
) -> dict[str, int]:
    """One pass of every check; returns how many subjects each found in trouble."""
    found = {kind: 0 for kind in CLOUD_ALERT_KINDS}
    async with conn.transaction():
        await _overload(conn, now, settings, found)
        await _gateways(conn, now, settings, found)
        await _meters(conn, now, settings, found)
        found[support.SLA_ALERT] = await support.check_sla(conn, now)
    return found


async def _overload(
    conn: AsyncConnection, now: datetime, settings: CheckSettings, found: dict[str, int]
) -> None:
    window = timedelta(seconds=settings.window_s)
    cursor = await conn.execute(
        """
        SELECT b.id, b.capacity_kw, (
            SELECT coalesce(sum(avg_kw), 0) FROM (
                SELECT avg(r.value) AS avg_kw FROM readings r JOIN meters m ON m.id = r.meter_id
                WHERE m.board_id = b.id AND r.quantity = '1.7.0'
                  AND r.ts > %(start)s AND r.ts <= %(now)s
                GROUP BY r.meter_id
            ) per_meter
        ) AS load_kw
        FROM boards b WHERE b.capacity_kw IS NOT NULL
        """,
        {"start": now - window, "now": now},
    )
    for board in await cursor.fetchall():
        share = float(board["load_kw"]) / float(board["capacity_kw"])
        key = f"overload:{board['id']}"
        history = [*(await _state(conn, key) or [])[-1:], share]
        await _save(conn, key, history)
        holds = len(history) == 2 and all(s > settings.overload_share for s in history)
        found["regional_overload"] += holds
        await _set(
            conn,
            holds,
            board_id=board["id"],
            subject=f"board:{board['id']}",
            kind="regional_overload",
            now=now,
            message=f"load at {share:.0%} of {board['capacity_kw']} kW capacity",
            details={"load_share": round(share, 4), "load_kw": float(board["load_kw"])},
        )


async def _gateways(
    conn: AsyncConnection, now: datetime, settings: CheckSettings, found: dict[str, int]
) -> None:
    cursor = await conn.execute(
        "SELECT id, board_id, gateway_code, last_seen_at, enrolled_at, clock_synced,"
        " backlog_readings FROM gateways WHERE status = 'active'"
    )
    for gateway in await cursor.fetchall():
        subject = f"gateway:{gateway['id']}"
        common = {
            "board_id": gateway["board_id"],
            "subject": subject,
            "now": now,
            "gateway_id": gateway["id"],
        }
        seen = gateway["last_seen_at"] or gateway["enrolled_at"]
        silent = now - seen > timedelta(seconds=settings.gateway_silent_s)
        found["gateway_silent"] += silent
        await _set(
            conn,
            silent,
            kind="gateway_silent",
            message=f"gateway {gateway['gateway_code']} last heard from at {seen:%Y-%m-%d %H:%M}Z",
            **common,
        )
        unsynced = gateway["clock_synced"] is False
        found["gateway_clock_unsynced"] += unsynced
        await _set(conn, unsynced, kind="gateway_clock_unsynced", **common)
        key = f"backlog:{gateway['id']}"
        backlogs = ((await _state(conn, key)) or [])[-settings.backlog_runs :]
        if gateway["backlog_readings"] is not None:
            backlogs.append(gateway["backlog_readings"])
            await _save(conn, key, backlogs)
        recent = backlogs[-(settings.backlog_runs + 1) :]
        growing = len(recent) == settings.backlog_runs + 1 and all(
            b > a for a, b in itertools.pairwise(recent)
        )
        found["backlog_growing"] += growing
        await _set(
            conn,
            growing,
            kind="backlog_growing",
            message=f"backlog of {recent[-1] if recent else 0} readings and growing",
            details={"backlogs": recent},
            **common,
        )


async def _meters(
    conn: AsyncConnection, now: datetime, settings: CheckSettings, found: dict[str, int]
) -> None:
    since = now - timedelta(seconds=settings.meter_missing_s)
    cursor = await conn.execute(
        """
        SELECT m.id, m.board_id, m.gateway_id, m.external_id, m.status, m.status_reason,
               EXISTS (SELECT 1 FROM readings r WHERE r.meter_id = m.id
                       AND r.ts > %(since)s AND r.ts <= %(now)s) AS recent,
               EXISTS (SELECT 1 FROM readings r WHERE r.meter_id = m.id) AS ever
        FROM meters m JOIN gateways g ON g.id = m.gateway_id
        WHERE g.status = 'active' AND m.replaced_at IS NULL
        """,
        {"since": since, "now": now},
    )
    for meter in await cursor.fetchall():
        faulty = meter["status"] == "faulty"
        found["meter_faulty"] += faulty
        await _set(
            conn,
            faulty,
            board_id=meter["board_id"],
            subject=f"meter:{meter['id']}",
            kind="meter_faulty",
            now=now,
            message=f"meter {meter['external_id']} is marked faulty: {meter['status_reason']}",
            gateway_id=meter["gateway_id"],
            meter_id=meter["id"],
        )
        expected = meter["status"] == "active"
        missing = expected and meter["ever"] and not meter["recent"]
        found["meter_data_missing"] += missing
        await _set(
            conn,
            missing,
            board_id=meter["board_id"],
            subject=f"meter:{meter['id']}",
            kind="meter_data_missing",
            now=now,
            message=f"no readings from meter {meter['external_id']} since {since:%H:%M}Z",
            gateway_id=meter["gateway_id"],
            meter_id=meter["id"],
        )
