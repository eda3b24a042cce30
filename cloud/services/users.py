"""Users managed over the API: invited, changed and deactivated inside the manager's scope.

A manager may only grant the roles `permissions.ROLE_GRANTS` lists for them, and only with a
scope (state, board or consumer) inside their own. A new user is invited: they receive a link
and choose their own password (`cloud.services.accounts`); no manager ever sets or sees one (the
command line's bootstrap is the one exception). Deactivating a user ends all their sessions;
users are never deleted, so the audit log keeps naming a real account.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from ..access import Principal, may_grant
from ..errors import Conflict, Forbidden, InvalidInput
from . import accounts, audit, auth
from .accounts import AccountContext
from .scoped import BOARDS, CONSUMERS, STATES, USERS, actor, get_row, update_row

SCOPE_FIELDS = {
    "SUPER_ADMIN": set(),
    "STATE_ADMIN": {"state_id"},
    "AUDITOR": {"state_id", "board_id"},
    "CONSUMER": {"consumer_id"},
}


def _check_scope_fields(role: str, **scope: int | None) -> None:
    """A role carries the scope it needs and nothing else: a board admin is not also a
    consumer's, which would put it in that consumer's board's lists."""
    allowed_fields = SCOPE_FIELDS.get(role, {"board_id"})
    given = sorted(name for name, value in scope.items() if value is not None)
    stray = [name for name in given if name not in allowed_fields]
    if stray:
        takes = ", ".join(sorted(allowed_fields)) or "nothing: it sees everything"
        raise InvalidInput(
            f"role {role} takes no {', '.join(stray)} (its scope: {takes})",
            errors=[(name, "not for this role") for name in stray],
        )


def _check_grant(principal: Principal, role: str) -> None:
    if not may_grant(principal.role, role):
        raise Forbidden(f"role {principal.role} may not grant role {role}")


async def create(
    conn: AsyncConnection,
    principal: Principal,
    ctx: AccountContext,
    *,
    email: str,
    name: str | None,
    role: str,
    state_id: int | None,
    board_id: int | None,
    consumer_id: int | None,
) -> dict[str, Any]:
    _check_grant(principal, role)
    _check_scope_fields(role, state_id=state_id, board_id=board_id, consumer_id=consumer_id)
    async with conn.transaction():
        scope: dict[str, Any] = {}
        if state_id is not None:
            scope["state_code"] = (await get_row(conn, principal, STATES, state_id))["code"]
        if board_id is not None:
            scope["board_code"] = (await get_row(conn, principal, BOARDS, board_id))["code"]
        if consumer_id is not None:
            scope["consumer_id"] = (await get_row(conn, principal, CONSUMERS, consumer_id))["id"]
        if role != "SUPER_ADMIN" and not scope:
            raise InvalidInput(
                f"role {role} needs a scope: state_id, board_id or consumer_id",
                errors=[("role", role)],
            )
        created = await auth.create_user(
            conn,
            email=email,
            password=None,
            name=name,
            role=role,
            actor=actor(principal),
            invited_by=principal.user_id,
            **scope,
        )
        await accounts.send_invitation(conn, ctx, created, inviter=await _inviter(conn, principal))
        return await get_row(conn, principal, USERS, created["id"])


async def _inviter(conn: AsyncConnection, principal: Principal) -> str:
    cursor = await conn.execute(
        "SELECT coalesce(name, email) AS who FROM users WHERE id = %s", (principal.user_id,)
    )
    row = await cursor.fetchone()
    return row["who"] if row else "Your utility"


async def resend_invitation(
    conn: AsyncConnection, principal: Principal, ctx: AccountContext, user_id: int
) -> dict[str, Any]:
    """A fresh invitation link for a user who has not chosen a password yet."""
    async with conn.transaction():
        target = await get_row(conn, principal, USERS, user_id, for_update=True)
        _check_grant(principal, target["role"])
        cursor = await conn.execute(
            "SELECT password_hash IS NOT NULL AS has_password, name FROM users WHERE id = %s",
            (user_id,),
        )
        found = await cursor.fetchone()
        if found["has_password"]:
            raise Conflict("this user has chosen a password already; send a reset link instead")
        if not target["active"]:
            raise InvalidInput("this user is deactivated", errors=[("user_id", str(user_id))])
        await accounts.send_invitation(
            conn, ctx, {**target, "name": found["name"]}, inviter=await _inviter(conn, principal)
        )
        await audit.record(
            conn, actor=actor(principal), action="invite", entity="user", entity_id=user_id
        )
        return target


async def send_password_reset(
    conn: AsyncConnection, principal: Principal, ctx: AccountContext, user_id: int
) -> dict[str, Any]:
    """End every session of a user and e-mail them a link to choose a new password."""
    async with conn.transaction():
        target = await get_row(conn, principal, USERS, user_id, for_update=True)
        _check_grant(principal, target["role"])
        await accounts.reset_by_admin(conn, ctx, principal, user_id)
        return target


async def update(
    conn: AsyncConnection, principal: Principal, user_id: int, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change a user's role (within what the manager may grant), scope (a state or a board
    inside the manager's) or active flag. A new role or scope ends the user's sessions."""
    async with conn.transaction():
        target = await get_row(conn, principal, USERS, user_id, for_update=True)
        _check_grant(principal, target["role"])
        if "role" in changes:
            _check_grant(principal, changes["role"])
        rescoped = {"role", "state_id", "board_id"} & changes.keys()
        if rescoped:
            changes = {**changes, **await _new_scope(conn, principal, target, changes)}
        if changes.get("active") is False or rescoped:
            await auth.revoke_sessions(conn, user_id)  # signed in again, with the new rights
        if not changes:
            return target
        return await update_row(conn, principal, USERS, user_id, changes)


async def _new_scope(
    conn: AsyncConnection, principal: Principal, target: dict[str, Any], changes: dict[str, Any]
) -> dict[str, int | None]:
    """The state and board a user's (new) role takes, from the ones given or those held: a
    state admin a state; the board roles a board (and its state); an auditor either."""
    role = changes.get("role", target["role"])
    if "CONSUMER" in (role, target["role"]) and role != target["role"]:
        raise InvalidInput(
            "a consumer's role cannot change, nor a member of staff become a consumer;"
            " invite a new user instead",
            errors=[("role", role)],
        )
    given = {k: changes[k] for k in ("state_id", "board_id") if k in changes}
    _check_scope_fields(role, **given)
    held = given or {k: target[k] for k in ("state_id", "board_id")}
    if role == "CONSUMER":
        return {}
    if role == "SUPER_ADMIN":
        return {"state_id": None, "board_id": None}
    board_id = held.get("board_id") if role != "STATE_ADMIN" else None
    if board_id is not None:
        board = await get_row(conn, principal, BOARDS, board_id)
        return {"board_id": board_id, "state_id": board["state_id"]}
    if role in ("STATE_ADMIN", "AUDITOR") and held.get("state_id") is not None:
        await get_row(conn, principal, STATES, held["state_id"])
        return {"state_id": held["state_id"], "board_id": None}
    needs = "state_id" if role == "STATE_ADMIN" else "board_id"
    raise InvalidInput(f"role {role} needs a {needs}", errors=[(needs, "missing")])


async def deactivate(conn: AsyncConnection, principal: Principal, user_id: int) -> dict[str, Any]:
    if user_id == principal.user_id:
        raise InvalidInput("you cannot deactivate yourself", errors=[("user_id", str(user_id))])
    return await update(conn, principal, user_id, {"active": False})
