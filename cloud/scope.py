"""The one scope filter every list and every object fetch goes through.

SUPER_ADMIN sees everything; a STATE_ADMIN the boards of its state; board roles their board;
an AUDITOR its board if it has one, else its state; a CONSUMER only itself and its meters.
An object outside the caller's scope is simply not found (404), never "forbidden": its existence
is not the caller's business.
"""

from __future__ import annotations

from typing import Literal

from psycopg import sql

from .services.auth import Principal

Entity = Literal[
    "state", "board", "consumer", "meter", "gateway", "user", "invoice", "tariff", "alert", "report"
]
_BOARD_COLUMN = {
    "board": "id",
    "consumer": "board_id",
    "meter": "board_id",
    "gateway": "board_id",
    "invoice": "board_id",
    "tariff": "board_id",
    "alert": "board_id",
    "report": "board_id",
}


def scope_filter(
    principal: Principal, entity: Entity, alias: str
) -> tuple[sql.Composable, list[object]]:
    """A WHERE condition (and its parameters) that keeps `alias` rows inside the scope."""
    role = principal.role
    if role == "SUPER_ADMIN":
        return sql.SQL("TRUE"), []
    if entity == "state":
        return _state_scope(principal, sql.Identifier(alias, "id"))
    if entity == "user":
        return _user_scope(principal, alias)
    if entity == "report":
        return _report_scope(principal, alias)
    board = sql.Identifier(alias, _BOARD_COLUMN[entity])
    if role == "CONSUMER":
        if entity == "consumer":
            return sql.SQL("{} = %s").format(sql.Identifier(alias, "id")), [principal.consumer_id]
        if entity in ("meter", "invoice"):
            return (
                sql.SQL("{} = %s").format(sql.Identifier(alias, "consumer_id")),
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
    if principal.board_id is not None and role != "STATE_ADMIN":
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
    """A state is in scope for its admins and for the roles of its boards."""
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
    anyone else only themselves. Nobody but a super admin sees a super admin."""
    user_state, user_board, user_consumer = (
        sql.Identifier(alias, c) for c in ("state_id", "board_id", "consumer_id")
    )
    if principal.role == "STATE_ADMIN" and principal.state_id is not None:
        return (
            sql.SQL(
                "({state} = %s OR {consumer} IN (SELECT c.id FROM consumers c"
                " JOIN boards b ON b.id = c.board_id WHERE b.state_id = %s))"
            ).format(state=user_state, consumer=user_consumer),
            [principal.state_id, principal.state_id],
        )
    if principal.board_id is not None and principal.role != "CONSUMER":
        return (
            sql.SQL(
                "({board} = %s OR {consumer} IN (SELECT id FROM consumers WHERE board_id = %s))"
            ).format(board=user_board, consumer=user_consumer),
            [principal.board_id, principal.board_id],
        )
    return sql.SQL("{} = %s").format(sql.Identifier(alias, "id")), [principal.user_id]


def _report_scope(principal: Principal, alias: str) -> tuple[sql.Composable, list[object]]:
    """A report is about a board or a whole state: state admins see both kinds in their state,
    board roles their board's; consumers none."""
    board, state = sql.Identifier(alias, "board_id"), sql.Identifier(alias, "state_id")
    if principal.role == "CONSUMER":
        return sql.SQL("FALSE"), []
    if principal.board_id is not None and principal.role != "STATE_ADMIN":
        return sql.SQL("{} = %s").format(board), [principal.board_id]
    if principal.state_id is not None:
        return (
            sql.SQL("({} = %s OR {} IN (SELECT id FROM boards WHERE state_id = %s))").format(
                state, board
            ),
            [principal.state_id, principal.state_id],
        )
    return sql.SQL("FALSE"), []
