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

Entity = Literal["board", "consumer", "meter", "gateway"]
_BOARD_COLUMN = {"board": "id", "consumer": "board_id", "meter": "board_id", "gateway": "board_id"}


def scope_filter(
    principal: Principal, entity: Entity, alias: str
) -> tuple[sql.Composable, list[object]]:
    """A WHERE condition (and its parameters) that keeps `alias` rows inside the scope."""
    board = sql.Identifier(alias, _BOARD_COLUMN[entity])
    role = principal.role
    if role == "SUPER_ADMIN":
        return sql.SQL("TRUE"), []
    if role == "CONSUMER":
        if entity == "consumer":
            return sql.SQL("{} = %s").format(sql.Identifier(alias, "id")), [principal.consumer_id]
        if entity == "meter":
            return (
                sql.SQL("{} = %s").format(sql.Identifier(alias, "consumer_id")),
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
