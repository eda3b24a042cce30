"""A user's consents and notification preferences.

Consents follow SmartMettr's model: one row per grant or revocation, never changed, so the full
history stays; the latest row of a kind is in force, and no row means not given. Features that
depend on one ask `has_consent` (the automated answers to support queries ask for
`automated_support`). Preferences say how a user wants to hear of things — channels, the lowest
alert severity, kinds they opted out of, quiet hours in their zone — and are what the
notifications service delivers by; a user who never chose has the defaults.
"""

from __future__ import annotations

from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psycopg import AsyncConnection

from ..access import Principal
from ..errors import InvalidInput
from . import audit

CONSENT_KINDS = ("energy_tracking", "automated_support", "usage_insights")
CHANNELS = ("in_app", "email", "sms")
OPT_OUTS = ("bills", "alerts", "tariff_changes", "support_replies", "reports", "announcements")
SEVERITIES = ("info", "low", "medium", "high", "critical")
DEFAULTS: dict[str, Any] = {
    "channels": ["in_app", "email"],
    "alert_min_severity": "medium",
    "opted_out": [],
    "quiet_from": None,
    "quiet_until": None,
    "zone": "Asia/Kolkata",
    "updated_at": None,
}


async def consents(conn: AsyncConnection, principal: Principal) -> dict[str, Any]:
    """Each kind's state now ({kind: {granted, at}}) and the whole history, newest first."""
    cursor = await conn.execute(
        "SELECT kind, granted, at FROM consents WHERE user_id = %s ORDER BY at DESC, id DESC",
        (principal.user_id,),
    )
    history = await cursor.fetchall()
    current: dict[str, Any] = {kind: {"granted": False, "at": None} for kind in CONSENT_KINDS}
    for row in reversed(history):
        current[row["kind"]] = {"granted": row["granted"], "at": row["at"]}
    return {"current": current, "history": history}


async def set_consent(
    conn: AsyncConnection, principal: Principal, *, kind: str, granted: bool
) -> dict[str, Any]:
    """Grant or revoke; recorded (and audited) only when it changes what is in force."""
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('consent ' || %s, 0))",
            (principal.user_id,),
        )
        if await has_consent(conn, principal.user_id, kind) != granted:
            await conn.execute(
                "INSERT INTO consents (user_id, consumer_id, kind, granted)"
                " VALUES (%s, %s, %s, %s)",
                (principal.user_id, principal.consumer_id, kind, granted),
            )
            await audit.record(
                conn,
                actor=principal.actor,
                action="grant_consent" if granted else "revoke_consent",
                entity="user",
                entity_id=principal.user_id,
                after={"kind": kind, "granted": granted},
            )
        return await consents(conn, principal)


async def has_consent(conn: AsyncConnection, user_id: int, kind: str) -> bool:
    cursor = await conn.execute(
        "SELECT granted FROM consents WHERE user_id = %s AND kind = %s"
        " ORDER BY at DESC, id DESC LIMIT 1",
        (user_id, kind),
    )
    row = await cursor.fetchone()
    return bool(row and row["granted"])


async def preferences(conn: AsyncConnection, principal: Principal) -> dict[str, Any]:
    cursor = await conn.execute(
        "SELECT channels, alert_min_severity, opted_out, quiet_from, quiet_until, zone,"
        " updated_at FROM notification_preferences WHERE user_id = %s",
        (principal.user_id,),
    )
    return await cursor.fetchone() or dict(DEFAULTS)


async def set_preferences(
    conn: AsyncConnection, principal: Principal, chosen: dict[str, Any]
) -> dict[str, Any]:
    """Replace the user's preferences with `chosen` (every field; see DEFAULTS)."""
    try:
        ZoneInfo(chosen["zone"])
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(
            f"{chosen['zone']} is not a time zone (e.g. Asia/Kolkata)", errors=[("zone", "unknown")]
        ) from exc
    quiet: tuple[time | None, time | None] = (chosen["quiet_from"], chosen["quiet_until"])
    if (quiet[0] is None) != (quiet[1] is None):
        raise InvalidInput(
            "quiet hours need both a start and an end", errors=[("quiet_until", "missing")]
        )
    if quiet[0] is not None and quiet[0] == quiet[1]:
        raise InvalidInput(
            "quiet hours must start and end at different times", errors=[("quiet_until", "same")]
        )
    async with conn.transaction():
        before = await preferences(conn, principal)
        await conn.execute(
            "INSERT INTO notification_preferences (user_id, channels, alert_min_severity,"
            " opted_out, quiet_from, quiet_until, zone, updated_at)"
            " VALUES (%(user)s, %(channels)s, %(alert_min_severity)s, %(opted_out)s,"
            "  %(quiet_from)s, %(quiet_until)s, %(zone)s, now())"
            " ON CONFLICT (user_id) DO UPDATE SET channels = excluded.channels,"
            "  alert_min_severity = excluded.alert_min_severity, opted_out = excluded.opted_out,"
            "  quiet_from = excluded.quiet_from, quiet_until = excluded.quiet_until,"
            "  zone = excluded.zone, updated_at = now()",
            {**chosen, "user": principal.user_id},
        )
        after = await preferences(conn, principal)
        await audit.record(
            conn,
            actor=principal.actor,
            action="update_preferences",
            entity="user",
            entity_id=principal.user_id,
            before=before,
            after=after,
        )
        return after
