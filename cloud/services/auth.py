"""Users and sessions: Argon2 passwords, short-lived JWT access tokens, rotating refresh tokens.

A login opens a session: a refresh-token family, named in every access token it issues (`sid`).
Each refresh uses the presented token up and issues the next one of the family; presenting a used
token again means it was stolen, so the whole family is revoked and both holders must log in
again. Access tokens also carry the user's session version (`sv`), which moves with every change
of role, scope, status or password (a trigger on `users`); `cloud.services.sessions` refuses a
token whose session was logged out or whose version moved, within seconds.

Logins are limited (`cloud.services.login_limits`): each attempt is recorded and committed before
the password is checked, and the answer never says whether the account exists.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from psycopg import AsyncConnection, errors
from psycopg_pool import AsyncConnectionPool

from ..access import Principal
from ..errors import Conflict, InvalidInput, Unauthorized
from ..settings import CloudSettings
from . import audit, fleet
from .login_limits import LoginLimits, finish_attempt, record_attempt
from .passwords import check_new_password, hash_password, verify_password

ROLES = (
    "SUPER_ADMIN",
    "STATE_ADMIN",
    "BOARD_ADMIN",
    "SUPPORT_AGENT",
    "AUDITOR",
    "TECHNICIAN",
    "CONSUMER",
)
_ALGORITHM = "HS256"
PLACEHOLDER_SECRETS = {"changeme", "secret", "change-me-to-a-long-random-secret-value!!"}


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret


@dataclass(frozen=True)
class AccessClaims:
    """What a valid access token says: who, in which session, under which account version."""

    principal: Principal
    session: uuid.UUID
    session_version: int


def resolve_jwt_secret(settings: CloudSettings) -> str:
    """The configured secret, or one generated once and kept in the data directory (0600)."""
    if settings.jwt_secret:
        if settings.jwt_secret.lower() in PLACEHOLDER_SECRETS:
            raise ValueError("GRIDGATE_JWT_SECRET is a placeholder; set a long random value")
        return settings.jwt_secret
    path = Path(settings.data_dir) / "jwt_secret"
    if path.exists():
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ValueError(f"{path} is readable by others; run: chmod 600 {path}")
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    # written aside and linked into place: of several processes starting at once, one secret
    # wins and every process reads that one (never a half-written file)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    try:
        os.link(draft, path)
    except FileExistsError:
        pass  # another process got there first: use its secret
    finally:
        draft.unlink()
    return path.read_text().strip()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create_user(
    conn: AsyncConnection,
    *,
    email: str,
    password: str | None,
    role: str,
    actor: str,
    name: str | None = None,
    invited_by: int | None = None,
    state_code: str | None = None,
    board_code: str | None = None,
    consumer_id: int | None = None,
) -> dict[str, Any]:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", errors=[("role", role)])
    """A user; without a password, one who is invited to choose their own (no login until)."""
    password_hash = None
    if password is not None:
        check_new_password(password, email=email, name=name)
        password_hash = await hash_password(password)
    async with conn.transaction():
        state_id = await fleet.state_id(conn, state_code) if state_code else None
        board_id = None
        if board_code:
            board = await fleet.board_by_code(conn, board_code)
            board_id, state_id = board["id"], state_id or board["state_id"]
        try:
            cursor = await conn.execute(
                "INSERT INTO users (email, password_hash, role, state_id, board_id, consumer_id,"
                " name, invited_by, password_set_at)"
                " VALUES (lower(%s), %s, %s, %s, %s, %s, %s, %s,"
                "  CASE WHEN %s::text IS NULL THEN NULL ELSE now() END)"
                " RETURNING id, email, role, state_id, board_id, consumer_id, active, name",
                (
                    email,
                    password_hash,
                    role,
                    state_id,
                    board_id,
                    consumer_id,
                    name,
                    invited_by,
                    password_hash,
                ),
            )
        except errors.UniqueViolation as exc:
            raise Conflict(f"a user with email {email} exists") from exc
        except errors.CheckViolation as exc:
            raise InvalidInput(
                f"role {role} needs its scope (state, board or consumer) and a valid email"
            ) from exc
        user = await cursor.fetchone()
        await audit.record(
            conn, actor=actor, action="create", entity="user", entity_id=user["id"], after=user
        )
    return user


async def set_password(conn: AsyncConnection, user_id: int, password: str) -> None:
    """A new password; every session of the user ends (a reset means the old one leaked)."""
    cursor = await conn.execute("SELECT email FROM users WHERE id = %s", (user_id,))
    user = await cursor.fetchone()
    check_new_password(password, email=user["email"] if user else None)
    await conn.execute(
        "UPDATE users SET password_hash = %s WHERE id = %s",
        (await hash_password(password), user_id),
    )
    await revoke_sessions(conn, user_id)


async def revoke_sessions(conn: AsyncConnection, user_id: int) -> None:
    await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL",
        (user_id,),
    )


async def _issue(
    conn: AsyncConnection,
    user: dict[str, Any],
    family: uuid.UUID,
    settings: CloudSettings,
    secret: str,
) -> TokenPair:
    now = datetime.now(UTC)
    refresh = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO refresh_tokens (user_id, family, token_hash, expires_at)"
        " VALUES (%s, %s, %s, %s)",
        (
            user["id"],
            family,
            _digest(refresh),
            now + timedelta(seconds=settings.refresh_token_ttl_s),
        ),
    )
    claims = {
        "sub": str(user["id"]),
        "role": user["role"],
        "sid": str(family),
        "state": user["state_id"],
        "board": user["board_id"],
        "consumer": user["consumer_id"],
        "sv": user["session_version"],
        "iat": now,
        "exp": now + timedelta(seconds=settings.access_token_ttl_s),
    }
    return TokenPair(
        jwt.encode(claims, secret, algorithm=_ALGORITHM), refresh, settings.access_token_ttl_s
    )


async def login(
    pool: AsyncConnectionPool,
    *,
    email: str,
    password: str,
    client_ip: str,
    settings: CloudSettings,
    secret: str,
) -> TokenPair:
    """Tokens for a right password. The attempt is recorded and committed first (see the module
    doc); no connection is held while the password is hashed, so a crowd of logins cannot take
    every connection the rest of the API needs."""
    email = email.lower()
    async with pool.connection() as conn:
        attempt = await record_attempt(
            conn, email=email, client_ip=client_ip, limits=LoginLimits.from_settings(settings)
        )
        cursor = await conn.execute(
            "SELECT id, role, state_id, board_id, consumer_id, password_hash, active,"
            " session_version FROM users WHERE email = %s",
            (email,),
        )
        user = await cursor.fetchone()
    usable = user is not None and user["active"]
    ok = await verify_password(user["password_hash"] if usable else None, password)
    async with pool.connection() as conn:
        await finish_attempt(conn, attempt, succeeded=ok)
        if not ok:
            raise Unauthorized("email or password is wrong")
        async with conn.transaction():
            pair = await _issue(conn, user, uuid.uuid4(), settings, secret)
            await audit.record(
                conn,
                actor=f"user:{user['id']}",
                action="login",
                entity="user",
                entity_id=user["id"],
            )
    return pair


async def refresh(
    conn: AsyncConnection, *, refresh_token: str, settings: CloudSettings, secret: str
) -> TokenPair:
    """Use a refresh token up and issue the next of its family. A token presented a second
    time revokes the whole family (committed) before the call fails."""
    async with conn.transaction():
        cursor = await conn.execute(
            "SELECT t.*, u.role, u.state_id, u.board_id, u.consumer_id, u.active,"
            " u.session_version"
            " FROM refresh_tokens t JOIN users u ON u.id = t.user_id"
            " WHERE token_hash = %s FOR UPDATE OF t",
            (_digest(refresh_token),),
        )
        token = await cursor.fetchone()
        if token is None or token["revoked_at"] is not None or not token["active"]:
            raise Unauthorized("refresh token is not valid; log in again")
        if token["used_at"] is not None:
            # stolen: revoke the family, and fail only after this transaction commits
            await _revoke_family(conn, token["family"], token["user_id"], "refresh_reuse")
        elif token["expires_at"] <= datetime.now(UTC):
            raise Unauthorized("refresh token expired; log in again")
        else:
            await conn.execute(
                "UPDATE refresh_tokens SET used_at = now() WHERE id = %s", (token["id"],)
            )
            user = {
                "id": token["user_id"],
                **{
                    k: token[k]
                    for k in ("role", "state_id", "board_id", "consumer_id", "session_version")
                },
            }
            return await _issue(conn, user, token["family"], settings, secret)
    # only the reuse branch leaves the transaction without returning or raising
    raise Unauthorized(
        "refresh token was already used: every session of this login is revoked; log in again"
    )


async def _revoke_family(conn: AsyncConnection, family: object, user_id: int, action: str) -> None:
    await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family = %s AND revoked_at IS NULL",
        (family,),
    )
    await audit.record(
        conn, actor=f"user:{user_id}", action=action, entity="session", entity_id=family
    )


async def logout(conn: AsyncConnection, *, refresh_token: str) -> None:
    async with conn.transaction():
        cursor = await conn.execute(
            "SELECT family, user_id FROM refresh_tokens WHERE token_hash = %s",
            (_digest(refresh_token),),
        )
        token = await cursor.fetchone()
        if token is not None:
            await _revoke_family(conn, token["family"], token["user_id"], "logout")


def decode_access(token: str, secret: str) -> AccessClaims:
    """The claims of a well-signed, unexpired access token (Unauthorized otherwise). Whether its
    session still stands is `cloud.services.sessions`' question."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            options={"require": ["exp", "sub", "role"]},
        )
        return AccessClaims(
            Principal(
                int(claims["sub"]),
                str(claims["role"]),
                _optional_id(claims.get("state")),
                _optional_id(claims.get("board")),
                _optional_id(claims.get("consumer")),
            ),
            uuid.UUID(str(claims["sid"])),
            int(claims["sv"]),
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("access token expired; refresh it") from exc
    except (jwt.InvalidTokenError, KeyError, ValueError, TypeError) as exc:
        raise Unauthorized("access token is not valid") from exc


def _optional_id(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
