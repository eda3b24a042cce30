"""API keys: what a user hands a third party instead of their password.

A key is `ggk_<public id>_<secret>`. The public id (16 hex digits) finds the row; the secret
(32 random bytes) is compared in constant time with the SHA-256 stored for it, and is shown once,
at creation, never stored, logged, audited or returned again.

A key carries a subset of its owner's permissions, chosen at creation, and acts in its owner's
scope. Its principal is built from the owner's row as it is now, so:
- a deactivated owner's keys are refused, within `CloudSettings.session_check_s` (the answer of a
  lookup is cached that long, like a session's);
- after a change of role the key may do what it carries *and* the new role allows (a demotion
  takes rights away at once; a promotion gives a key nothing it was not created with); after a
  change of scope it reaches the owner's new scope;
- a password reset leaves keys working: they are revoked one by one, by their owner.

Keys never carry `user:manage`, and a request made with a key cannot create or revoke keys
(`cloud.api.api_keys`), so a key cannot make a stronger key or a new account. Keys are accepted
only as `Authorization: Bearer` on the API, never from a cookie nor on the web app's pages.

`last_used_at` is written at most once a minute per key and process, not on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from ..access import ROLE_PERMISSIONS, Permission, Principal, scope_filter
from ..errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from . import audit

PREFIX = "ggk_"
NEVER_GRANTED = frozenset({Permission.USER_MANAGE})
LAST_USED_EVERY_S = 60
_TOKEN = re.compile(r"^ggk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_MAX_CACHED = 10_000
_KNOWN = frozenset(p.value for p in Permission)  # a permission dropped since is simply not held
COLUMNS = (
    "k.id, k.name, k.public_id, k.permissions, k.created_at, k.expires_at, k.last_used_at,"
    " k.revoked_at"
)


def grantable(principal: Principal) -> frozenset[Permission]:
    """The permissions a key of this caller may carry: their role's, less what keys never get."""
    return ROLE_PERMISSIONS.get(principal.role, frozenset()) - NEVER_GRANTED


def is_key(token: str) -> bool:
    return token.startswith(PREFIX)


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A key as listed: its prefix names it (`ggk_<public id>`), never its secret."""
    shown = {k: v for k, v in row.items() if k != "public_id"}
    shown["prefix"] = f"{PREFIX}{row['public_id']}"
    shown["permissions"] = sorted(row["permissions"])
    return shown


def _refuse_keys(principal: Principal) -> None:
    if principal.by_key:
        raise Forbidden("an API key cannot create, list or revoke API keys; sign in as its owner")


async def create(
    conn: AsyncConnection,
    principal: Principal,
    *,
    name: str,
    permissions: list[Permission],
    expires_at: datetime,
    max_days: int,
    per_user: int,
) -> dict[str, Any]:
    """A new key; the answer holds its secret (`key`), which nothing shows again."""
    _refuse_keys(principal)
    wanted = frozenset(permissions)
    not_held = sorted(p.value for p in wanted - grantable(principal))
    if not_held:
        raise InvalidInput(
            f"a key can only carry permissions you hold (and never user:manage);"
            f" not yours to give: {', '.join(not_held)}",
            errors=[("permissions", p) for p in not_held],
        )
    now = datetime.now(UTC)
    if expires_at <= now + timedelta(minutes=1):
        raise InvalidInput(
            "expires_at must lie in the future", errors=[("expires_at", expires_at.isoformat())]
        )
    if expires_at > now + timedelta(days=max_days):
        raise InvalidInput(
            f"a key may last {max_days} days at most; expires_at is later than that",
            errors=[("expires_at", expires_at.isoformat())],
        )
    public_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    async with conn.transaction():
        # one owner's keys are created one at a time, so the count below holds
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('api keys of ' || %s, 0))",
            (principal.user_id,),
        )
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM api_keys"
            " WHERE user_id = %s AND revoked_at IS NULL AND expires_at > now()",
            (principal.user_id,),
        )
        if (await cursor.fetchone())["n"] >= per_user:
            raise Conflict(f"you hold {per_user} live API keys already; revoke one first")
        cursor = await conn.execute(
            sql.SQL(
                "INSERT INTO api_keys AS k"
                " (user_id, public_id, name, permissions, secret_hash, expires_at)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING {}"
            ).format(sql.SQL(COLUMNS)),
            (
                principal.user_id,
                public_id,
                name,
                sorted(p.value for p in wanted),
                _digest(secret),
                expires_at,
            ),
        )
        row = _shown(await cursor.fetchone())
        await audit.record(
            conn,
            actor=principal.actor,
            action="create",
            entity="api_key",
            entity_id=row["id"],
            after={k: row[k] for k in ("name", "prefix", "permissions", "expires_at")},
        )
    return {**row, "key": f"{PREFIX}{public_id}_{secret}"}


async def owned(conn: AsyncConnection, principal: Principal) -> list[dict[str, Any]]:
    """The caller's keys not revoked, newest first (expired ones too, marked by their date)."""
    _refuse_keys(principal)
    condition, params = scope_filter(principal, "api_key", "k")
    cursor = await conn.execute(
        sql.SQL(
            "SELECT {} FROM api_keys k WHERE k.revoked_at IS NULL AND {}"
            " ORDER BY k.created_at DESC, k.id DESC LIMIT 1000"
        ).format(sql.SQL(COLUMNS), condition),
        params,
    )
    return [_shown(row) for row in await cursor.fetchall()]


async def revoke(conn: AsyncConnection, principal: Principal, key_id: int) -> dict[str, Any]:
    """Revoke one of the caller's keys; another's, or one revoked already, is not found."""
    _refuse_keys(principal)
    condition, params = scope_filter(principal, "api_key", "k")
    async with conn.transaction():
        cursor = await conn.execute(
            sql.SQL(
                "UPDATE api_keys k SET revoked_at = now() WHERE k.id = %s"
                " AND k.revoked_at IS NULL AND {} RETURNING {}"
            ).format(condition, sql.SQL(COLUMNS)),
            [key_id, *params],
        )
        row = await cursor.fetchone()
        if row is None:
            raise NotFound(f"no api key {key_id}")
        shown = _shown(row)
        await audit.record(
            conn,
            actor=principal.actor,
            action="revoke",
            entity="api_key",
            entity_id=key_id,
            before={k: shown[k] for k in ("name", "prefix", "permissions", "expires_at")},
        )
    return shown


@dataclass
class _Entry:
    row: dict[str, Any] | None
    until: float
    last_used: datetime | None = None


@dataclass
class KeyCache:
    """Recent lookups: public id -> the key and its owner as they were (None: no such key).
    Bounded, oldest out first; nothing is kept when `ttl_s` is 0."""

    ttl_s: float
    _entries: OrderedDict[str, _Entry] = field(default_factory=OrderedDict)

    def get(self, public_id: str) -> _Entry | None:
        entry = self._entries.get(public_id)
        if entry is None or entry.until <= time.monotonic():
            return None
        return entry

    def put(self, public_id: str, row: dict[str, Any] | None) -> _Entry:
        entry = _Entry(row, time.monotonic() + self.ttl_s, row["last_used_at"] if row else None)
        if self.ttl_s > 0:
            self._entries[public_id] = entry
            self._entries.move_to_end(public_id)
            while len(self._entries) > _MAX_CACHED:
                self._entries.popitem(last=False)
        return entry

    def forget(self, public_id: str) -> None:
        self._entries.pop(public_id, None)


def public_id_of(token: str) -> str | None:
    match = _TOKEN.match(token)
    return match.group(1) if match else None


async def _lookup(conn: AsyncConnection, public_id: str) -> dict[str, Any] | None:
    cursor = await conn.execute(
        "SELECT k.id, k.user_id, k.permissions, k.secret_hash, k.expires_at, k.last_used_at,"
        " k.revoked_at, u.role, u.state_id, u.board_id, u.consumer_id, u.active"
        " FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.public_id = %s",
        (public_id,),
    )
    return await cursor.fetchone()


async def principal_for_key(token: str, *, pool: AsyncConnectionPool, cache: KeyCache) -> Principal:
    """The caller a key names, if the key is valid, live and its owner active; Unauthorized
    otherwise."""
    match = _TOKEN.match(token)
    if match is None:
        raise Unauthorized("API key is not valid")
    public_id, secret = match.groups()
    entry = cache.get(public_id)
    if entry is None:
        async with pool.connection() as conn:
            entry = cache.put(public_id, await _lookup(conn, public_id))
    row = entry.row
    if row is None or not hmac.compare_digest(bytes(row["secret_hash"]), _digest(secret)):
        raise Unauthorized("API key is not valid")
    now = datetime.now(UTC)
    if row["revoked_at"] is not None:
        raise Unauthorized("this API key was revoked")
    if row["expires_at"] <= now:
        raise Unauthorized(f"this API key expired at {row['expires_at']:%Y-%m-%d %H:%M} UTC")
    if not row["active"]:
        raise Unauthorized("the account this API key belongs to is no longer active")
    if entry.last_used is None or (now - entry.last_used).total_seconds() >= LAST_USED_EVERY_S:
        entry.last_used = now
        async with pool.connection() as conn:
            await conn.execute(
                "UPDATE api_keys SET last_used_at = now() WHERE id = %s AND"
                " (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => %s))",
                (row["id"], LAST_USED_EVERY_S),
            )
    carried = frozenset(Permission(p) for p in row["permissions"] if p in _KNOWN)
    return Principal(
        row["user_id"],
        row["role"],
        row["state_id"],
        row["board_id"],
        row["consumer_id"],
        permissions=carried - NEVER_GRANTED,
        api_key_id=row["id"],
    )
