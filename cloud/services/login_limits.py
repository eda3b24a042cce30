"""The login attempt recorder: every attempt is written and committed before its password is
checked, so the limits count every failure whatever happens to the request afterwards, with any
pool size and across any number of server processes.

Three limits, over a sliding window (`CloudSettings.login_*`):
- one account from one address: refused after `per_account_address` failures (since that
  pair's last success) — the guesser at one account;
- one address, any accounts: refused after `per_address` failures — credential stuffing —
  except for accounts that logged in from that address before (people behind one NAT);
- one account from anywhere: after `per_account` failures, addresses that never logged in to
  the account are slowed to one attempt per `slowdown_s` between them; the addresses the
  account's owner logged in from before are not slowed, so failing on purpose from elsewhere
  cannot lock the owner out.

An attempt being checked counts as a failure until it is known to have succeeded, and the
check-and-record step holds advisory locks on the account and the address (always in that
order), so concurrent attempts are counted exactly: the limit is reached at the configured
number, not a few tries later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus

from ..errors import TooManyRequests
from ..settings import CloudSettings


@dataclass(frozen=True)
class LoginLimits:
    per_account_address: int
    per_address: int
    per_account: int
    slowdown_s: int
    window_s: int
    known_address_days: int

    @classmethod
    def from_settings(cls, settings: CloudSettings) -> LoginLimits:
        return cls(
            per_account_address=settings.login_failures_per_account_address,
            per_address=settings.login_failures_per_address,
            per_account=settings.login_failures_per_account,
            slowdown_s=settings.login_slowdown_s,
            window_s=settings.login_window_s,
            known_address_days=settings.login_known_address_days,
        )


class LoginSlowedDown(TooManyRequests):
    """Refused for now; `retry_after_s` says when to try again."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


def _require_idle(conn: AsyncConnection) -> None:
    # the record must commit on its own: inside a caller's transaction it would be rolled
    # back with a failed login (the bug this module exists to prevent)
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise RuntimeError("login attempts must be recorded outside any open transaction")


async def record_attempt(
    conn: AsyncConnection, *, email: str, client_ip: str, limits: LoginLimits
) -> int:
    """Check the limits and record an attempt as being checked; its id, for `finish_attempt`.
    Raises `LoginSlowedDown` (429) without recording when a limit is reached."""
    _require_idle(conn)
    now = datetime.now(UTC)
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('login account ' || %s, 0))", (email,)
        )
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('login address ' || %s, 0))",
            (client_ip,),
        )
        cursor = await conn.execute(
            """
            WITH recent AS (
                SELECT email, client_ip, succeeded, at FROM login_attempts
                WHERE at > %(since)s AND (email = %(email)s OR client_ip = %(ip)s)
            ), pair_success AS (
                SELECT max(at) AS at FROM recent
                WHERE email = %(email)s AND client_ip = %(ip)s AND succeeded
            ), account_success AS (
                SELECT max(at) AS at FROM recent WHERE email = %(email)s AND succeeded
            )
            SELECT
                count(*) FILTER (
                    WHERE email = %(email)s AND client_ip = %(ip)s AND succeeded IS NOT TRUE
                      AND at > coalesce((SELECT at FROM pair_success), '-infinity')
                ) AS pair,
                count(*) FILTER (WHERE client_ip = %(ip)s AND succeeded IS NOT TRUE) AS address,
                count(*) FILTER (
                    WHERE email = %(email)s AND succeeded IS NOT TRUE
                      AND at > coalesce((SELECT at FROM account_success), '-infinity')
                ) AS account,
                max(at) FILTER (WHERE email = %(email)s) AS last_account_attempt,
                EXISTS (
                    SELECT 1 FROM login_attempts
                    WHERE email = %(email)s AND client_ip = %(ip)s AND succeeded
                      AND at > %(known_since)s
                ) AS known_address
            FROM recent
            """,
            {
                "email": email,
                "ip": client_ip,
                "since": now - timedelta(seconds=limits.window_s),
                "known_since": now - timedelta(days=limits.known_address_days),
            },
        )
        counts = await cursor.fetchone()
        address_full = counts["address"] >= limits.per_address and not counts["known_address"]
        if counts["pair"] >= limits.per_account_address or address_full:
            raise LoginSlowedDown(
                "too many failed logins; wait a few minutes and try again",
                retry_after_s=limits.window_s,
            )
        if counts["account"] >= limits.per_account and not counts["known_address"]:
            waited = (now - counts["last_account_attempt"]).total_seconds()
            if waited < limits.slowdown_s:
                retry = math.ceil(limits.slowdown_s - waited)
                raise LoginSlowedDown(
                    f"this account has had many failed logins; try again in {retry} s",
                    retry_after_s=retry,
                )
        cursor = await conn.execute(
            "INSERT INTO login_attempts (email, client_ip, succeeded) VALUES (%s, %s, NULL)"
            " RETURNING id",
            (email, client_ip),
        )
        return (await cursor.fetchone())["id"]


async def finish_attempt(conn: AsyncConnection, attempt_id: int, *, succeeded: bool) -> None:
    """Record how the attempt ended (committed at once, whatever the request does next)."""
    _require_idle(conn)
    async with conn.transaction():
        await conn.execute(
            "UPDATE login_attempts SET succeeded = %s WHERE id = %s", (succeeded, attempt_id)
        )
