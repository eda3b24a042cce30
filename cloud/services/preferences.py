"""A user's consents and notification preferences.

Consents follow SmartMettr's model: one row per grant or revocation, never changed, so the full
history stays; the latest row of a kind is in force, and no row means not given. Features that
depend on one ask `has_consent` (the automated answers to support queries ask for
`automated_support`, the opener's own word), or `household_consents` for the kinds about a
household's usage (`HOUSEHOLD_KINDS`), where the latest word of any of its online users holds
(the ways to pay less ask for `usage_insights`: the engine reads the household's hours to find
them, so a household that did not allow it gets none, whoever looks).
Preferences say how a user wants to hear of things — channels, the lowest alert severity, kinds
they opted out of, quiet hours in their zone — and are what the notifications service delivers
by; a user who never chose has the defaults.
"""

from __future__ import annotations

from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psycopg import AsyncConnection, sql

from ..access import Principal
from ..errors import InvalidInput
from . import audit

CONSENT_KINDS = ("energy_tracking", "automated_support", "usage_insights")
# about the household's usage: any of its online users speaks for it, the latest word holds
HOUSEHOLD_KINDS = ("energy_tracking", "usage_insights")
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
    """Each kind's state now ({kind: {granted, at}}) and the whole history, newest first: the
    user's own words, and for a household's kinds (`HOUSEHOLD_KINDS`) its other users' too."""
    cursor = await conn.execute(
        "SELECT kind, granted, at FROM consents WHERE user_id = %s"
        " OR (consumer_id = %s AND kind = ANY(%s)) ORDER BY at DESC, id DESC",
        (principal.user_id, principal.consumer_id, list(HOUSEHOLD_KINDS)),
    )
    history = await cursor.fetchall()
    current: dict[str, Any] = {kind: {"granted": False, "at": None} for kind in CONSENT_KINDS}
    for row in reversed(history):
        current[row["kind"]] = {"granted": row["granted"], "at": row["at"]}
    return {"current": current, "history": history}


async def set_consent(
    conn: AsyncConnection, principal: Principal, *, kind: str, granted: bool
) -> dict[str, Any]:
    """Grant or revoke; recorded (and audited) only when it changes what is in force (for a
    household's kinds, what the household's users said last)."""
    household = kind in HOUSEHOLD_KINDS and principal.consumer_id is not None
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (
                f"consent household {principal.consumer_id}"
                if household
                else f"consent {principal.user_id}",
            ),
        )
        in_force = (
            await household_consents(conn, principal.consumer_id, kind)
            if household and principal.consumer_id is not None
            else await has_consent(conn, principal.user_id, kind)
        )
        if in_force != granted:
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
    """The user's own latest word on `kind` (the automated answers ask the query's opener)."""
    return await _latest_word(conn, "user_id", user_id, kind)


async def household_consents(conn: AsyncConnection, consumer_id: int, kind: str) -> bool:
    """Whether the household's latest word on `kind`, from any of its online users, is yes
    (a household with no online account has given none)."""
    return await _latest_word(conn, "consumer_id", consumer_id, kind)


async def _latest_word(conn: AsyncConnection, whose: str, who: int, kind: str) -> bool:
    """Whether the latest consent row of `kind` for `whose` (a user or a household) says yes."""
    cursor = await conn.execute(
        sql.SQL(
            "SELECT granted FROM consents WHERE {} = %s AND kind = %s"
            " ORDER BY at DESC, id DESC LIMIT 1"
        ).format(sql.Identifier(whose)),
        (who, kind),
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
