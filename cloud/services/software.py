"""Software updates of gateways: releases, targets, and the updates handed out.

A person with `gateway:update` (super admins: one release reaches the whole fleet) registers a
release — a wheel the cloud keeps and serves (its version read from the file name, its sha256
computed here) or a version the gateways take from the package index — and sets the version a
board's gateways run (the first `percent` of them, in an order fixed per release by a hash of
each gateway's code, so raising the share only adds gateways) or one gateway runs (overriding
its board).

Whenever a gateway's heartbeat says it runs something else than its target (and when a target is
set), `offer_update` queues an `update` command for it, once per gateway and version: a version
that failed or was rolled back there is never offered again. The command's result says whether
it was installed; how the new version then fared comes in a signed `UpdateReport`
(`report`). The gateway fetches the wheel with a signed `WheelRequest` (`wheel`).

An update the gateway goes silent about — handed over, or installed and never confirmed nor
rolled back, for `SILENCE` — is marked failed by the periodic jobs (`expire_silent`); a report
that comes later still replaces that guess. One the gateway never collected fails when its
command expires (`UPDATE_TTL`).
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from shared import (
    VERSION_PATTERN,
    UpdateReport,
    WheelRequest,
)

from ..access import Principal, resolve_in_scope, scope_filter
from ..errors import Conflict, InvalidInput, NotFound
from . import audit, gateway_control

MAX_WHEEL_BYTES = 50 * 1024 * 1024
UPDATE_TTL = timedelta(days=1)
SILENCE = timedelta(hours=2)  # far past the gateway's health grace (5 minutes) and restarts
STATUSES = ("sent", "installed", "confirmed", "rolled_back", "failed")
_LOCK_SPACE = 0x5F7  # advisory locks of this module: (space, gateway id)
# gridgate-<version>-<python tag>-<abi tag>-<platform tag>.whl (PEP 427; the name normalised)
_WHEEL_NAME = re.compile(r"^gridgate-([^-]+)-[^-]+-[^-]+-[^-]+\.whl$")


def version_of_wheel(filename: str) -> str:
    """The version in a gridgate wheel's file name; `InvalidInput` when it is not one."""
    found = _WHEEL_NAME.match(filename)
    if found is None or not re.fullmatch(VERSION_PATTERN, found.group(1)):
        raise InvalidInput(
            f"{filename!r} is not the name of a gridgate wheel (gridgate-VERSION-py3-none-any.whl)",
            errors=[("filename", filename[:100])],
        )
    return found.group(1)


def checked_version(version: str) -> str:
    """`version` if a release may have it (as the API's models check); `InvalidInput` else."""
    if not re.fullmatch(VERSION_PATTERN, version):
        raise InvalidInput(
            f"{version[:70]!r} is not a version (such as 1.4.0)", errors=[("version", version[:70])]
        )
    return version


def rollout_cohort(codes: list[str], version: str, percent: int) -> set[str]:
    """The gateways (by code) that get `version` when `percent` of them do: the first ones in
    an order fixed by a hash of the release and each code (another release, another first
    group), so raising the share keeps those that already have it."""
    ordered = sorted(codes, key=lambda c: hashlib.sha256(f"{version}/{c}".encode()).hexdigest())
    return set(ordered[: math.ceil(len(ordered) * percent / 100)])


# --- releases -------------------------------------------------------------------------------

_RELEASE = (
    "SELECT r.id, r.version, r.source, r.filename, r.sha256, r.size_bytes, r.notes,"
    " r.created_at, coalesce(u.name, u.email) AS created_by_name FROM software_releases r"
    " LEFT JOIN users u ON u.id = r.created_by"
)


async def register_wheel(
    conn: AsyncConnection, principal: Principal, *, filename: str, data: bytes, notes: str | None
) -> dict[str, Any]:
    version = version_of_wheel(filename)
    if not data or len(data) > MAX_WHEEL_BYTES:
        raise InvalidInput(
            f"a wheel is 1 byte to {MAX_WHEEL_BYTES} bytes", errors=[("body", str(len(data)))]
        )
    if not data.startswith(b"PK"):
        raise InvalidInput("the body is not a wheel (a zip file)", errors=[("body", "not a zip")])
    return await _register(
        conn,
        principal,
        version=version,
        source="wheel",
        filename=filename,
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
        notes=notes,
    )


async def register_index(
    conn: AsyncConnection, principal: Principal, *, version: str, notes: str | None
) -> dict[str, Any]:
    return await _register(
        conn,
        principal,
        version=version,
        source="index",
        filename=None,
        sha256=None,
        data=None,
        notes=notes,
    )


async def _register(conn: AsyncConnection, principal: Principal, **release: Any) -> dict:
    async with conn.transaction():
        cursor = await conn.execute(
            "INSERT INTO software_releases (version, source, filename, sha256, size_bytes, wheel,"
            " notes, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (version) DO NOTHING RETURNING id",
            (
                release["version"],
                release["source"],
                release["filename"],
                release["sha256"],
                len(release["data"]) if release["data"] else None,
                release["data"],
                release["notes"],
                principal.user_id,
            ),
        )
        row = await cursor.fetchone()
        if row is None:
            raise Conflict(f"version {release['version']} is registered already")
        await audit.record(
            conn,
            actor=principal.actor,
            action="register_release",
            entity="software_release",
            entity_id=row["id"],
            after={k: release[k] for k in ("version", "source", "filename", "sha256")},
        )
        cursor = await conn.execute(_RELEASE + " WHERE r.id = %s", (row["id"],))
        return await cursor.fetchone()


async def releases(conn: AsyncConnection, *, limit: int, offset: int) -> dict[str, Any]:
    cursor = await conn.execute(
        _RELEASE + " ORDER BY r.id DESC LIMIT %s OFFSET %s", (limit, offset)
    )
    items = await cursor.fetchall()
    cursor = await conn.execute("SELECT count(*) AS n FROM software_releases")
    return {
        "items": items,
        "total": (await cursor.fetchone())["n"],
        "limit": limit,
        "offset": offset,
    }


async def _release(conn: AsyncConnection, version: str) -> dict[str, Any]:
    cursor = await conn.execute(
        "SELECT version, source, sha256 FROM software_releases WHERE version = %s", (version,)
    )
    row = await cursor.fetchone()
    if row is None:
        raise InvalidInput(
            f"version {version} is not a registered release", errors=[("version", version)]
        )
    return row


# --- targets ----------------------------------------------------------------------------------


async def set_board_target(
    conn: AsyncConnection, principal: Principal, board_id: int, *, version: str, percent: int
) -> dict[str, Any]:
    await resolve_in_scope(conn, principal, {"board": [board_id]})
    async with conn.transaction():
        await _release(conn, version)
        cursor = await conn.execute(
            "SELECT version, percent FROM board_software_targets WHERE board_id = %s FOR UPDATE",
            (board_id,),
        )
        before = await cursor.fetchone()
        await conn.execute(
            "INSERT INTO board_software_targets (board_id, version, percent, set_by)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (board_id) DO UPDATE SET"
            " version = excluded.version, percent = excluded.percent,"
            " set_by = excluded.set_by, set_at = now()",
            (board_id, version, percent, principal.user_id),
        )
        await audit.record(
            conn,
            actor=principal.actor,
            action="set_software_target",
            entity="board",
            entity_id=board_id,
            before=dict(before) if before else None,
            after={"version": version, "percent": percent},
        )
        await _offer_to_board(conn, board_id)
    return await board_software(conn, principal, board_id)


async def clear_board_target(
    conn: AsyncConnection, principal: Principal, board_id: int
) -> dict[str, Any]:
    await resolve_in_scope(conn, principal, {"board": [board_id]})
    async with conn.transaction():
        cursor = await conn.execute(
            "DELETE FROM board_software_targets WHERE board_id = %s RETURNING version, percent",
            (board_id,),
        )
        before = await cursor.fetchone()
        if before is None:  # nothing to clear: the same as clearing it again
            return await board_software(conn, principal, board_id)
        await audit.record(
            conn,
            actor=principal.actor,
            action="clear_software_target",
            entity="board",
            entity_id=board_id,
            before=dict(before),
        )
    return await board_software(conn, principal, board_id)


async def set_gateway_target(
    conn: AsyncConnection, principal: Principal, gateway_id: int, *, version: str | None
) -> dict[str, Any]:
    """`version` None: the gateway follows its board again."""
    await resolve_in_scope(conn, principal, {"gateway": [gateway_id]})
    async with conn.transaction():
        cursor = await conn.execute(
            "DELETE FROM gateway_software_targets WHERE gateway_id = %s RETURNING version",
            (gateway_id,),
        )
        before = await cursor.fetchone()
        if version is not None:
            await _release(conn, version)
            await conn.execute(
                "INSERT INTO gateway_software_targets (gateway_id, version, set_by)"
                " VALUES (%s, %s, %s)",
                (gateway_id, version, principal.user_id),
            )
        await audit.record(
            conn,
            actor=principal.actor,
            action="set_software_target" if version else "clear_software_target",
            entity="gateway",
            entity_id=gateway_id,
            before=dict(before) if before else None,
            after={"version": version},
        )
        cursor = await conn.execute(
            "SELECT software_version FROM gateways WHERE id = %s", (gateway_id,)
        )
        await offer_update(conn, gateway_id, (await cursor.fetchone())["software_version"])
    return await gateway_software(conn, principal, gateway_id)


async def _offer_to_board(conn: AsyncConnection, board_id: int) -> None:
    cursor = await conn.execute(
        "SELECT id, software_version FROM gateways WHERE board_id = %s AND status = 'active'"
        " AND software_version IS NOT NULL",
        (board_id,),
    )
    for gateway in await cursor.fetchall():
        await offer_update(conn, gateway["id"], gateway["software_version"])


async def _target(conn: AsyncConnection, gateway_id: int) -> dict[str, Any] | None:
    """The version the gateway is to run and why ('gateway', or 'board' when in the share)."""
    cursor = await conn.execute(
        "SELECT g.gateway_code, g.board_id, gt.version AS own, bt.version AS board_version,"
        " bt.percent FROM gateways g"
        " LEFT JOIN gateway_software_targets gt ON gt.gateway_id = g.id"
        " LEFT JOIN board_software_targets bt ON bt.board_id = g.board_id WHERE g.id = %s",
        (gateway_id,),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    if row["own"]:
        return {"version": row["own"], "set_for": "gateway", "percent": None}
    if not row["board_version"]:
        return None
    cursor = await conn.execute(
        "SELECT gateway_code FROM gateways WHERE board_id = %s AND status = 'active'",
        (row["board_id"],),
    )
    codes = [r["gateway_code"] for r in await cursor.fetchall()]
    chosen = row["gateway_code"] in rollout_cohort(codes, row["board_version"], row["percent"])
    return {
        "version": row["board_version"] if chosen else None,
        "set_for": "board",
        "percent": row["percent"],
        "board_version": row["board_version"],
    }


async def offer_update(conn: AsyncConnection, gateway_id: int, running: str | None) -> bool:
    """Queue an `update` for the gateway if it runs something else than its target and that
    version was never handed to it. Called in the caller's transaction (ingest, a target set).
    Whether one was queued."""
    target = await _target(conn, gateway_id)
    if target is None or not target["version"] or target["version"] == running:
        return False
    version = target["version"]
    await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_SPACE, gateway_id))
    cursor = await conn.execute(
        "SELECT 1 FROM gateway_updates WHERE gateway_id = %s AND version = %s",
        (gateway_id, version),
    )
    if await cursor.fetchone() is not None:
        return False  # outstanding, or done (confirmed, failed, rolled back): not again
    cursor = await conn.execute(
        "SELECT board_id, status FROM gateways WHERE id = %s", (gateway_id,)
    )
    gateway = await cursor.fetchone()
    if gateway["status"] != "active":
        return False
    release = await _release(conn, version)
    now = datetime.now(UTC)
    args = {"version": version} | ({"sha256": release["sha256"]} if release["sha256"] else {})
    cursor = await conn.execute(
        "INSERT INTO gateway_commands (gateway_id, board_id, kind, args, reason, created_at,"
        " expires_at) VALUES (%s, %s, 'update', %s, %s, %s, %s) RETURNING id",
        (
            gateway_id,
            gateway["board_id"],
            Jsonb(args),
            f"software update to {version}",
            now,
            now + UPDATE_TTL,
        ),
    )
    command_id = (await cursor.fetchone())["id"]
    await conn.execute(
        "INSERT INTO gateway_updates (gateway_id, board_id, version, from_version, command_id)"
        " VALUES (%s, %s, %s, %s, %s)",
        (gateway_id, gateway["board_id"], version, running, command_id),
    )
    await audit.record(
        conn,
        actor="cloud",
        action="offer_update",
        entity="gateway",
        entity_id=gateway_id,
        after={"version": version, "from": running, "command": command_id},
    )
    return True


# --- what people see ----------------------------------------------------------------------------

_STATUS = (  # an update's status, from its outcome or else its command's
    "CASE WHEN u.outcome IS NOT NULL THEN u.outcome"
    " WHEN c.status IN ('queued', 'delivered') THEN 'sent'"
    " WHEN c.status = 'succeeded' THEN 'installed'"
    " ELSE 'failed' END"
)
_UPDATES = sql.SQL(
    "SELECT u.id, u.version, u.from_version, u.created_at, u.reported_at, g.gateway_code,"
    " {} AS status, coalesce(u.detail, c.detail) AS detail, c.uid AS command_uid,"
    " c.status AS command_status"
    " FROM gateway_updates u JOIN gateway_commands c ON c.id = u.command_id"
    " JOIN gateways g ON g.id = u.gateway_id"
).format(sql.SQL(_STATUS))


async def gateway_software(
    conn: AsyncConnection, principal: Principal, gateway_id: int
) -> dict[str, Any]:
    """What the gateway runs, what it is to run, and its updates (newest first)."""
    await resolve_in_scope(conn, principal, {"gateway": [gateway_id]})
    cursor = await conn.execute(
        "SELECT software_version FROM gateways WHERE id = %s", (gateway_id,)
    )
    running = (await cursor.fetchone())["software_version"]
    cursor = await conn.execute(
        _UPDATES + sql.SQL(" WHERE u.gateway_id = %s ORDER BY u.id DESC LIMIT 20"), (gateway_id,)
    )
    updates = [_update(r) for r in await cursor.fetchall()]
    return {"running": running, "target": await _target(conn, gateway_id), "updates": updates}


def _update(row: dict[str, Any]) -> dict[str, Any]:
    return dict(row) | {"command_uid": str(row["command_uid"])}


async def board_software(
    conn: AsyncConnection, principal: Principal, board_id: int
) -> dict[str, Any]:
    """The board's target, which versions its gateways run, and its latest updates."""
    await resolve_in_scope(conn, principal, {"board": [board_id]})
    cursor = await conn.execute(
        "SELECT version, percent, set_at FROM board_software_targets WHERE board_id = %s",
        (board_id,),
    )
    target = await cursor.fetchone()
    cursor = await conn.execute(
        "SELECT coalesce(software_version, '') AS version, count(*) AS gateways FROM gateways"
        " WHERE board_id = %s AND status = 'active' GROUP BY 1 ORDER BY 2 DESC, 1",
        (board_id,),
    )
    running = await cursor.fetchall()
    cursor = await conn.execute(
        _UPDATES + sql.SQL(" WHERE u.board_id = %s ORDER BY u.id DESC LIMIT 50"), (board_id,)
    )
    updates = [_update(r) for r in await cursor.fetchall()]
    return {"target": target, "running": running, "updates": updates}


async def boards_software(
    conn: AsyncConnection, principal: Principal, *, search: str, limit: int, offset: int
) -> dict[str, Any]:
    """The boards of the viewer's scope (by code; `search` in code or name), each with its
    target, which versions its gateways run, its updates by status and the gateways the
    target's share holds now (a console's view of the whole fleet)."""
    scope, params = scope_filter(principal, "board", "b")
    pattern = f"%{search.replace('%', '')}%"
    cursor = await conn.execute(
        sql.SQL(
            "SELECT b.id, b.code, b.name, t.version, t.percent, t.set_at,"
            " count(*) OVER () AS _total FROM boards b"
            " LEFT JOIN board_software_targets t ON t.board_id = b.id"
            " WHERE {} AND (b.code ILIKE %s OR b.name ILIKE %s)"
            " ORDER BY b.code LIMIT %s OFFSET %s"
        ).format(scope),
        [*params, pattern, pattern, limit, offset],
    )
    boards = await cursor.fetchall()
    ids = [b["id"] for b in boards]
    cursor = await conn.execute(
        "SELECT board_id, gateway_code, software_version FROM gateways"
        " WHERE board_id = ANY(%s) AND status = 'active' ORDER BY gateway_code",
        (ids,),
    )
    gateways = await cursor.fetchall()
    cursor = await conn.execute(
        sql.SQL(
            "SELECT u.board_id, {} AS status, count(*) AS n FROM gateway_updates u"
            " JOIN gateway_commands c ON c.id = u.command_id WHERE u.board_id = ANY(%s)"
            " GROUP BY 1, 2"
        ).format(sql.SQL(_STATUS)),
        (ids,),
    )
    updates = await cursor.fetchall()
    for board in boards:
        mine = [g for g in gateways if g["board_id"] == board["id"]]
        running: dict[str | None, int] = {}
        for gateway in mine:
            running[gateway["software_version"]] = running.get(gateway["software_version"], 0) + 1
        board["gateways"] = len(mine)
        board["running"] = sorted(running.items(), key=lambda kv: (-kv[1], kv[0] or ""))
        board["updates"] = {u["status"]: u["n"] for u in updates if u["board_id"] == board["id"]}
        codes = [g["gateway_code"] for g in mine]
        board["cohort"] = (
            sorted(rollout_cohort(codes, board["version"], board["percent"]))
            if board["version"]
            else []
        )
    return {"items": boards, "total": boards[0]["_total"] if boards else 0}


async def expire_silent(conn: AsyncConnection, now: datetime) -> int:
    """Mark failed each update the gateway has said nothing more about for `SILENCE`: handed
    over with no result, or installed and never confirmed nor rolled back. Each is audited; a
    report that comes later still counts. Called by the periodic jobs; how many."""
    since = now - SILENCE
    hours = round(SILENCE.total_seconds() / 3600)
    async with conn.transaction():
        cursor = await conn.execute(
            "SELECT u.id, u.gateway_id, u.version, c.status FROM gateway_updates u"
            " JOIN gateway_commands c ON c.id = u.command_id WHERE u.outcome IS NULL"
            " AND ((c.status = 'delivered' AND c.delivered_at <= %s)"
            " OR (c.status = 'succeeded' AND c.finished_at <= %s))"
            " FOR UPDATE OF u SKIP LOCKED",
            (since, since),
        )
        silent = await cursor.fetchall()
        for update in silent:
            if update["status"] == "delivered":
                detail = (
                    f"no word from the gateway within {hours} h of collecting the update:"
                    " it never said whether it installed it"
                )
            else:
                detail = (
                    f"no word from the gateway within {hours} h of installing the update:"
                    " it never confirmed the new version nor said it went back"
                )
            await conn.execute(
                "UPDATE gateway_updates SET outcome = 'failed', detail = %s WHERE id = %s",
                (detail, update["id"]),
            )
            await audit.record(
                conn,
                actor="cloud",
                action="update_outcome",
                entity="gateway",
                entity_id=update["gateway_id"],
                after={"version": update["version"], "outcome": "failed", "detail": detail},
            )
    return len(silent)


# --- gateways -----------------------------------------------------------------------------------


async def wheel(
    pool: AsyncConnectionPool, *, body: bytes, code: str | None, signature: str | None
) -> tuple[bytes, str]:
    """The wheel of a release and its sha256, for an enrolled gateway."""
    _, request = await gateway_control.signed(
        pool, body=body, gateway_code=code, signature=signature, model=WheelRequest
    )
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT wheel, sha256 FROM software_releases WHERE version = %s AND source = 'wheel'",
            (request.version,),
        )
        row = await cursor.fetchone()
    if row is None:
        raise NotFound(f"the cloud serves no wheel of version {request.version}")
    return bytes(row["wheel"]), row["sha256"]


async def report(
    pool: AsyncConnectionPool, *, body: bytes, code: str | None, signature: str | None
) -> dict[str, Any]:
    """How an update ended on the gateway; recorded once (sent again, it changes nothing)."""
    gateway, sent = await gateway_control.signed(
        pool, body=body, gateway_code=code, signature=signature, model=UpdateReport
    )
    async with pool.connection() as conn, conn.transaction():
        cursor = await conn.execute(
            "SELECT u.id, u.version, u.outcome FROM gateway_updates u JOIN gateway_commands c"
            " ON c.id = u.command_id WHERE c.uid = %s AND u.gateway_id = %s FOR UPDATE OF u",
            (sent.command_id, gateway["id"]),
        )
        update = await cursor.fetchone()
        if update is None:
            raise NotFound(f"gateway {code} was handed no update {sent.command_id}")
        if update["outcome"] not in (None, "failed"):  # failed: the cloud's guess (silence)
            return {"recorded": False, "outcome": update["outcome"]}
        await conn.execute(
            "UPDATE gateway_updates SET outcome = %s, detail = %s, reported_at = now()"
            " WHERE id = %s",
            (sent.outcome, sent.detail[:500], update["id"]),
        )
        await audit.record(
            conn,
            actor=f"gateway:{code}",
            action="update_outcome",
            entity="gateway",
            entity_id=gateway["id"],
            after={"version": update["version"], "outcome": sent.outcome},
        )
    return {"recorded": True, "outcome": sent.outcome}
