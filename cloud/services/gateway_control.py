"""Commands from the cloud to a gateway: queued by a person, handed over at the gateway's next
contact, run there at most once, their results kept (the contract: `shared._control`).

A person with `gateway:command` queues a command for a gateway of their scope (reading a meter
now needs a meter on that gateway); it waits, up to its expiry, however long the gateway stays
away. Every sync's acknowledgement tells the gateway how many wait (`waiting`); the gateway then
calls `exchange`: it reports what it finished, and gets what is still to run, signed with the
cloud's key so it can tell the cloud's commands from anyone else's. A command handed over but
not reported stays `delivered` and is handed over again until its result comes (the gateway
recognises the id and never runs it twice). A result is recorded once; a command past its expiry
is never handed over (`expire` marks it).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ValidationError

from shared import (
    Command,
    CommandArgs,
    ControlReply,
    ControlRequest,
    KeyInvalid,
    PrivateKey,
    SignatureInvalid,
    backfill_range_problem,
    describe_validation_error,
    generate_private_key,
    load_public_key,
    read_private_key,
    sign_body,
    verify_body,
    write_private_key,
)

from ..access import Permission, Principal, resolve_in_scope
from ..errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from ..settings import CloudSettings
from . import audit, gateway_configs

KINDS = ("read_now", "doctor", "upload_log", "restart", "backfill", "set_clock")
METER_KINDS = ("read_now", "backfill", "set_clock")  # each about one meter of the gateway
SUPPLY = ("disconnect", "reconnect")  # queued through `switch_supply`, with its own permission
MAX_TTL = timedelta(days=30)
MAX_REQUEST_BYTES = 1024 * 1024
M = TypeVar("M", bound=BaseModel)


def signing_key(settings: CloudSettings) -> PrivateKey:
    """The cloud's own key, kept in its data directory (made once, shared by every process
    using that directory)."""
    path = Path(settings.data_dir) / "cloud_signing.key"
    if path.exists():
        return read_private_key(path)
    key = generate_private_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    write_private_key(staging, key)
    try:
        os.link(staging, path)  # fails if another process made it first: use theirs
    except FileExistsError:
        return read_private_key(path)
    finally:
        staging.unlink(missing_ok=True)
    return key


# --- people -------------------------------------------------------------------------------


def _public(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row["uid"] = str(row["uid"])
    return row


_SELECT = (
    "SELECT c.id, c.uid, c.gateway_id, c.board_id, c.kind, c.meter_id, m.external_id AS meter,"
    " c.args, c.reason, c.requested_by, coalesce(u.name, u.email) AS requested_by_name,"
    " c.status, c.created_at,"
    " c.expires_at, c.delivered_at, c.deliveries, c.started_at, c.finished_at, c.detail,"
    " c.result FROM gateway_commands c LEFT JOIN meters m ON m.id = c.meter_id"
    " LEFT JOIN users u ON u.id = c.requested_by"
)


async def queue(
    conn: AsyncConnection,
    principal: Principal,
    gateway_id: int,
    *,
    kind: str,
    meter_id: int | None,
    quantities: list[str] | None,
    lines: int | None,
    reason: str | None,
    expires_in: timedelta,
    client_key: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    max_drift_s: float | None = None,
) -> dict[str, Any]:
    """Queue a command (`client_key`: the same request sent twice queues it once). A backfill
    needs its range (`start` < `end`, at most 90 days, not in the future); a set_clock may say
    the drift it tolerates (`max_drift_s`, else 30 s)."""
    if kind not in (*KINDS, *SUPPLY):
        raise InvalidInput(f"unknown command {kind!r}", errors=[("kind", kind)])
    if kind in SUPPLY and not principal.may(Permission.METER_DISCONNECT):
        raise Forbidden("cutting or restoring a supply needs the meter:disconnect permission")
    if not timedelta(minutes=1) <= expires_in <= MAX_TTL:
        raise InvalidInput(
            "a command expires between a minute and 30 days after it is queued",
            errors=[("expires_in_h", str(expires_in))],
        )
    if kind == "backfill" and (
        problem := backfill_range_problem(start, end, now=datetime.now(UTC))
    ):
        raise InvalidInput(problem, errors=[("start", problem)])
    if max_drift_s is not None and not 1 <= max_drift_s <= 3600:
        raise InvalidInput(
            "the drift a clock may keep is between 1 s and an hour",
            errors=[("max_drift_s", str(max_drift_s))],
        )
    await resolve_in_scope(
        conn, principal, {"gateway": [gateway_id], "meter": [meter_id] if meter_id else []}
    )
    async with conn.transaction():
        cursor = await conn.execute(
            "SELECT id, board_id, gateway_code, status FROM gateways WHERE id = %s FOR UPDATE",
            (gateway_id,),
        )
        gateway = await cursor.fetchone()
        if gateway["status"] != "active":
            raise Conflict(f"gateway {gateway['gateway_code']} is revoked: it takes no commands")
        if kind in (*METER_KINDS, *SUPPLY):
            if meter_id is None:
                raise InvalidInput("say which meter to read", errors=[("meter_id", "missing")])
            cursor = await conn.execute(
                "SELECT external_id, gateway_id FROM meters WHERE id = %s", (meter_id,)
            )
            meter = await cursor.fetchone()
            if meter["gateway_id"] != gateway_id:
                raise InvalidInput(
                    f"meter {meter['external_id']} is not read by gateway"
                    f" {gateway['gateway_code']}",
                    errors=[("meter_id", str(meter_id))],
                )
        elif meter_id is not None:
            raise InvalidInput(f"a {kind} command is not about a meter", errors=[("meter_id", "")])
        args = CommandArgs(
            quantities=quantities if kind == "read_now" else None,
            lines=(lines or 200) if kind == "upload_log" else None,
            # on the wire in UTC, whatever zone the range was given in (a form's is the board's)
            start=start.astimezone(UTC) if kind == "backfill" and start else None,
            end=end.astimezone(UTC) if kind == "backfill" and end else None,
            max_drift_s=max_drift_s if kind == "set_clock" else None,
        ).model_dump(mode="json", exclude_none=True)
        now = datetime.now(UTC)
        if client_key is not None:
            cursor = await conn.execute(
                "SELECT id FROM gateway_commands WHERE client_key = %s AND gateway_id = %s",
                (client_key, gateway_id),
            )
            sent = await cursor.fetchone()
            if sent is not None:
                return await _one(conn, sent["id"])
        cursor = await conn.execute(
            "INSERT INTO gateway_commands (gateway_id, board_id, kind, meter_id, args, reason,"
            " requested_by, created_at, expires_at, client_key)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                gateway_id,
                gateway["board_id"],
                kind,
                meter_id,
                Jsonb(args),
                reason,
                principal.user_id,
                now,
                now + expires_in,
                client_key,
            ),
        )
        command_id = (await cursor.fetchone())["id"]
        row = await _one(conn, command_id)
        await audit.record(
            conn,
            actor=principal.actor,
            action="queue_command",
            entity="gateway",
            entity_id=gateway_id,
            after={"command": command_id, "kind": kind, "meter_id": meter_id, "reason": reason},
        )
    return row


async def switch_supply(
    conn: AsyncConnection, principal: Principal, meter_id: int, *, connect: bool, reason: str
) -> dict[str, Any]:
    """Disconnect or reconnect a consumer's supply: a command to the gateway that reads the
    meter, which must have a supply relay the gateway can drive (a DLMS meter)."""
    reason = reason.strip()
    if len(reason) < 5:
        raise InvalidInput(
            "give the reason for cutting or restoring a supply (it is kept in the audit log)",
            errors=[("reason", "too short")],
        )
    await resolve_in_scope(conn, principal, {"meter": [meter_id]})
    cursor = await conn.execute(
        "SELECT external_id, gateway_id, protocol FROM meters WHERE id = %s", (meter_id,)
    )
    meter = await cursor.fetchone()
    if meter["gateway_id"] is None:
        raise Conflict(f"meter {meter['external_id']} is not read by any gateway")
    return await queue(
        conn,
        principal,
        meter["gateway_id"],
        kind="reconnect" if connect else "disconnect",
        meter_id=meter_id,
        quantities=None,
        lines=None,
        reason=reason,
        expires_in=timedelta(days=1),  # a supply switched days late is worse than not at all
    )


async def _one(conn: AsyncConnection, command_id: int) -> dict[str, Any]:
    cursor = await conn.execute(_SELECT + " WHERE c.id = %s", (command_id,))
    row = await cursor.fetchone()
    if row is None:
        raise NotFound(f"no command {command_id}")
    return _public(row)


async def one(conn: AsyncConnection, principal: Principal, command_id: int) -> dict[str, Any]:
    await resolve_in_scope(conn, principal, {"gateway_command": [command_id]})
    return await _one(conn, command_id)


async def of_gateway(
    conn: AsyncConnection, principal: Principal, gateway_id: int, *, limit: int, offset: int
) -> dict[str, Any]:
    """The gateway's commands, newest first."""
    await resolve_in_scope(conn, principal, {"gateway": [gateway_id]})
    cursor = await conn.execute(
        _SELECT + " WHERE c.gateway_id = %s ORDER BY c.id DESC LIMIT %s OFFSET %s",
        (gateway_id, limit, offset),
    )
    rows = [_public(r) for r in await cursor.fetchall()]
    cursor = await conn.execute(
        "SELECT count(*) AS n FROM gateway_commands WHERE gateway_id = %s", (gateway_id,)
    )
    return {
        "items": rows,
        "total": (await cursor.fetchone())["n"],
        "limit": limit,
        "offset": offset,
    }


async def cancel(conn: AsyncConnection, principal: Principal, command_id: int) -> dict[str, Any]:
    """Take back a command the gateway has not been handed yet."""
    await resolve_in_scope(conn, principal, {"gateway_command": [command_id]})
    async with conn.transaction():
        cursor = await conn.execute(
            "UPDATE gateway_commands SET status = 'cancelled', finished_at = now()"
            " WHERE id = %s AND status = 'queued' RETURNING gateway_id",
            (command_id,),
        )
        row = await cursor.fetchone()
        if row is None:
            current = await _one(conn, command_id)
            raise Conflict(
                f"the command is {current['status']}: only a command the gateway has not"
                " been handed yet can be cancelled"
            )
        await audit.record(
            conn,
            actor=principal.actor,
            action="cancel_command",
            entity="gateway",
            entity_id=row["gateway_id"],
            after={"command": command_id},
        )
    return await _one(conn, command_id)


# --- gateways -----------------------------------------------------------------------------


async def waiting(conn: AsyncConnection, gateway_id: int) -> int:
    """How many commands, and new configurations, wait for the gateway (told in every
    acknowledgement)."""
    cursor = await conn.execute(
        "SELECT (SELECT count(*) FROM gateway_commands WHERE gateway_id = %s"
        "        AND status IN ('queued', 'delivered') AND expires_at > now())"
        " + (SELECT count(*) FROM gateway_configs WHERE gateway_id = %s AND status = 'pending')"
        " AS n",
        (gateway_id, gateway_id),
    )
    return (await cursor.fetchone())["n"]


async def authenticate(
    pool: AsyncConnectionPool, *, body: bytes, gateway_code: str | None, signature: str | None
) -> dict[str, Any]:
    """The enrolled, active gateway whose key signed `body`."""
    if not gateway_code:
        raise Unauthorized("X-Gridgate-Gateway header is missing")
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT id, board_id, gateway_code, status, public_key FROM gateways"
            " WHERE gateway_code = %s",
            (gateway_code,),
        )
        gateway = await cursor.fetchone()
    if gateway is None:
        raise Unauthorized(f"gateway {gateway_code} is not enrolled")
    if gateway["status"] != "active":
        raise Forbidden(f"gateway {gateway_code} is revoked; re-enroll it with a new token")
    try:
        verify_body(load_public_key(gateway["public_key"]), body, signature)
    except (SignatureInvalid, KeyInvalid) as exc:
        raise Unauthorized(str(exc)) from exc
    return gateway


async def signed(
    pool: AsyncConnectionPool,
    *,
    body: bytes,
    gateway_code: str | None,
    signature: str | None,
    model: type[M],
) -> tuple[dict[str, Any], M]:
    """The gateway that signed `body`, and the body read as `model` (which names the gateway
    itself in `gateway_id`: it must be the signer)."""
    gateway = await authenticate(pool, body=body, gateway_code=gateway_code, signature=signature)
    try:
        parsed = model.model_validate_json(body)
    except ValidationError as exc:
        problems = describe_validation_error(exc)
        raise InvalidInput(
            "; ".join(f"{f}: {m}" for f, m in problems[:10]), errors=problems
        ) from None
    if parsed.gateway_id != gateway_code:  # type: ignore[attr-defined]
        raise Unauthorized(
            f"request is for gateway {parsed.gateway_id}, signed as {gateway_code}"  # type: ignore[attr-defined]
        )
    return gateway, parsed


async def exchange(
    pool: AsyncConnectionPool,
    key: PrivateKey,
    *,
    body: bytes,
    gateway_code: str | None,
    signature: str | None,
) -> tuple[bytes, str]:
    """A gateway's signed report of results; the answer (and its signature): what is still to
    run. Results of commands it was never given, or already reported, change nothing."""
    gateway, request = await signed(
        pool, body=body, gateway_code=gateway_code, signature=signature, model=ControlRequest
    )
    async with pool.connection() as conn, conn.transaction():
        recorded = 0
        for result in request.results:
            cursor = await conn.execute(
                "UPDATE gateway_commands SET status = %s, started_at = %s, finished_at = %s,"
                " detail = %s, result = %s WHERE uid = %s AND gateway_id = %s"
                " AND status IN ('queued', 'delivered') RETURNING id",
                (
                    result.outcome.value,
                    result.started_at,
                    result.finished_at,
                    result.detail,
                    Jsonb(result.data),
                    result.id,
                    gateway["id"],
                ),
            )
            row = await cursor.fetchone()
            if row is None:
                continue
            recorded += 1
            await audit.record(
                conn,
                actor=f"gateway:{gateway_code}",
                action="command_result",
                entity="gateway",
                entity_id=gateway["id"],
                after={"command": row["id"], "outcome": result.outcome.value},
            )
        if request.config is not None:
            await gateway_configs.record_report(conn, gateway, request.config)
        desired = await gateway_configs.hand_over(conn, gateway["id"])
        cursor = await conn.execute(
            "UPDATE gateway_commands c SET status = 'delivered',"
            " delivered_at = coalesce(c.delivered_at, now()), deliveries = c.deliveries + 1"
            " FROM (SELECT id FROM gateway_commands WHERE gateway_id = %s"
            "       AND status IN ('queued', 'delivered') AND expires_at > now()"
            "       ORDER BY created_at LIMIT 20 FOR UPDATE) w"
            " WHERE c.id = w.id RETURNING c.uid, c.kind, c.meter_id, c.args, c.created_at,"
            " c.expires_at",
            (gateway["id"],),
        )
        handed = sorted(await cursor.fetchall(), key=lambda r: r["created_at"])
        meters = {}
        ids = [r["meter_id"] for r in handed if r["meter_id"]]
        if ids:
            cursor = await conn.execute(
                "SELECT id, external_id FROM meters WHERE id = ANY(%s)", (ids,)
            )
            meters = {r["id"]: r["external_id"] for r in await cursor.fetchall()}
    reply = ControlReply(
        commands=[
            Command(
                id=r["uid"],
                kind=r["kind"],
                meter_id=meters.get(r["meter_id"]),
                args=CommandArgs.model_validate(r["args"]),
                issued_at=r["created_at"],
                expires_at=r["expires_at"],
            )
            for r in handed
        ],
        recorded=recorded,
        config=desired,
    )
    payload = reply.model_dump_json().encode()
    return payload, sign_body(key, payload)


async def expire(conn: AsyncConnection, now: datetime) -> int:
    """Mark the commands that waited past their expiry; how many."""
    cursor = await conn.execute(
        "UPDATE gateway_commands SET status = 'expired', finished_at = %s"
        " WHERE status IN ('queued', 'delivered') AND expires_at <= %s RETURNING id",
        (now, now),
    )
    return len(await cursor.fetchall())
