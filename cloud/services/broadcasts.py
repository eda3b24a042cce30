"""Broadcasts: an announcement from a board's admins or support agents to everyone in a scope —
the board's consumers (all of them, or those of one category), its staff, or both.

`send` picks the recipients, writes the `broadcasts` row, tells each recipient through
`notifications.notify` (kind `broadcast`, so their preferences decide the channels, and a user
who opted out of announcements is skipped) and audits, all in one transaction: a broadcast
exists exactly when its notifications do. It is bounded: a one-line title and a body of limited
length without control characters, an audience that reaches somebody (422 saying why not), and
at most `MAX_PER_BOARD_PER_HOUR` broadcasts per board in any hour (429), so a script gone wrong
or a double click cannot flood a board's inboxes and phones.

`preview` answers the same fields with whom they would reach, sending nothing, so a person
can check before a board's inboxes fill. `recent` lists the broadcasts in the caller's scope
with who sent them; `audiences` gives the boards in scope with their consumers' categories, for
a form.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from psycopg import AsyncConnection, sql

from ..access import Permission, Principal, resolve_in_scope, scope_filter
from ..errors import Conflict, Forbidden, InvalidInput, TooManyRequests
from . import audit, notifications

Audience = Literal["consumers", "staff", "everyone"]
AUDIENCES: tuple[str, ...] = ("consumers", "staff", "everyone")
MAX_TITLE_CHARS = 200
MAX_BODY_CHARS = 2000
MAX_CATEGORY_CHARS = 64
MAX_PER_BOARD_PER_HOUR = 10
WINDOW = timedelta(hours=1)
FORM_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")  # what `new_form_key` hands a message's form
MESSAGE = ("board_id", "audience", "category", "title", "body", "urgent")  # one form's message
LINK = "/dashboard/inbox"  # a page every recipient can open, whatever their role

# a title is one line; a body may break lines and indent with tabs
_TITLE_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class AlreadySent(Conflict):
    """The same message from the same form was sent already; `broadcast` is that one, as
    `recent` lists it."""

    def __init__(self, broadcast: dict[str, Any]) -> None:
        self.broadcast = broadcast
        super().__init__(
            f"this broadcast was sent already (broadcast {broadcast['id']}), so nobody was told"
            " twice",
            errors=[("form_key", "sent already")],
        )


class BroadcastsLimited(TooManyRequests):
    """The board has had its broadcasts for the hour; `retry_after_s` says when one frees."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, errors=[("board_id", "too many broadcasts this hour")])


# the fields as the form and the message's reader name them
_SAID = {"title": "title", "body": "message"}


def _checked_text(field: str, value: str, limit: int, control: re.Pattern[str]) -> str:
    text = value.replace("\r\n", "\n").strip()  # a browser's form sends CRLF line ends
    said = _SAID.get(field, field)
    if not text:
        raise InvalidInput(f"the {said} is empty", errors=[(field, "empty")])
    if len(text) > limit:
        raise InvalidInput(
            f"the {said} is {len(text)} characters long; at most {limit} fit",
            errors=[(field, f"longer than {limit} characters")],
        )
    if control.search(text):
        kind = "a line break or control character" if field == "title" else "a control character"
        raise InvalidInput(f"the {said} holds {kind}", errors=[(field, "control character")])
    return text


def _checked_category(category: str | None) -> str | None:
    if category is None or not category.strip():
        return None
    return _checked_text("category", category, MAX_CATEGORY_CHARS, _TITLE_CONTROL)


async def _board(conn: AsyncConnection, board_id: int) -> dict[str, Any]:
    cursor = await conn.execute(
        "SELECT id, code, name, state_id FROM boards WHERE id = %s", (board_id,)
    )
    return await cursor.fetchone()


async def _lock(conn: AsyncConnection, board: dict[str, Any]) -> None:
    """Broadcasts to one board go one at a time, until the transaction ends (taken again by
    the same transaction, it is held once more, not waited for)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('broadcast ' || %s, 0))", (board["id"],)
    )


async def _within_limit(conn: AsyncConnection, board: dict[str, Any]) -> None:
    """Refuse a broadcast beyond the hour's allowance. Broadcasts to one board are counted
    one at a time (`_lock`), so two at once cannot both take the last place."""
    await _lock(conn, board)
    cursor = await conn.execute(
        "SELECT count(*) AS n, min(created_at) AS oldest FROM broadcasts"
        " WHERE board_id = %s AND created_at > now() - %s",
        (board["id"], WINDOW),
    )
    window = await cursor.fetchone()
    if window["n"] < MAX_PER_BOARD_PER_HOUR:
        return
    wait = window["oldest"] + WINDOW - datetime.now(UTC)
    minutes = max(1, -(-int(wait.total_seconds()) // 60))
    raise BroadcastsLimited(
        f"board {board['code']} has had {window['n']} broadcasts in the last hour, the most"
        f" allowed; the next can go in {minutes} min",
        retry_after_s=max(1, int(wait.total_seconds()) + 1),
    )


async def _consumer_users(
    conn: AsyncConnection, board: dict[str, Any], category: str | None
) -> list[int]:
    cursor = await conn.execute(
        "SELECT u.id FROM users u JOIN consumers c ON c.id = u.consumer_id"
        " WHERE c.board_id = %s AND u.role = 'CONSUMER' AND u.active"
        " AND (%s::text IS NULL OR c.category = %s) ORDER BY u.id",
        (board["id"], category, category),
    )
    return [row["id"] for row in await cursor.fetchall()]


async def _staff_users(conn: AsyncConnection, board: dict[str, Any]) -> list[int]:
    """The active accounts bound to the board (its admins, agents, technicians, auditors) and
    its state's admins; never an operator's."""
    cursor = await conn.execute(
        "SELECT u.id FROM users u WHERE u.active AND u.role NOT IN ('CONSUMER', 'SUPER_ADMIN')"
        " AND (u.board_id = %s OR (u.role = 'STATE_ADMIN' AND u.state_id = %s)) ORDER BY u.id",
        (board["id"], board["state_id"]),
    )
    return [row["id"] for row in await cursor.fetchall()]


async def _category_refused(
    conn: AsyncConnection, board: dict[str, Any], category: str
) -> InvalidInput | None:
    """The 422 for a category none of the board's consumers is in (a typo would otherwise
    send an `everyone` broadcast to the staff alone)."""
    cursor = await conn.execute(
        "SELECT bool_or(category = %s) AS known, array_agg(DISTINCT category ORDER BY category)"
        " AS categories FROM consumers WHERE board_id = %s",
        (category, board["id"]),
    )
    found = await cursor.fetchone()
    if found["known"]:
        return None
    return InvalidInput(
        f"board {board['code']} has no consumers in the category '{category}'"
        f" (its consumers' categories: {', '.join(found['categories'] or []) or 'none'})",
        errors=[("category", "no consumers in this category")],
    )


async def _why_nobody(
    conn: AsyncConnection, board: dict[str, Any], audience: str, category: str | None
) -> InvalidInput:
    """The 422 for an audience without a single account to tell, saying what is missing."""
    code = board["code"]
    if audience == "staff":
        return InvalidInput(
            f"board {code} has no active staff accounts to tell",
            errors=[("audience", "nobody to tell")],
        )
    cursor = await conn.execute(
        "SELECT count(*) AS n FROM consumers WHERE board_id = %s"
        " AND (%s::text IS NULL OR category = %s)",
        (board["id"], category, category),
    )
    consumers = (await cursor.fetchone())["n"]
    staff_too = " and no active staff accounts" if audience == "everyone" else ""
    if not consumers:
        return InvalidInput(
            f"board {code} has no consumers{staff_too}", errors=[("audience", "nobody to tell")]
        )
    which = f" in the category '{category}'" if category else ""
    return InvalidInput(
        f"none of board {code}'s {consumers} consumers{which} has an online account"
        f"{staff_too}, so nobody can be told",
        errors=[("audience", "nobody to tell")],
    )


def _checked(
    principal: Principal, audience: str, category: str | None, title: str, body: str
) -> tuple[str | None, str, str]:
    """The category, title and body as stored, or the 403/422 saying what is wrong."""
    if not principal.may(Permission.NOTIFICATION_BROADCAST):
        raise Forbidden(f"role {principal.role} may not {Permission.NOTIFICATION_BROADCAST.value}")
    if audience not in AUDIENCES:
        raise InvalidInput(
            f"the audience is one of {', '.join(AUDIENCES)}", errors=[("audience", audience)]
        )
    title = _checked_text("title", title, MAX_TITLE_CHARS, _TITLE_CONTROL)
    body = _checked_text("body", body, MAX_BODY_CHARS, _BODY_CONTROL)
    category = _checked_category(category)
    if category is not None and audience == "staff":
        raise InvalidInput(
            "a category chooses consumers; a broadcast to staff has none",
            errors=[("category", "not for staff")],
        )
    return category, title, body


async def _recipients(
    conn: AsyncConnection, board: dict[str, Any], audience: str, category: str | None
) -> tuple[list[int], list[int]]:
    """The consumers' and the staff's accounts the audience reaches (422 when none), checked
    against the hour's allowance; inside the caller's transaction."""
    if category is not None and (refused := await _category_refused(conn, board, category)):
        raise refused
    await _within_limit(conn, board)
    consumers = await _consumer_users(conn, board, category) if audience != "staff" else []
    staff = await _staff_users(conn, board) if audience != "consumers" else []
    if not consumers and not staff:
        raise await _why_nobody(conn, board, audience, category)
    return consumers, staff


def _all_opted_out(people: int) -> InvalidInput:
    everyone = "the one person" if people == 1 else f"all {people} people"
    return InvalidInput(
        f"{everyone} this would reach opted out of announcements",
        errors=[("audience", "everyone opted out")],
    )


def new_form_key() -> str:
    """A key for one message's form, carried through its review to its send
    (`send(form_key=...)`)."""
    return secrets.token_urlsafe(24)


async def preview(
    conn: AsyncConnection,
    principal: Principal,
    *,
    board_id: int,
    audience: str,
    category: str | None,
    title: str,
    body: str,
) -> dict[str, Any]:
    """What `send` would do with the same fields, without sending: the board, the accounts it
    reaches (`consumers`, `staff`), how many of those opted out of announcements and how many
    would be told; refused (403, 422, 429) exactly as `send` would refuse it now."""
    category, title, body = _checked(principal, audience, category, title, body)
    await resolve_in_scope(conn, principal, {"board": [board_id]})
    async with conn.transaction():
        board = await _board(conn, board_id)
        consumers, staff = await _recipients(conn, board, audience, category)
        users = sorted(set(consumers) | set(staff))
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM notification_preferences"
            " WHERE user_id = ANY(%s) AND %s = ANY(opted_out)",
            (users, notifications.TOPICS["broadcast"]),
        )
        opted_out = (await cursor.fetchone())["n"]
    if opted_out == len(users):
        raise _all_opted_out(len(users))
    return {
        "board_id": board_id,
        "board_code": board["code"],
        "board_name": board["name"],
        "audience": audience,
        "category": category,
        "title": title,
        "body": body,
        "consumers": len(consumers),
        "staff": len(staff),
        "opted_out": opted_out,
        "told": len(users) - opted_out,
    }


async def send(
    conn: AsyncConnection,
    principal: Principal,
    *,
    board_id: int,
    audience: str,
    category: str | None,
    title: str,
    body: str,
    urgent: bool,
    base_url: str,
    form_key: str | None = None,
) -> dict[str, Any]:
    """Broadcast to the board's `audience` (consumers only of `category`, when given); the
    broadcast as `recent` lists it, with `opted_out`: how many of those it would have reached
    chose not to hear announcements. With `form_key` (what the form's page handed out), the
    same message sent again with it by the same person is refused with the first
    (`AlreadySent`); a different message from that form (changed after a resent review) is a
    broadcast of its own, under a key of its own."""
    category, title, body = _checked(principal, audience, category, title, body)
    if form_key is not None and not FORM_KEY.fullmatch(form_key):
        raise InvalidInput("the form's key is not one the page gave", errors=[("form_key", "")])
    await resolve_in_scope(conn, principal, {"board": [board_id]})
    async with conn.transaction():
        board = await _board(conn, board_id)
        if form_key is not None:
            # one send of a key at a time, whatever the board (its unique index is per sender)
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('broadcast key ' || %s || ' ' || %s,"
                " 0))",
                (principal.user_id, form_key),
            )
            await _lock(conn, board)
            cursor = await conn.execute(
                "SELECT x.id, x.board_id, x.audience, x.category, x.title, x.body, x.urgent"
                " FROM broadcasts x WHERE x.sent_by = %s AND x.form_key = %s",
                (principal.user_id, form_key),
            )
            if first := await cursor.fetchone():
                message = (board_id, audience, category, title, body, urgent)
                if tuple(first[k] for k in MESSAGE) != message:
                    form_key = new_form_key()
                else:
                    [row] = await _rows(
                        conn, sql.SQL("x.id = %s"), [first["id"]], limit=1, offset=0
                    )
                    row.pop("_total")
                    raise AlreadySent(row)
        consumers, staff = await _recipients(conn, board, audience, category)
        users = sorted(set(consumers) | set(staff))
        cursor = await conn.execute(
            "INSERT INTO broadcasts (board_id, category, audience, title, body, urgent, sent_by,"
            " recipients, form_key) VALUES (%s, %s, %s, %s, %s, %s, %s, 0, %s) RETURNING id",
            (board_id, category, audience, title, body, urgent, principal.user_id, form_key),
        )
        broadcast_id = (await cursor.fetchone())["id"]
        told = await notifications.notify(
            conn,
            users,
            notifications.Notice(
                kind="broadcast",
                title=title,
                body=body,
                link=LINK,
                event_key=f"broadcast:{broadcast_id}",
                urgent=urgent,
            ),
            base_url=base_url,
        )
        if not told:
            raise _all_opted_out(len(users))
        await conn.execute(
            "UPDATE broadcasts SET recipients = %s WHERE id = %s", (told, broadcast_id)
        )
        await audit.record(
            conn,
            actor=principal.actor,
            action="broadcast",
            entity="broadcast",
            entity_id=broadcast_id,
            after={
                "board_id": board_id,
                "audience": audience,
                "category": category,
                "title": title,
                "urgent": urgent,
                "recipients": told,
                "opted_out": len(users) - told,
            },
        )
    [sent] = await _rows(conn, sql.SQL("x.id = %s"), [broadcast_id], limit=1, offset=0)
    sent.pop("_total")
    return sent | {"opted_out": len(users) - told}


_SELECT = sql.SQL(
    "SELECT x.id, x.board_id, b.code AS board_code, b.time_zone, x.audience, x.category,"
    " x.title, x.body, x.urgent, x.sent_by, coalesce(u.name, u.email) AS sent_by_name,"
    " x.recipients, x.created_at, count(*) OVER () AS _total"
    " FROM broadcasts x JOIN boards b ON b.id = x.board_id JOIN users u ON u.id = x.sent_by"
    " WHERE {} ORDER BY x.id DESC LIMIT %s OFFSET %s"
)


async def _rows(
    conn: AsyncConnection, where: sql.Composable, params: list[Any], *, limit: int, offset: int
) -> list[dict[str, Any]]:
    cursor = await conn.execute(_SELECT.format(where), [*params, limit, offset])
    return await cursor.fetchall()


async def recent(
    conn: AsyncConnection,
    principal: Principal,
    *,
    board_id: int | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """The broadcasts to the boards in the caller's scope (or to `board_id`), newest first,
    each with its sender's name."""
    if board_id is not None:
        await resolve_in_scope(conn, principal, {"board": [board_id]})
    condition, params = scope_filter(principal, "board", "b")
    if board_id is not None:
        condition = sql.SQL("{} AND x.board_id = %s").format(condition)
        params = [*params, board_id]
    rows = await _rows(conn, condition, params, limit=limit, offset=offset)
    total = rows[0]["_total"] if rows else 0
    for row in rows:
        row.pop("_total")
    return {"items": rows, "total": total}


async def audiences(conn: AsyncConnection, principal: Principal) -> list[dict[str, Any]]:
    """The boards in the caller's scope (by code, at most 200), each with the categories of
    its consumers: what a broadcast form offers."""
    condition, params = scope_filter(principal, "board", "b")
    cursor = await conn.execute(
        sql.SQL(
            "SELECT b.id, b.code, b.name, b.time_zone, coalesce(array_agg(DISTINCT c.category)"
            " FILTER (WHERE c.category IS NOT NULL), '{{}}') AS categories"
            " FROM boards b LEFT JOIN consumers c ON c.board_id = b.id WHERE {}"
            " GROUP BY b.id ORDER BY b.code LIMIT 200"
        ).format(condition),
        params,
    )
    return await cursor.fetchall()
