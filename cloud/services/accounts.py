"""Accounts people run themselves: consumer sign-up by e-mailed code, staff invitations,
forgotten and changed passwords, and a confirmed change of e-mail address.

Every code or link goes out by e-mail through the outbox (`cloud.services.outbox`), written in
the transaction that creates it. Only keyed hashes are stored (HMAC under the server's secret),
so a copy of the database gives no six-digit code away to a brute force.

Nothing an unauthenticated caller asks reveals whether an account exists: a sign-up or a
forgotten-password request is answered the same way, after the same work, whether or not it
matched anyone; the person who owns the address learns what happened by e-mail. Each request is
recorded (`account_requests`) and limited per subject (account number or e-mail address) and per
address; the check and the record happen under advisory locks, so limits hold across processes.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from ..access import Principal
from ..errors import CloudError, Conflict, InvalidInput, TooManyRequests, Unauthorized
from ..settings import CloudSettings
from . import audit, auth, outbox
from .passwords import check_new_password, hash_password, verify_password

CODE_TTL = timedelta(minutes=10)
CODE_ATTEMPTS = 5
INVITATION_TTL = timedelta(hours=72)
RESET_TTL = timedelta(minutes=60)
EMAIL_CHANGE_TTL = timedelta(hours=24)
ROLE_WORDS = {
    "SUPER_ADMIN": "operator",
    "STATE_ADMIN": "state administrator",
    "BOARD_ADMIN": "board administrator",
    "SUPPORT_AGENT": "support agent",
    "AUDITOR": "auditor",
    "TECHNICIAN": "field technician",
    "CONSUMER": "consumer",
}
_SIGNUP_REPLY = "if these match a consumer record, a code is on its way to that address"


@dataclass(frozen=True)
class AccountContext:
    """What every account flow needs from the running service."""

    secret: str
    settings: CloudSettings

    @property
    def base_url(self) -> str:
        """Where people reach the service; never taken from a request's Host header, which a
        caller chooses (a reset link must not point at an attacker's site)."""
        configured = self.settings.public_url
        base = configured or f"http://{self.settings.host}:{self.settings.port}"
        return base.rstrip("/")

    def keyed(self, *parts: object) -> bytes:
        message = "\x1f".join(str(part) for part in parts).encode()
        key = hashlib.sha256(b"gridgate account tokens\x00" + self.secret.encode()).digest()
        return hmac.new(key, message, hashlib.sha256).digest()


class RequestsLimited(TooManyRequests):
    def __init__(self, message: str, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


async def _limit_and_record(
    conn: AsyncConnection,
    ctx: AccountContext,
    *,
    kind: str,
    subject: str,
    client_ip: str,
    factor: int = 1,
) -> None:
    """Refuse (429) when the subject or the address asked too often (`factor` times the
    configured numbers); else record this request. Inside the caller's transaction, under locks
    on the subject and the address."""
    settings = ctx.settings
    per_subject = settings.account_requests_per_subject * factor
    per_ip = settings.account_requests_per_address * factor
    for key in (f"{kind} subject {subject}", f"{kind} ip {client_ip}"):
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
    since = datetime.now(UTC) - timedelta(seconds=settings.account_window_s)
    cursor = await conn.execute(
        "SELECT"
        " (SELECT count(*) FROM account_requests WHERE kind = %(kind)s"
        "   AND subject = %(subject)s AND at > %(since)s) AS by_subject,"
        " (SELECT min(at) FROM (SELECT at FROM account_requests WHERE kind = %(kind)s"
        "   AND subject = %(subject)s AND at > %(since)s ORDER BY at DESC"
        "   LIMIT %(per_subject)s) s) AS subject_oldest,"
        " (SELECT count(*) FROM account_requests WHERE kind = %(kind)s"
        "   AND client_ip = %(ip)s AND at > %(since)s) AS by_ip,"
        " (SELECT min(at) FROM (SELECT at FROM account_requests WHERE kind = %(kind)s"
        "   AND client_ip = %(ip)s AND at > %(since)s ORDER BY at DESC"
        "   LIMIT %(per_ip)s) s) AS ip_oldest",
        {
            "kind": kind,
            "subject": subject,
            "ip": client_ip,
            "since": since,
            "per_subject": per_subject,
            "per_ip": per_ip,
        },
    )
    seen = await cursor.fetchone()
    window = timedelta(seconds=settings.account_window_s)
    for count, limit, oldest in (
        (seen["by_subject"], per_subject, seen["subject_oldest"]),
        (seen["by_ip"], per_ip, seen["ip_oldest"]),
    ):
        if count >= limit:
            wait = (oldest + window - datetime.now(UTC)).total_seconds()
            raise RequestsLimited(
                f"too many requests; try again in {_minutes(wait)}", max(1, math.ceil(wait))
            )
    await conn.execute(
        "INSERT INTO account_requests (kind, subject, client_ip) VALUES (%s, %s, %s)",
        (kind, subject, client_ip),
    )


def _minutes(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return "a minute" if minutes == 1 else f"{minutes} minutes"


def _masked(email: str) -> str:
    """Enough of an address for its owner to recognise it: 'as***@example.in'."""
    local, _, domain = email.partition("@")
    return f"{local[:2]}***@{domain}"


def _code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


async def _zone(conn: AsyncConnection, user_id: int | None, consumer_id: int | None) -> ZoneInfo:
    cursor = await conn.execute(
        "SELECT b.time_zone FROM boards b WHERE b.id = coalesce("
        " (SELECT board_id FROM users WHERE id = %s),"
        " (SELECT board_id FROM consumers WHERE id = coalesce(%s,"
        "   (SELECT consumer_id FROM users WHERE id = %s))))",
        (user_id, consumer_id, user_id),
    )
    row = await cursor.fetchone()
    return ZoneInfo(row["time_zone"] if row else "UTC")


def _local(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%d %b %Y, %H:%M} {local.tzname()}"


async def _new_token(
    conn: AsyncConnection,
    *,
    purpose: str,
    digest: bytes,
    email: str,
    ttl: timedelta,
    user_id: int | None = None,
    consumer_id: int | None = None,
    replace: bool = True,
) -> int:
    """Store a code or link (its keyed hash) and return its id; with `replace`, the earlier live
    ones of the same purpose for the same user (or consumer and address) stop working."""
    if replace and user_id is not None:
        await conn.execute(
            "UPDATE account_tokens SET used_at = now()"
            " WHERE user_id = %s AND purpose = %s AND used_at IS NULL",
            (user_id, purpose),
        )
    elif replace:  # a sign-up code: by consumer record and address (account_tokens_signup)
        await conn.execute(
            "UPDATE account_tokens SET used_at = now() WHERE purpose = 'signup'"
            " AND consumer_id = %s AND email = %s AND used_at IS NULL",
            (consumer_id, email),
        )
    cursor = await conn.execute(
        "INSERT INTO account_tokens (purpose, token_hash, email, user_id, consumer_id,"
        " expires_at) VALUES (%s, %s, %s, %s, %s, now() + %s) RETURNING id",
        (purpose, digest, email, user_id, consumer_id, ttl),
    )
    return (await cursor.fetchone())["id"]


# --- consumer sign-up ---------------------------------------------------------------------


async def _signup_match(
    conn: AsyncConnection, account_no: str, email: str, board_code: str | None
) -> dict[str, Any] | None:
    """The one consumer record with this account number and e-mail (in this board, if named)."""
    cursor = await conn.execute(
        "SELECT c.id, c.name, c.account_no, b.code AS board_code,"
        " (SELECT u.id FROM users u WHERE u.consumer_id = c.id LIMIT 1) AS user_id,"
        " (SELECT u.email FROM users u WHERE u.consumer_id = c.id LIMIT 1) AS user_email"
        " FROM consumers c JOIN boards b ON b.id = c.board_id"
        " WHERE upper(c.account_no) = upper(%s) AND lower(c.email) = %s"
        " AND (%s::text IS NULL OR b.code = %s) LIMIT 2",
        (account_no, email, board_code, board_code),
    )
    rows = await cursor.fetchall()
    return rows[0] if len(rows) == 1 else None


async def request_signup(
    pool: AsyncConnectionPool,
    ctx: AccountContext,
    *,
    account_no: str,
    email: str,
    board_code: str | None,
    client_ip: str,
) -> str:
    """Send a sign-up code to `email` if it and `account_no` are on one consumer's record (or,
    if that consumer already has an account, say so to that address). The same answer and the
    same work either way."""
    email, account_no = email.lower(), account_no.strip()
    code = _code()
    async with pool.connection() as conn, conn.transaction():
        await _limit_and_record(
            conn, ctx, kind="signup", subject=account_no.casefold(), client_ip=client_ip
        )
        consumer = await _signup_match(conn, account_no, email, board_code)
        taken = await _email_taken(conn, email)
        if consumer is None:
            ctx.keyed("signup", 0, email, code)  # the work the other branches do
            return _SIGNUP_REPLY
        if consumer["user_id"] is not None or taken:
            await outbox.enqueue(
                conn,
                event_key=f"signup-exists:{consumer['id']}:{secrets.token_hex(8)}",
                to=email,
                kind="signup_exists",
                context={
                    "name": consumer["name"],
                    "account_no": consumer["account_no"],
                    "signs_in_as": _masked(consumer["user_email"] or email),
                    "login_url": f"{ctx.base_url}/dashboard/login",
                    "forgot_url": f"{ctx.base_url}/dashboard/password/forgot",
                },
            )
            return _SIGNUP_REPLY
        token_id = await _new_token(
            conn,
            purpose="signup",
            digest=ctx.keyed("signup", consumer["id"], email, code),
            email=email,
            ttl=CODE_TTL,
            consumer_id=consumer["id"],
        )
        await outbox.enqueue(
            conn,
            event_key=f"signup-code:{token_id}",
            to=email,
            kind="signup_code",
            context={
                "name": consumer["name"],
                "account_no": consumer["account_no"],
                "code": code,
                "minutes": int(CODE_TTL.total_seconds() // 60),
            },
        )
    return _SIGNUP_REPLY


async def _email_taken(conn: AsyncConnection, email: str) -> bool:
    cursor = await conn.execute("SELECT 1 FROM users WHERE email = %s", (email,))
    return await cursor.fetchone() is not None


async def complete_signup(
    pool: AsyncConnectionPool,
    ctx: AccountContext,
    *,
    account_no: str,
    email: str,
    board_code: str | None,
    code: str,
    password: str,
    client_ip: str,
) -> dict[str, Any]:
    """The consumer's new user, when `code` is the live one sent for this record and address.
    A wrong code uses up one of its attempts (committed whatever the answer)."""
    email, account_no = email.lower(), account_no.strip()
    check_new_password(password, email=email)
    password_hash = await hash_password(password)
    refusal: CloudError | None = None
    async with pool.connection() as conn:
        async with conn.transaction():
            await _limit_and_record(  # each code sent may be tried CODE_ATTEMPTS times
                conn,
                ctx,
                kind="signup_code",
                subject=account_no.casefold(),
                client_ip=client_ip,
                factor=CODE_ATTEMPTS,
            )
            consumer = await _signup_match(conn, account_no, email, board_code)
            token = None
            if consumer is not None:
                cursor = await conn.execute(
                    "SELECT id, token_hash, attempts FROM account_tokens"
                    " WHERE purpose = 'signup' AND consumer_id = %s AND email = %s"
                    " AND used_at IS NULL AND expires_at > now() AND attempts < %s"
                    " ORDER BY id DESC LIMIT 1 FOR UPDATE",
                    (consumer["id"], email, CODE_ATTEMPTS),
                )
                token = await cursor.fetchone()
            expected = ctx.keyed("signup", consumer["id"] if consumer else 0, email, code)
            if token is None:
                refusal = InvalidInput(
                    "the code is wrong or has expired; ask for a new one",
                    errors=[("code", "wrong or expired")],
                )
            elif not hmac.compare_digest(bytes(token["token_hash"]), expected):
                await conn.execute(
                    "UPDATE account_tokens SET attempts = attempts + 1 WHERE id = %s",
                    (token["id"],),
                )
                left = CODE_ATTEMPTS - token["attempts"] - 1
                refusal = InvalidInput(
                    f"the code is wrong; {left} tries left"
                    if left
                    else "the code is wrong, and that was its last try; ask for a new one",
                    errors=[("code", "wrong")],
                )
            else:
                await conn.execute(
                    "UPDATE account_tokens SET used_at = now() WHERE id = %s", (token["id"],)
                )
                if consumer["user_id"] is not None or await _email_taken(conn, email):
                    raise Conflict("this consumer or this e-mail already has an account; sign in")
                cursor = await conn.execute(
                    "INSERT INTO users (email, password_hash, role, consumer_id, name,"
                    " password_set_at) VALUES (%s, %s, 'CONSUMER', %s, %s, now())"
                    " RETURNING id, email, role, consumer_id, name",
                    (email, password_hash, consumer["id"], consumer["name"]),
                )
                user = await cursor.fetchone()
                await audit.record(
                    conn,
                    actor=f"user:{user['id']}",
                    action="sign_up",
                    entity="user",
                    entity_id=user["id"],
                    after=user,
                )
        if refusal is not None:
            raise refusal
    return user


# --- staff invitations ----------------------------------------------------------------------


async def send_invitation(
    conn: AsyncConnection, ctx: AccountContext, user: dict[str, Any], *, inviter: str
) -> None:
    """A single-use link for `user` to choose a password (earlier links stop working)."""
    link_secret = secrets.token_urlsafe(32)
    token_id = await _new_token(
        conn,
        purpose="invitation",
        digest=ctx.keyed("link", link_secret),
        email=user["email"],
        ttl=INVITATION_TTL,
        user_id=user["id"],
    )
    cursor = await conn.execute(
        "SELECT coalesce(b.name, s.name) AS scope FROM users u"
        " LEFT JOIN boards b ON b.id = u.board_id LEFT JOIN states s ON s.id = u.state_id"
        " WHERE u.id = %s",
        (user["id"],),
    )
    scope = (await cursor.fetchone())["scope"]
    await outbox.enqueue(
        conn,
        event_key=f"invitation:{token_id}",
        to=user["email"],
        kind="invitation",
        context={
            "name": user.get("name"),
            "inviter": inviter,
            "role": ROLE_WORDS.get(user["role"], user["role"]),
            "scope": scope,
            "link": f"{ctx.base_url}/dashboard/invitation?token={link_secret}",
            "hours": int(INVITATION_TTL.total_seconds() // 3600),
        },
    )


async def _live_link(
    conn: AsyncConnection, ctx: AccountContext, purpose: str, link_secret: str
) -> dict[str, Any]:
    cursor = await conn.execute(
        "SELECT t.id, t.user_id, t.email, u.email AS user_email, u.name, u.active"
        " FROM account_tokens t JOIN users u ON u.id = t.user_id"
        " WHERE t.token_hash = %s AND t.purpose = %s AND t.used_at IS NULL"
        " AND t.expires_at > now() FOR UPDATE OF t",
        (ctx.keyed("link", link_secret), purpose),
    )
    token = await cursor.fetchone()
    if token is None or not token["active"]:
        raise InvalidInput(
            "this link is not valid any more (used, expired or replaced); ask for a new one",
            errors=[("token", "not valid")],
        )
    return token


async def invitation_for(
    pool: AsyncConnectionPool, ctx: AccountContext, link_secret: str
) -> dict[str, Any]:
    """Whom a live invitation link is for (the acceptance page names them)."""
    async with pool.connection() as conn, conn.transaction():
        token = await _live_link(conn, ctx, "invitation", link_secret)
    return {"email": token["user_email"], "name": token["name"]}


async def accept_invitation(
    pool: AsyncConnectionPool,
    ctx: AccountContext,
    *,
    token: str,
    password: str,
    name: str | None,
) -> dict[str, Any]:
    async with pool.connection() as conn:
        async with conn.transaction():
            found = await _live_link(conn, ctx, "invitation", token)
        check_new_password(password, email=found["user_email"], name=name or found["name"])
        password_hash = await hash_password(password)
        async with conn.transaction():
            found = await _live_link(conn, ctx, "invitation", token)  # still unused, now locked
            await conn.execute(
                "UPDATE account_tokens SET used_at = now() WHERE id = %s", (found["id"],)
            )
            cursor = await conn.execute(
                "UPDATE users SET password_hash = %s, password_set_at = now(),"
                " name = coalesce(%s, name) WHERE id = %s RETURNING id, email, role, name",
                (password_hash, name, found["user_id"]),
            )
            user = await cursor.fetchone()
            await audit.record(
                conn,
                actor=f"user:{user['id']}",
                action="accept_invitation",
                entity="user",
                entity_id=user["id"],
            )
    return user


# --- passwords ------------------------------------------------------------------------------


async def request_password_reset(
    pool: AsyncConnectionPool, ctx: AccountContext, *, email: str, client_ip: str
) -> str:
    """E-mail a reset link if an active account has this address; the same answer either way."""
    email = email.lower()
    link_secret = secrets.token_urlsafe(32)
    async with pool.connection() as conn, conn.transaction():
        await _limit_and_record(
            conn, ctx, kind="forgot_password", subject=email, client_ip=client_ip
        )
        cursor = await conn.execute(
            "SELECT id, email, name FROM users WHERE email = %s AND active", (email,)
        )
        user = await cursor.fetchone()
        digest = ctx.keyed("link", link_secret)
        if user is not None:
            await _send_reset(conn, ctx, user, link_secret, digest)
    return "if an account uses this address, a link to choose a new password is on its way"


async def _send_reset(
    conn: AsyncConnection,
    ctx: AccountContext,
    user: dict[str, Any],
    link_secret: str,
    digest: bytes,
) -> None:
    token_id = await _new_token(  # earlier reset links keep working until one is used
        conn,
        purpose="password_reset",
        digest=digest,
        email=user["email"],
        ttl=RESET_TTL,
        user_id=user["id"],
        replace=False,
    )
    await outbox.enqueue(
        conn,
        event_key=f"password-reset:{token_id}",
        to=user["email"],
        kind="password_reset",
        context={
            "name": user["name"],
            "email": user["email"],
            "link": f"{ctx.base_url}/dashboard/password/reset?token={link_secret}",
            "minutes": int(RESET_TTL.total_seconds() // 60),
        },
    )


async def reset_by_admin(
    conn: AsyncConnection, ctx: AccountContext, principal: Principal, user_id: int
) -> None:
    """An administrator ends every session of a user in their scope and sends them a reset
    link (the admin never learns or sets the password). Inside the caller's transaction."""
    cursor = await conn.execute(
        "SELECT id, email, name FROM users WHERE id = %s AND active", (user_id,)
    )
    user = await cursor.fetchone()
    if user is None:
        raise InvalidInput("this user is deactivated", errors=[("user_id", str(user_id))])
    await auth.revoke_sessions(conn, user_id)
    link_secret = secrets.token_urlsafe(32)
    await _send_reset(conn, ctx, user, link_secret, ctx.keyed("link", link_secret))
    await audit.record(
        conn, actor=principal.actor, action="reset_password", entity="user", entity_id=user_id
    )


async def reset_password(
    pool: AsyncConnectionPool, ctx: AccountContext, *, token: str, password: str
) -> None:
    """Set the password a reset link was sent for; every session of the user ends."""
    async with pool.connection() as conn:
        async with conn.transaction():
            found = await _live_link(conn, ctx, "password_reset", token)
        check_new_password(password, email=found["user_email"], name=found["name"])
        password_hash = await hash_password(password)
        async with conn.transaction():
            found = await _live_link(conn, ctx, "password_reset", token)
            await conn.execute(
                "UPDATE account_tokens SET used_at = now() WHERE user_id = %s"
                " AND purpose IN ('password_reset', 'invitation') AND used_at IS NULL",
                (found["user_id"],),
            )
            await _store_password(conn, ctx, found["user_id"], password_hash, how="reset")


async def _store_password(
    conn: AsyncConnection, ctx: AccountContext, user_id: int, password_hash: str, *, how: str
) -> None:
    cursor = await conn.execute(
        "UPDATE users SET password_hash = %s, password_set_at = now() WHERE id = %s"
        " RETURNING id, email, name, password_set_at",
        (password_hash, user_id),
    )
    user = await cursor.fetchone()
    await auth.revoke_sessions(conn, user_id)
    await audit.record(
        conn,
        actor=f"user:{user_id}",
        action="reset_password" if how == "reset" else "change_password",
        entity="user",
        entity_id=user_id,
    )
    zone = await _zone(conn, user_id, None)
    await outbox.enqueue(
        conn,
        event_key=f"password-changed:{user_id}:{user['password_set_at'].isoformat()}",
        to=user["email"],
        kind="password_changed",
        context={
            "name": user["name"],
            "email": user["email"],
            "how": "reset through an e-mailed link" if how == "reset" else "changed",
            "when": _local(user["password_set_at"], zone),
            "forgot_url": f"{ctx.base_url}/dashboard/password/forgot",
        },
    )


async def change_password(
    pool: AsyncConnectionPool,
    ctx: AccountContext,
    principal: Principal,
    *,
    current: str,
    new: str,
    client_ip: str,
) -> None:
    """A signed-in user's new password, given the current one (a borrowed session alone cannot
    change it). Wrong current passwords count against the login limits."""
    from .login_limits import LoginLimits, finish_attempt, record_attempt

    async with pool.connection() as conn:
        async with conn.transaction():
            cursor = await conn.execute(
                "SELECT email, name, password_hash FROM users WHERE id = %s", (principal.user_id,)
            )
            user = await cursor.fetchone()
        attempt = await record_attempt(
            conn,
            email=user["email"],
            client_ip=client_ip,
            limits=LoginLimits.from_settings(ctx.settings),
        )
    ok = await verify_password(user["password_hash"], current)
    async with pool.connection() as conn:
        await finish_attempt(conn, attempt, succeeded=ok)
    if not ok:
        raise Unauthorized("the current password is wrong")
    if new == current:
        raise InvalidInput(
            "the new password is the current one", errors=[("new_password", "unchanged")]
        )
    check_new_password(new, email=user["email"], name=user["name"])
    password_hash = await hash_password(new)
    async with pool.connection() as conn, conn.transaction():
        await _store_password(conn, ctx, principal.user_id, password_hash, how="change")


# --- profile and e-mail change --------------------------------------------------------------

PROFILE_FIELDS = ("name", "phone", "language")


async def profile(conn: AsyncConnection, principal: Principal) -> dict[str, Any]:
    cursor = await conn.execute(
        "SELECT u.id, u.email, u.name, u.phone, u.language, u.role, u.created_at,"
        " u.password_set_at, s.name AS state, b.name AS board, b.time_zone,"
        " c.account_no AS consumer_account, c.name AS consumer_name,"
        " (SELECT t.email FROM account_tokens t WHERE t.user_id = u.id"
        "   AND t.purpose = 'email_change' AND t.used_at IS NULL AND t.expires_at > now()"
        "   ORDER BY t.id DESC LIMIT 1) AS pending_email"
        " FROM users u LEFT JOIN consumers c ON c.id = u.consumer_id"
        " LEFT JOIN boards b ON b.id = coalesce(u.board_id, c.board_id)"
        " LEFT JOIN states s ON s.id = coalesce(u.state_id, b.state_id)"
        " WHERE u.id = %s",
        (principal.user_id,),
    )
    return await cursor.fetchone()


async def update_profile(
    pool: AsyncConnectionPool, ctx: AccountContext, principal: Principal, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change name, phone or language at once; a new e-mail address only once the link sent
    to it is opened (the old address is told when it changes)."""
    new_email = changes.pop("email", None)
    async with pool.connection() as conn, conn.transaction():
        before = await profile(conn, principal)
        fields = {k: v for k, v in changes.items() if k in PROFILE_FIELDS}
        if fields:
            assignments = ", ".join(f"{name} = %({name})s" for name in fields)
            await conn.execute(
                f"UPDATE users SET {assignments} WHERE id = %(id)s",  # noqa: S608 - fixed names
                {**fields, "id": principal.user_id},
            )
            await audit.record(
                conn,
                actor=principal.actor,
                action="update_profile",
                entity="user",
                entity_id=principal.user_id,
                before={k: before[k] for k in fields},
                after=fields,
            )
        if new_email is not None and new_email.lower() != before["email"]:
            await _send_email_change(conn, ctx, before, new_email.lower())
        return await profile(conn, principal)


async def _send_email_change(
    conn: AsyncConnection, ctx: AccountContext, user: dict[str, Any], new_email: str
) -> None:
    if await _email_taken(conn, new_email):
        raise Conflict(
            "another account uses this e-mail address", errors=[("email", "already used")]
        )
    link_secret = secrets.token_urlsafe(32)
    token_id = await _new_token(
        conn,
        purpose="email_change",
        digest=ctx.keyed("link", link_secret),
        email=new_email,
        ttl=EMAIL_CHANGE_TTL,
        user_id=user["id"],
    )
    await outbox.enqueue(
        conn,
        event_key=f"email-change:{token_id}",
        to=new_email,
        kind="email_change",
        context={
            "name": user["name"],
            "new_email": new_email,
            "old_email": user["email"],
            "link": f"{ctx.base_url}/dashboard/email/confirm?token={link_secret}",
            "hours": int(EMAIL_CHANGE_TTL.total_seconds() // 3600),
        },
    )


async def confirm_email(
    pool: AsyncConnectionPool, ctx: AccountContext, *, token: str
) -> dict[str, Any]:
    """Make the address a change link was sent to the account's own; tell the old one."""
    async with pool.connection() as conn, conn.transaction():
        found = await _live_link(conn, ctx, "email_change", token)
        if await _email_taken(conn, found["email"]):
            raise Conflict("another account uses this e-mail address now")
        await conn.execute(
            "UPDATE account_tokens SET used_at = now() WHERE id = %s", (found["id"],)
        )
        cursor = await conn.execute(
            "UPDATE users SET email = %s WHERE id = %s RETURNING id, email, name, role",
            (found["email"], found["user_id"]),
        )
        user = await cursor.fetchone()
        await audit.record(
            conn,
            actor=f"user:{user['id']}",
            action="change_email",
            entity="user",
            entity_id=user["id"],
            before={"email": found["user_email"]},
            after={"email": user["email"]},
        )
        zone = await _zone(conn, user["id"], None)
        await outbox.enqueue(
            conn,
            event_key=f"email-changed:{found['id']}",
            to=found["user_email"],
            kind="email_changed",
            context={
                "name": user["name"],
                "new_email": user["email"],
                "old_email": found["user_email"],
                "when": _local(datetime.now(UTC), zone),
            },
        )
    return user
