"""Whether an access token's session still stands: the one check every authenticated request
(API and dashboard) passes before it reaches a route.

A token is refused once its user is deactivated, once the user's session version moved (a change
of role, scope or password: `users_bump_session_version` in the schema) or once its session was
logged out or revoked (its refresh-token family has no live token left). The answer is cached
per (user, session, version) for `CloudSettings.session_check_s` seconds, so a busy client costs
one small query every few seconds, and every server process learns of a change within that time.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool

from ..access import Principal
from ..errors import Unauthorized
from .auth import AccessClaims, decode_access

_MAX_CACHED = 10_000

_Key = tuple[int, uuid.UUID, int]


@dataclass
class SessionCache:
    """Recent verdicts: key -> (refusal or None, monotonic expiry). Bounded, oldest out first."""

    ttl_s: float
    _entries: OrderedDict[_Key, tuple[str | None, float]] = field(default_factory=OrderedDict)

    def get(self, key: _Key) -> tuple[bool, str | None]:
        """(known, refusal): known is False when the key must be checked again."""
        entry = self._entries.get(key)
        if entry is None or entry[1] <= time.monotonic():
            return False, None
        return True, entry[0]

    def put(self, key: _Key, refusal: str | None) -> None:
        if self.ttl_s <= 0:
            return
        self._entries[key] = (refusal, time.monotonic() + self.ttl_s)
        self._entries.move_to_end(key)
        while len(self._entries) > _MAX_CACHED:
            self._entries.popitem(last=False)


async def _refusal(pool: AsyncConnectionPool, claims: AccessClaims) -> str | None:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT u.active, u.session_version,"
            " EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family = %s AND t.user_id = u.id"
            "         AND t.revoked_at IS NULL) AS live"
            " FROM users u WHERE u.id = %s",
            (claims.session, claims.principal.user_id),
        )
        user = await cursor.fetchone()
    if user is None or not user["active"]:
        return "this account is no longer active"
    if user["session_version"] != claims.session_version:
        return "this account changed (role, scope or password) since you logged in; log in again"
    if not user["live"]:
        return "this session has ended; log in again"
    return None


async def principal_for(
    token: str, *, secret: str, pool: AsyncConnectionPool, cache: SessionCache
) -> Principal:
    """The caller named by a valid access token whose session stands; Unauthorized otherwise."""
    claims = decode_access(token, secret)
    key = (claims.principal.user_id, claims.session, claims.session_version)
    known, refusal = cache.get(key)
    if not known:
        refusal = await _refusal(pool, claims)
        cache.put(key, refusal)
    if refusal is not None:
        raise Unauthorized(refusal)
    return claims.principal
