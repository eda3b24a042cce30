"""Alerts: what needs a person's attention, from the gateways and from the cloud's own checks.

An alert is about a subject (a meter, a gateway or a whole board) and a kind; only one alert per
subject and kind is open at a time — a condition seen again adds to its occurrences. Lifecycle:
active -> acknowledged (someone is on it) -> resolved (by a person with a note, or by the source
when the condition clears). Every change by a person is audited; every change of any kind is
announced on the `gridgate_alerts` channel (a database trigger) for live views.

From a gateway: a `raised` event opens (or refreshes) an alert, `cleared` resolves it, and a
`notice` of high or critical severity (a register going backwards, a reset store) opens one that
a person must close.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb

from ..access import Principal, scope_filter
from ..errors import Conflict
from . import audit, notifications
from .scoped import ALERTS, actor, get_row

# The cloud's own alert kinds and their severity (the gateway's kinds are in shared's table).
CLOUD_ALERT_KINDS: dict[str, tuple[str, str]] = {
    "regional_overload": ("high", "Board load above 90 % of capacity for two windows running"),
    "gateway_silent": ("high", "A gateway has sent nothing for too long"),
    "meter_data_missing": ("medium", "A meter's readings stopped arriving"),
    "meter_faulty": ("medium", "A meter is marked faulty"),
    "gateway_clock_unsynced": ("medium", "A gateway reports its clock is not synchronised"),
    "backlog_growing": ("medium", "A gateway's unsent backlog keeps growing"),
    "support_sla_breached": ("high", "A support query waited past its service level"),
}
ALERTING_NOTICE = ("high", "critical")
# alerts that tell the board's staff: a gateway gone silent, a meter failing
FLEET_KINDS = (
    "gateway_silent",
    "meter_data_missing",
    "communication_loss",
    "register_backwards",
    "register_jump",
    "stale_value",
    "phase_loss",
    "store_corrupt",
)
STAFF_ROLES = ("BOARD_ADMIN", "TECHNICIAN")


async def open_alert(
    conn: AsyncConnection,
    *,
    board_id: int,
    subject: str,
    kind: str,
    severity: str,
    source: str,
    at: datetime,
    message: str = "",
    details: dict[str, Any] | None = None,
    gateway_id: int | None = None,
    meter_id: int | None = None,
) -> None:
    """Open an alert, or count one more occurrence of the open one (deduplicated). A new alert
    on a meter tells its consumer (as their preferences say)."""
    cursor = await conn.execute(
        "INSERT INTO alerts (board_id, gateway_id, meter_id, subject, kind, severity, source,"
        " message, details, opened_at, last_seen_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (board_id, subject, kind) WHERE state <> 'resolved' DO UPDATE SET"
        " last_seen_at = greatest(alerts.last_seen_at, excluded.last_seen_at),"
        " occurrences = alerts.occurrences + 1, message = excluded.message,"
        " details = excluded.details RETURNING id, (xmax = 0) AS opened",
        (
            board_id,
            gateway_id,
            meter_id,
            subject,
            kind,
            severity,
            source,
            message[:500],
            Jsonb(details or {}),
            at,
            at,
        ),
    )
    alert = await cursor.fetchone()
    if alert["opened"] and meter_id is not None:
        await _tell_consumer(conn, alert["id"], meter_id, kind, severity, message)
    if alert["opened"] and kind in FLEET_KINDS:
        await _tell_staff(conn, alert["id"], board_id, kind, severity, message)


async def _tell_staff(
    conn: AsyncConnection, alert_id: int, board_id: int, kind: str, severity: str, message: str
) -> None:
    """The board's admins and technicians, and its state's admins."""
    cursor = await conn.execute(
        "SELECT u.id FROM users u, boards b WHERE b.id = %s AND u.active AND"
        " ((u.board_id = b.id AND u.role = ANY(%s)) OR"
        " (u.role = 'STATE_ADMIN' AND u.state_id = b.state_id))",
        (board_id, list(STAFF_ROLES)),
    )
    users = [row["id"] for row in await cursor.fetchall()]
    notice = notifications.Notice(
        "fleet_alert",
        kind.replace("_", " ").capitalize(),
        message[:500] or f"A {severity} alert on the board.",
        f"/dashboard/alerts?kind={kind}",
        f"alert:{alert_id}",
        urgent=severity == "critical",
        severity=severity,
    )
    await notifications.notify(conn, users, notice)


async def _tell_consumer(
    conn: AsyncConnection, alert_id: int, meter_id: int, kind: str, severity: str, message: str
) -> None:
    cursor = await conn.execute(
        "SELECT external_id, consumer_id FROM meters WHERE id = %s", (meter_id,)
    )
    meter = await cursor.fetchone()
    if meter is None or meter["consumer_id"] is None:
        return
    users = await notifications.consumer_users(conn, meter["consumer_id"])
    notice = notifications.Notice(
        "alert",
        f"{kind.replace('_', ' ').capitalize()} on meter {meter['external_id']}",
        message[:500] or f"A {severity} alert on your meter.",
        "/dashboard/alerts",
        f"alert:{alert_id}",
        urgent=severity == "critical",
        severity=severity,
    )
    await notifications.notify(conn, users, notice)


async def close_alert(
    conn: AsyncConnection, *, board_id: int, subject: str, kind: str, by: str, at: datetime
) -> None:
    """The condition ended at its source: resolve the open alert, if there is one."""
    await conn.execute(
        "UPDATE alerts SET state = 'resolved', resolved_by = %s, resolved_at = %s,"
        " resolve_note = 'cleared at the source' WHERE board_id = %s AND subject = %s"
        " AND kind = %s AND state <> 'resolved'",
        (by, at, board_id, subject, kind),
    )


async def from_gateway_events(conn: AsyncConnection, gateway: dict[str, Any]) -> None:
    """Turn the events this transaction inserted for the gateway into alerts (a resent batch
    inserts no events, so it changes no alert)."""
    cursor = await conn.execute(
        "SELECT * FROM events WHERE gateway_id = %s AND received_at = now() ORDER BY seq",
        (gateway["id"],),
    )
    for event in await cursor.fetchall():
        subject = f"meter:{event['meter_id']}" if event["meter_id"] else f"gateway:{gateway['id']}"
        if event["status"] == "cleared":
            await close_alert(
                conn,
                board_id=event["board_id"],
                subject=subject,
                kind=event["kind"],
                by=f"gateway:{gateway['gateway_code']}",
                at=event["ts"],
            )
        elif event["status"] == "raised" or event["severity"] in ALERTING_NOTICE:
            await open_alert(
                conn,
                board_id=event["board_id"],
                subject=subject,
                kind=event["kind"],
                severity=event["severity"],
                source="edge",
                at=event["ts"],
                message=event["message"],
                details=event["details"],
                gateway_id=gateway["id"],
                meter_id=event["meter_id"],
            )


async def acknowledge(
    conn: AsyncConnection, principal: Principal, alert_id: int, note: str
) -> dict[str, Any]:
    return await _change(conn, principal, alert_id, "acknowledge", note)


async def resolve(
    conn: AsyncConnection, principal: Principal, alert_id: int, note: str
) -> dict[str, Any]:
    return await _change(conn, principal, alert_id, "resolve", note)


async def _change(
    conn: AsyncConnection, principal: Principal, alert_id: int, action: str, note: str
) -> dict[str, Any]:
    async with conn.transaction():
        before = await get_row(conn, principal, ALERTS, alert_id, for_update=True)
        allowed = ("active",) if action == "acknowledge" else ("active", "acknowledged")
        if before["state"] not in allowed:
            raise Conflict(f"alert {alert_id} is {before['state']}; it cannot be {action}d")
        who = actor(principal)
        if action == "acknowledge":
            await conn.execute(
                "UPDATE alerts SET state = 'acknowledged', acknowledged_by = %s,"
                " acknowledged_at = now(), acknowledge_note = %s WHERE id = %s",
                (who, note, alert_id),
            )
        else:
            await conn.execute(
                "UPDATE alerts SET state = 'resolved', resolved_by = %s, resolved_at = now(),"
                " resolve_note = %s WHERE id = %s",
                (who, note, alert_id),
            )
        after = await get_row(conn, principal, ALERTS, alert_id)
        await audit.record(
            conn,
            actor=who,
            action=action,
            entity="alert",
            entity_id=alert_id,
            before=before,
            after=after,
        )
    return after


async def statistics(
    conn: AsyncConnection, principal: Principal, board_id: int | None
) -> dict[str, Any]:
    """Counts of alerts in scope by state, and of open ones by severity and by kind."""
    condition, params = scope_filter(principal, "alert", "a")
    if board_id is not None:
        condition = sql.SQL("{} AND a.board_id = %s").format(condition)
        params = [*params, board_id]
    cursor = await conn.execute(
        sql.SQL(
            "SELECT state, severity, kind, count(*) AS n FROM alerts a WHERE {}"
            " GROUP BY state, severity, kind"
        ).format(condition),
        params,
    )
    by_state: dict[str, int] = {}
    open_by_severity: dict[str, int] = {}
    open_by_kind: dict[str, int] = {}
    for row in await cursor.fetchall():
        by_state[row["state"]] = by_state.get(row["state"], 0) + row["n"]
        if row["state"] != "resolved":
            open_by_severity[row["severity"]] = open_by_severity.get(row["severity"], 0) + row["n"]
            open_by_kind[row["kind"]] = open_by_kind.get(row["kind"], 0) + row["n"]
    return {
        "by_state": by_state,
        "open_by_severity": open_by_severity,
        "open_by_kind": open_by_kind,
    }
