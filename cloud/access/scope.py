"""The one scope filter every list, fetch and change goes through.

SUPER_ADMIN sees everything but other people's API keys (a key is its owner's alone, whatever
the role); a STATE_ADMIN the boards of its state; board roles their board;
an AUDITOR its board if it has one, else its state; a CONSUMER only itself, its meters, its
energy, its bills once issued, the alerts about its meters, and the tariff of its board for its
category (with that tariff's versions and temporary overrides).
An object outside the caller's scope is simply not found (404), never "forbidden": its existence
is not the caller's business.

`scope_filter` gives the SQL condition for one kind of row; `resolve_in_scope` checks a set of
ids of several kinds at once, which is how every id that arrives in a request (path, query string
or body) is checked before a route reads or writes anything (`cloud.api.scoped_route`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from psycopg import AsyncConnection, sql

from ..errors import NotFound
from .principal import Principal


class OutOfScope(NotFound):
    """An id names nothing the caller may reach: a 404, like an id that names nothing."""

    def __init__(self, entity: str, row_id: int) -> None:
        self.entity, self.row_id = entity, row_id
        name = "state" if entity == "whole_state" else entity.replace("_", " ")
        super().__init__(f"no {name} {row_id}")


Entity = Literal[
    "state",
    "whole_state",  # a state the caller's scope covers entirely (state-wide reports)
    "board",
    "consumer",
    "meter",
    "gateway",
    "user",
    "invoice",
    "tariff",
    "tariff_version",
    "tariff_override",  # a temporary override of a board's category's energy charge
    "alert",
    "report",
    "report_format",  # a board's own layout of its reports
    "report_schedule",  # a board's report made by itself, weekly or after a billing run
    "billing_run",
    "board_energy",  # a board's aggregated energy (board_energy_daily, board_energy_15min)
    "consumer_energy",  # a consumer's aggregated energy (consumer_energy_daily)
    "api_key",  # the caller's own API keys, and nobody else's
    "notification",  # the caller's own notifications, and nobody else's
    "support_query",  # a consumer's query: theirs, and their board's desk's
    "gateway_command",  # a command to a gateway of the board
    "gateway_discovery",  # a meter a scan found on a gateway of the board
    "audit_entry",  # a row of the audit log: what the users and gateways of the scope did
    "recommendation",  # a way for a consumer to pay less: theirs, and their board's staff's
]

# the table each kind of id names (the aggregates have no ids)
ENTITY_TABLES: dict[str, str] = {
    "state": "states",
    "whole_state": "states",
    "board": "boards",
    "consumer": "consumers",
    "meter": "meters",
    "gateway": "gateways",
    "user": "users",
    "invoice": "invoices",
    "tariff": "tariffs",
    "tariff_version": "tariff_versions",
    "tariff_override": "tariff_overrides",
    "alert": "alerts",
    "report": "reports",
    "report_format": "report_formats",
    "report_schedule": "report_schedules",
    "billing_run": "billing_runs",
    "api_key": "api_keys",
    "notification": "notifications",
    "support_query": "support_queries",
    "gateway_command": "gateway_commands",
    "gateway_discovery": "gateway_discoveries",
    "audit_entry": "audit_log",
    "recommendation": "recommendations",
}
_BOARD_COLUMN = {
    "board": "id",
    "consumer": "board_id",
    "meter": "board_id",
    "gateway": "board_id",
    "invoice": "board_id",
    "tariff": "board_id",
    "tariff_override": "board_id",
    "alert": "board_id",
    "report": "board_id",
    "report_format": "board_id",
    "report_schedule": "board_id",
    "billing_run": "board_id",
    "board_energy": "board_id",
    "consumer_energy": "board_id",
    "support_query": "board_id",
    "gateway_command": "board_id",
    "gateway_discovery": "board_id",
    "recommendation": "board_id",
}
_BOARD_ROLES_WITHOUT_STATE_REACH = "STATE_ADMIN"


def _board_bound(principal: Principal) -> bool:
    """Whether the caller's scope is one board (board roles; an auditor of a board)."""
    return principal.board_id is not None and principal.role != _BOARD_ROLES_WITHOUT_STATE_REACH


def scope_filter(
    principal: Principal, entity: Entity, alias: str
) -> tuple[sql.Composable, list[object]]:
    """A WHERE condition (and its parameters) that keeps `alias` rows inside the scope."""
    if entity in ("api_key", "notification"):
        return sql.SQL("{} = %s").format(sql.Identifier(alias, "user_id")), [principal.user_id]
    if entity == "audit_entry":
        return _audit_scope(principal, alias)
    if entity == "support_query":  # a query taken off the desk is gone for everyone
        inner, params = _scope_filter(principal, entity, alias)
        deleted = sql.Identifier(alias, "deleted_at")
        return sql.SQL("({} AND {} IS NULL)").format(inner, deleted), params
    return _scope_filter(principal, entity, alias)


def _scope_filter(
    principal: Principal, entity: Entity, alias: str
) -> tuple[sql.Composable, list[object]]:
    role = principal.role
    if role == "SUPER_ADMIN":
        return sql.SQL("TRUE"), []
    if entity == "state":
        return _state_scope(principal, sql.Identifier(alias, "id"))
    if entity == "whole_state":
        if role == "CONSUMER" or _board_bound(principal) or principal.state_id is None:
            return sql.SQL("FALSE"), []
        return sql.SQL("{} = %s").format(sql.Identifier(alias, "id")), [principal.state_id]
    if entity == "user":
        return _user_scope(principal, alias)
    if entity == "report":
        return _report_scope(principal, alias)
    if entity == "tariff_version":
        inner, params = scope_filter(principal, "tariff", "tv_tariff")
        return (
            sql.SQL("{} IN (SELECT tv_tariff.id FROM tariffs tv_tariff WHERE {})").format(
                sql.Identifier(alias, "tariff_id"), inner
            ),
            params,
        )
    board = sql.Identifier(alias, _BOARD_COLUMN[entity])
    if role == "CONSUMER":
        if entity == "consumer":
            return sql.SQL("{} = %s").format(sql.Identifier(alias, "id")), [principal.consumer_id]
        if entity in ("meter", "consumer_energy", "support_query", "recommendation"):
            return (
                sql.SQL("{} = %s").format(sql.Identifier(alias, "consumer_id")),
                [principal.consumer_id],
            )
        if entity == "invoice":  # their bills once issued: a draft is the utility's business
            return (
                sql.SQL("{} = %s AND {} <> 'draft'").format(
                    sql.Identifier(alias, "consumer_id"), sql.Identifier(alias, "status")
                ),
                [principal.consumer_id],
            )
        if entity in ("tariff", "tariff_override"):  # their board's, for their category
            return (
                sql.SQL(
                    "({}, {}) IN (SELECT board_id, category FROM consumers WHERE id = %s)"
                ).format(board, sql.Identifier(alias, "category")),
                [principal.consumer_id],
            )
        if entity == "alert":  # alerts about the consumer's own meters
            return (
                sql.SQL("{} IN (SELECT id FROM meters WHERE consumer_id = %s)").format(
                    sql.Identifier(alias, "meter_id")
                ),
                [principal.consumer_id],
            )
        return sql.SQL("FALSE"), []
    if _board_bound(principal):
        return sql.SQL("{} = %s").format(board), [principal.board_id]
    if principal.state_id is not None:
        return (
            sql.SQL("{} IN (SELECT id FROM boards WHERE state_id = %s)").format(board),
            [principal.state_id],
        )
    return sql.SQL("FALSE"), []  # a scoped role without a scope sees nothing


def _state_scope(
    principal: Principal, state: sql.Identifier
) -> tuple[sql.Composable, list[object]]:
    """A state is in scope for its admins and for the roles of its boards (to read)."""
    if principal.role == "CONSUMER":
        return (
            sql.SQL(
                "{} = (SELECT b.state_id FROM boards b JOIN consumers c ON c.board_id = b.id"
                " WHERE c.id = %s)"
            ).format(state),
            [principal.consumer_id],
        )
    if principal.state_id is not None:
        return sql.SQL("{} = %s").format(state), [principal.state_id]
    return sql.SQL("FALSE"), []


def _user_scope(principal: Principal, alias: str) -> tuple[sql.Composable, list[object]]:
    """Users are in scope where their own scope lies inside the caller's: a state admin sees the
    state's users, board users and consumers of its boards; a board role those of its board;
    anyone else only themselves. Nobody but a super admin sees a super admin, whatever state or
    board such an account was created with."""
    user_state, user_board, user_consumer, user_role = (
        sql.Identifier(alias, c) for c in ("state_id", "board_id", "consumer_id", "role")
    )
    if principal.role == "STATE_ADMIN" and principal.state_id is not None:
        return (
            sql.SQL(
                "{role} <> 'SUPER_ADMIN' AND ({state} = %s OR {board} IN (SELECT id FROM boards"
                " WHERE state_id = %s) OR {consumer} IN (SELECT c.id FROM consumers c"
                " JOIN boards b ON b.id = c.board_id WHERE b.state_id = %s))"
            ).format(role=user_role, state=user_state, board=user_board, consumer=user_consumer),
            [principal.state_id, principal.state_id, principal.state_id],
        )
    if principal.board_id is not None and principal.role != "CONSUMER":
        return (
            sql.SQL(
                "{role} <> 'SUPER_ADMIN' AND ({board} = %s"
                " OR {consumer} IN (SELECT id FROM consumers WHERE board_id = %s))"
            ).format(role=user_role, board=user_board, consumer=user_consumer),
            [principal.board_id, principal.board_id],
        )
    return sql.SQL("{} = %s").format(sql.Identifier(alias, "id")), [principal.user_id]


def _report_scope(principal: Principal, alias: str) -> tuple[sql.Composable, list[object]]:
    """A report is about a board or a whole state: state admins see both kinds in their state,
    board roles their board's; consumers none."""
    board, state = sql.Identifier(alias, "board_id"), sql.Identifier(alias, "state_id")
    if principal.role == "CONSUMER":
        return sql.SQL("FALSE"), []
    if _board_bound(principal):
        return sql.SQL("{} = %s").format(board), [principal.board_id]
    if principal.state_id is not None:
        return (
            sql.SQL("({} = %s OR {} IN (SELECT id FROM boards WHERE state_id = %s))").format(
                state, board
            ),
            [principal.state_id, principal.state_id],
        )
    return sql.SQL("FALSE"), []


async def resolve_in_scope(
    conn: AsyncConnection, principal: Principal, wanted: Mapping[str, Iterable[int]]
) -> None:
    """Check that every id in `wanted` (entity -> ids) names a row inside the caller's scope;
    `OutOfScope` names the first that does not (lowest id of the first kind, for a stable
    answer). One query per kind of id."""
    for entity, ids in wanted.items():
        unique = sorted(set(ids))
        if not unique:
            continue
        condition, params = scope_filter(principal, entity, "t")  # type: ignore[arg-type]
        cursor = await conn.execute(
            sql.SQL("SELECT t.id FROM {} t WHERE t.id = ANY(%s) AND {}").format(
                sql.Identifier(ENTITY_TABLES[entity]), condition
            ),
            [unique, *params],
        )
        found = {row["id"] if isinstance(row, dict) else row[0] for row in await cursor.fetchall()}
        for row_id in unique:
            if row_id not in found:
                raise OutOfScope(entity, row_id)


def _audit_scope(principal: Principal, alias: str) -> tuple[sql.Composable, list[object]]:
    """An audit entry is in scope when its actor is: a user or a gateway inside the caller's
    scope. The operator sees everything, the command line's and the provider's entries too."""
    if principal.role == "SUPER_ADMIN":
        return sql.SQL("TRUE"), []
    users, user_params = scope_filter(principal, "user", "audit_u")
    gateways, gateway_params = scope_filter(principal, "gateway", "audit_g")
    actor = sql.Identifier(alias, "actor")
    return (
        sql.SQL(
            "({actor} IN (SELECT 'user:' || audit_u.id FROM users audit_u WHERE {users})"
            " OR {actor} IN (SELECT 'gateway:' || audit_g.gateway_code FROM gateways audit_g"
            " WHERE {gateways}))"
        ).format(actor=actor, users=users, gateways=gateways),
        [*user_params, *gateway_params],
    )
