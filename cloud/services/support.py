"""The support desk: a consumer's query, its thread, and the agents who work it.

A consumer opens a query (text, an optional category, an optional bill or meter it is about)
and follows its thread; the board's agents list the queries in their scope, take one, answer,
and move it along: open -> in progress -> waiting for the consumer -> resolved -> closed. Each
priority has a service level (`SLA`): the clock starts when the consumer writes or asks for a
person and stops when an agent answers; a query past its due time opens an alert for the
board and tells its agent (`check_sla`, run with the cloud's checks).

Automatic help is for consumers who consented to automated processing (`automated_support`)
and for no one else: their query is classified (`cloud.support.classifier`) and, for a category
the records can answer, a reply is drafted from them (`support_drafts`). A draft in a safe
category, classified with enough confidence, is sent at once, marked automatic; the consumer
can ask for a person with one click (`escalate`). Every other draft waits for an agent.

Every change is audited; a query taken off the desk (`delete`, admins) is kept for the record.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb

from ..access import Permission, Principal, resolve_in_scope
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..support import classifier
from . import audit, notifications, support_drafts
from .alerts import close_alert, open_alert
from .preferences import has_consent

SLA = {
    "urgent": timedelta(hours=4),
    "high": timedelta(hours=24),
    "normal": timedelta(hours=72),
    "low": timedelta(days=7),
}
PRIORITIES = tuple(SLA)
STATUSES = ("open", "in_progress", "waiting_for_consumer", "resolved", "closed")
# where an agent may move a query from each status (closed is final: the consumer opens anew)
MOVES = {
    "open": {"in_progress", "waiting_for_consumer", "resolved", "closed"},
    "in_progress": {"open", "waiting_for_consumer", "resolved", "closed"},
    "waiting_for_consumer": {"in_progress", "resolved", "closed"},
    "resolved": {"in_progress", "closed"},
    "closed": set(),
}
# a category whose consumer is likely without supply or at risk waits less
URGENCY = {"outage": "high", "meter_fault": "high"}
# drafts of these categories go out by themselves when the classifier is sure enough
AUTOMATIC = ("high_bill", "outage")
AUTOMATIC_CONFIDENCE = 0.6
OPEN_PER_CONSUMER = 20  # queries not yet closed, per consumer
DESK_ROLES = ("SUPPORT_AGENT", "BOARD_ADMIN", "STATE_ADMIN", "SUPER_ADMIN")
SLA_ALERT = "support_sla_breached"
SLA_BATCH = 500

_COLUMNS = sql.SQL(
    "q.id, q.board_id, q.consumer_id, q.opened_by, q.subject, q.category, q.category_source,"
    " q.predicted, q.confidence, q.model_version, q.priority, q.status, q.assignee_id,"
    " q.invoice_id, q.meter_id, q.sla_started_at, q.sla_due_at, q.sla_breached_at,"
    " q.first_response_at, q.auto_answered_at, q.escalated_at, q.draft, q.draft_facts,"
    " q.created_at, q.updated_at, q.resolved_at, q.closed_at"
)
# what a consumer sees of their own query: not the desk's workings
_PRIVATE = ("predicted", "confidence", "model_version", "draft", "draft_facts", "assignee_id")


SUBJECT_CHARS = 80
_FIRST_SENTENCE = re.compile(r".{12,}?[.?!](?=\s|$)")  # "Hi." is a greeting, not a subject


def shortened(text: str, limit: int) -> str:
    """`text` within `limit` characters: whole when it fits, else cut after a word with '…'."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    if " " in head.strip():
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(" ,;:-") + "…"


def subject_of(text: str) -> str:
    """A query's subject, for lists, headings and notices: its first sentence (of its first
    line), shortened after a word to `SUBJECT_CHARS`."""
    first = " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""
    sentence = _FIRST_SENTENCE.match(first)
    return shortened(sentence.group() if sentence else first, SUBJECT_CHARS)


async def _classify(text: str) -> classifier.Prediction:
    """On a worker thread: the first call trains the model (about a second)."""
    return await asyncio.to_thread(lambda: classifier.shared().classify(text))


async def _reach(conn: AsyncConnection, principal: Principal, query_id: int) -> None:
    """The query must lie in the caller's scope (the API's routes resolved it already; the
    pages' forms come here directly)."""
    await resolve_in_scope(conn, principal, {"support_query": [query_id]})


async def _row(conn: AsyncConnection, query_id: int, *, lock: bool = False) -> dict[str, Any]:
    cursor = await conn.execute(
        sql.SQL(
            "SELECT {} FROM support_queries q WHERE q.id = %s AND q.deleted_at IS NULL {}"
        ).format(_COLUMNS, sql.SQL("FOR UPDATE" if lock else "")),
        (query_id,),
    )
    row = await cursor.fetchone()
    if row is None:
        raise NotFound(f"no support query {query_id}")
    return row


async def _messages(conn: AsyncConnection, query_id: int) -> list[dict[str, Any]]:
    cursor = await conn.execute(
        "SELECT m.id, m.author_kind, m.body, m.created_at, u.name AS author_name"
        " FROM support_messages m LEFT JOIN users u ON u.id = m.author_id"
        " WHERE m.query_id = %s ORDER BY m.id",
        (query_id,),
    )
    rows = await cursor.fetchall()
    for row in rows:  # a consumer sees an agent by first name; the automatic answer as such
        if row["author_kind"] == "agent":
            row["author_name"] = (row["author_name"] or "Support").split()[0]
        elif row["author_kind"] == "automatic":
            row["author_name"] = "Automatic answer"
    return rows


def _for(principal: Principal, row: dict[str, Any]) -> dict[str, Any]:
    if principal.may(Permission.QUERY_MANAGE):
        return row
    return {k: v for k, v in row.items() if k not in _PRIVATE}


async def detail(conn: AsyncConnection, principal: Principal, query_id: int) -> dict[str, Any]:
    """The query (in scope: the route resolved its id) and its whole thread."""
    await _reach(conn, principal, query_id)
    row = await _row(conn, query_id)
    cursor = await conn.execute(
        "SELECT c.name AS consumer_name, c.account_no, b.code AS board_code, b.time_zone,"
        " coalesce(a.name, a.email) AS assignee_name"
        " FROM consumers c JOIN boards b ON b.id = c.board_id"
        " LEFT JOIN users a ON a.id = %s WHERE c.id = %s",
        (row["assignee_id"], row["consumer_id"]),
    )
    named = await cursor.fetchone()
    if not principal.may(Permission.QUERY_MANAGE):
        named.pop("assignee_name")
    return _for(principal, row) | named | {"messages": await _messages(conn, query_id)}


async def _audit(
    conn: AsyncConnection,
    principal: Principal | None,
    action: str,
    query_id: int,
    before: dict | None = None,
    after: dict | None = None,
) -> None:
    await audit.record(
        conn,
        actor=principal.actor if principal else "system:support",
        action=action,
        entity="support_query",
        entity_id=query_id,
        before=before,
        after=after,
    )


async def _post(
    conn: AsyncConnection, query_id: int, kind: str, body: str, author_id: int | None
) -> int:
    cursor = await conn.execute(
        "INSERT INTO support_messages (query_id, author_id, author_kind, body)"
        " VALUES (%s, %s, %s, %s) RETURNING id",
        (query_id, author_id, kind, body),
    )
    return (await cursor.fetchone())["id"]


async def _tell_consumer(
    conn: AsyncConnection,
    query: dict[str, Any],
    message_id: int,
    title: str,
    body: str,
    base_url: str,
) -> None:
    users = await notifications.consumer_users(conn, query["consumer_id"])
    await notifications.notify(
        conn,
        users,
        notifications.Notice(
            "support_reply",
            title,
            body[:500],
            f"/dashboard/support/{query['id']}",
            f"support_message:{message_id}",
        ),
        base_url=base_url,
    )


async def _tell_desk(
    conn: AsyncConnection,
    query: dict[str, Any],
    kind: str,
    title: str,
    body: str,
    event_key: str,
    base_url: str | None,
    *,
    urgent: bool = False,
) -> None:
    """The query's agent; with none, the board's agents and admins."""
    if query["assignee_id"]:
        users = [query["assignee_id"]]
    else:
        cursor = await conn.execute(
            "SELECT id FROM users WHERE board_id = %s AND active"
            " AND role IN ('SUPPORT_AGENT', 'BOARD_ADMIN')",
            (query["board_id"],),
        )
        users = [row["id"] for row in await cursor.fetchall()]
    await notifications.notify(
        conn,
        users,
        notifications.Notice(
            kind, title, body[:500], f"/dashboard/support/{query['id']}", event_key, urgent=urgent
        ),
        base_url=base_url,
    )


# --- the consumer's side --------------------------------------------------------------------


async def open_query(
    conn: AsyncConnection,
    principal: Principal,
    *,
    text: str,
    category: str | None,
    invoice_id: int | None,
    meter_id: int | None,
    base_url: str,
) -> dict[str, Any]:
    """A consumer's new query; classified, drafted and perhaps answered at once if they
    consented to automated processing."""
    if principal.consumer_id is None:
        raise Forbidden("only a consumer opens a support query")
    text = text.strip()
    if not text:
        raise InvalidInput("write what the query is about", errors=[("text", "empty")])
    about = {"invoice": [invoice_id] if invoice_id else [], "meter": [meter_id] if meter_id else []}
    await resolve_in_scope(conn, principal, about)
    automated = await has_consent(conn, principal.user_id, "automated_support")
    prediction = await _classify(text) if automated else None
    now = datetime.now(UTC)
    async with conn.transaction():
        cursor = await conn.execute(
            "SELECT c.board_id, (SELECT count(*) FROM support_queries q WHERE q.consumer_id = c.id"
            " AND q.status <> 'closed' AND q.deleted_at IS NULL) AS pending"
            " FROM consumers c WHERE c.id = %s FOR UPDATE OF c",
            (principal.consumer_id,),
        )
        consumer = await cursor.fetchone()
        if consumer["pending"] >= OPEN_PER_CONSUMER:
            raise Conflict(
                f"you have {OPEN_PER_CONSUMER} queries still open; add to one of them instead"
            )
        chosen = category or (prediction.category if prediction else None)
        source = "consumer" if category else ("classifier" if prediction else None)
        priority = URGENCY.get(chosen or "", "normal")
        cursor = await conn.execute(
            "INSERT INTO support_queries (board_id, consumer_id, opened_by, subject, category,"
            " category_source, predicted, confidence, model_version, priority, invoice_id,"
            " meter_id, created_at, sla_started_at, sla_due_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                consumer["board_id"],
                principal.consumer_id,
                principal.user_id,
                subject_of(text),
                chosen,
                source,
                prediction.category if prediction else None,
                prediction.confidence if prediction else None,
                prediction.model_version if prediction else None,
                priority,
                invoice_id,
                meter_id,
                now,
                now,
                now + SLA[priority],
            ),
        )
        query_id = (await cursor.fetchone())["id"]
        await _post(conn, query_id, "consumer", text, principal.user_id)
        await _audit(
            conn,
            principal,
            "open",
            query_id,
            after={
                "category": chosen,
                "priority": priority,
                "automated": automated,
                "predicted": prediction.category if prediction else None,
                "confidence": prediction.confidence if prediction else None,
            },
        )
        if automated and chosen in support_drafts.DRAFTED:
            await _attach_draft(conn, await _row(conn, query_id), chosen, principal=None)
            row = await _row(conn, query_id)
            sure = (
                prediction is not None
                and prediction.category == chosen
                and prediction.confidence >= AUTOMATIC_CONFIDENCE
            )
            if row["draft"] and chosen in AUTOMATIC and sure:
                await _answer_automatically(conn, row, base_url)
    return await detail(conn, principal, query_id)


async def _attach_draft(
    conn: AsyncConnection, query: dict[str, Any], category: str, *, principal: Principal | None
) -> bool:
    made = await support_drafts.draft(
        conn,
        category=category,
        consumer_id=query["consumer_id"],
        invoice_id=query["invoice_id"],
        meter_id=query["meter_id"],
    )
    await conn.execute(
        "UPDATE support_queries SET draft = %s, draft_facts = %s, updated_at = now() WHERE id = %s",
        (
            made.body if made else None,
            # when its figures were read: an agent who comes later knows how old they are
            Jsonb({**made.facts, "drafted_at": datetime.now(UTC).isoformat()}) if made else None,
            query["id"],
        ),
    )
    await _audit(
        conn, principal, "draft", query["id"], after={"category": category, "drafted": bool(made)}
    )
    return made is not None


async def _answer_automatically(
    conn: AsyncConnection, query: dict[str, Any], base_url: str
) -> None:
    message_id = await _post(conn, query["id"], "automatic", query["draft"], None)
    await conn.execute(
        "UPDATE support_queries SET status = 'waiting_for_consumer', auto_answered_at = now(),"
        " sla_started_at = NULL, sla_due_at = NULL, updated_at = now() WHERE id = %s",
        (query["id"],),
    )
    await _audit(conn, None, "answer_automatically", query["id"], after={"message": message_id})
    await _tell_consumer(
        conn,
        query,
        message_id,
        f"An answer to your query #{query['id']}: {shortened(query['subject'], SUBJECT_CHARS)}",
        "We answered your query from your records. Not what you needed? Ask for a person.",
        base_url,
    )


async def escalate(
    conn: AsyncConnection, principal: Principal, query_id: int, *, base_url: str
) -> dict[str, Any]:
    """The consumer asks for a person: the query goes back on the desk, its clock started.
    Asking again while it waits there changes nothing."""
    await _reach(conn, principal, query_id)
    async with conn.transaction():
        row = await _row(conn, query_id, lock=True)
        if row["status"] == "closed":
            raise Conflict("this query is closed; open a new one")
        if row["escalated_at"] and row["status"] in ("open", "in_progress"):
            return await detail(conn, principal, query_id)
        now = datetime.now(UTC)
        status = "in_progress" if row["assignee_id"] else "open"
        await conn.execute(
            "UPDATE support_queries SET status = %s, escalated_at = %s, sla_started_at = %s,"
            " sla_due_at = %s, sla_breached_at = NULL, resolved_at = NULL, updated_at = now()"
            " WHERE id = %s",
            (status, now, now, now + SLA[row["priority"]], query_id),
        )
        await _audit(
            conn, principal, "escalate", query_id, {"status": row["status"]}, {"status": status}
        )
        await _tell_desk(
            conn,
            row,
            "support_update",
            f"Query #{query_id} needs a person",
            f"The consumer asked for a person: {row['subject']}",
            f"support_escalated:{query_id}:{now.isoformat()}",
            base_url,
        )
    return await detail(conn, principal, query_id)


# --- both sides -----------------------------------------------------------------------------


async def reply(
    conn: AsyncConnection,
    principal: Principal,
    query_id: int,
    *,
    body: str,
    agent: bool,
    status: str | None = None,
    base_url: str,
) -> dict[str, Any]:
    """A message in the thread. An agent's answer stops the clock and waits for the consumer
    (or moves the query to `status`); a consumer's reopens the query and starts the clock."""
    await _reach(conn, principal, query_id)
    body = body.strip()
    if not body:
        raise InvalidInput("the message is empty", errors=[("body", "empty")])
    async with conn.transaction():
        row = await _row(conn, query_id, lock=True)
        if row["status"] == "closed":
            raise Conflict("this query is closed; open a new one")
        now = datetime.now(UTC)
        if agent:
            new_status = status or "waiting_for_consumer"
            if new_status not in MOVES[row["status"]] | {row["status"]}:
                raise InvalidInput(
                    f"a query {row['status'].replace('_', ' ')} cannot move to"
                    f" {new_status.replace('_', ' ')}",
                    errors=[("status", new_status)],
                )
            message_id = await _post(conn, query_id, "agent", body, principal.user_id)
            await conn.execute(
                "UPDATE support_queries SET status = %s, assignee_id = coalesce(assignee_id, %s),"
                " first_response_at = coalesce(first_response_at, %s), sla_started_at = NULL,"
                " sla_due_at = NULL, resolved_at = CASE WHEN %s = 'resolved' THEN %s END,"
                " updated_at = now() WHERE id = %s",
                (new_status, principal.user_id, now, new_status, now, query_id),
            )
            await _close_sla_alert(conn, row, principal)
            await _audit(
                conn,
                principal,
                "reply",
                query_id,
                {"status": row["status"]},
                {"status": new_status, "message": message_id},
            )
            await _tell_consumer(
                conn,
                row,
                message_id,
                f"A reply to your query #{query_id}: {shortened(row['subject'], SUBJECT_CHARS)}",
                body,
                base_url,
            )
        else:
            message_id = await _post(conn, query_id, "consumer", body, principal.user_id)
            reopened = row["status"] in ("waiting_for_consumer", "resolved")
            new_status = ("in_progress" if row["assignee_id"] else "open") if reopened else None
            waiting = row["sla_due_at"] is not None
            await conn.execute(
                "UPDATE support_queries SET status = coalesce(%s, status),"
                " sla_started_at = CASE WHEN %s THEN sla_started_at ELSE %s END,"
                " sla_due_at = CASE WHEN %s THEN sla_due_at ELSE %s END,"
                " resolved_at = NULL, updated_at = now() WHERE id = %s",
                (new_status, waiting, now, waiting, now + SLA[row["priority"]], query_id),
            )
            await _audit(
                conn,
                principal,
                "reply",
                query_id,
                {"status": row["status"]},
                {"status": new_status or row["status"], "message": message_id},
            )
            await _tell_desk(
                conn,
                row,
                "support_update",
                f"The consumer wrote on query #{query_id}",
                body,
                f"support_message:{message_id}",
                base_url,
            )
    return await detail(conn, principal, query_id)


# --- the desk's side ------------------------------------------------------------------------


async def desk_users(conn: AsyncConnection, query: dict[str, Any]) -> list[dict[str, Any]]:
    """Who may take the query: the board's agents and admins, its state's admins; and whoever
    holds it now (an operator who answered it takes it too), so a desk's form shows them."""
    cursor = await conn.execute(
        "SELECT u.id, u.name, u.email, u.role FROM users u, boards b WHERE b.id = %s"
        " AND ((u.active AND ((u.board_id = b.id AND u.role IN ('SUPPORT_AGENT', 'BOARD_ADMIN'))"
        " OR (u.role = 'STATE_ADMIN' AND u.state_id = b.state_id))) OR u.id = %s)"
        " ORDER BY u.role = 'SUPPORT_AGENT' DESC, coalesce(u.name, u.email) LIMIT 200",
        (query["board_id"], query.get("assignee_id")),
    )
    return await cursor.fetchall()


async def _check_assignee(conn: AsyncConnection, query: dict[str, Any], user_id: int) -> None:
    cursor = await conn.execute(
        "SELECT u.role, u.board_id, u.state_id, b.state_id AS query_state FROM users u,"
        " boards b WHERE u.id = %s AND b.id = %s AND u.active",
        (user_id, query["board_id"]),
    )
    user = await cursor.fetchone()
    serves = user is not None and (
        user["role"] == "SUPER_ADMIN"
        or (user["role"] == "STATE_ADMIN" and user["state_id"] == user["query_state"])
        or (user["role"] in DESK_ROLES and user["board_id"] == query["board_id"])
    )
    if not serves:
        raise InvalidInput(
            f"user {user_id} does not work this board's support desk",
            errors=[("assignee_id", str(user_id))],
        )


async def update(
    conn: AsyncConnection,
    principal: Principal,
    query_id: int,
    changes: dict[str, Any],
    *,
    base_url: str,
) -> dict[str, Any]:
    """An agent changes the status, priority, category or assignee (`assignee_id` None:
    nobody's)."""
    await _reach(conn, principal, query_id)
    async with conn.transaction():
        row = await _row(conn, query_id, lock=True)
        before = {k: row[k] for k in changes}
        sets: dict[str, Any] = {}
        now = datetime.now(UTC)
        if "status" in changes and changes["status"] != row["status"]:
            status = changes["status"]
            if status not in MOVES[row["status"]]:
                raise InvalidInput(
                    f"a query {row['status'].replace('_', ' ')} cannot move to"
                    f" {status.replace('_', ' ')}",
                    errors=[("status", status)],
                )
            sets["status"] = status
            if status in ("waiting_for_consumer", "resolved", "closed"):
                sets |= {"sla_started_at": None, "sla_due_at": None}
            if status == "resolved":
                sets["resolved_at"] = now
            if status == "closed":
                sets["closed_at"] = now
        if "priority" in changes and changes["priority"] != row["priority"]:
            sets["priority"] = changes["priority"]
            started = row["sla_started_at"]
            if started is not None and "sla_due_at" not in sets:
                sets["sla_due_at"] = started + SLA[changes["priority"]]
                if sets["sla_due_at"] > now:
                    sets["sla_breached_at"] = None
        if "category" in changes and changes["category"] != row["category"]:
            sets |= {"category": changes["category"], "category_source": "agent"}
        if "assignee_id" in changes and changes["assignee_id"] != row["assignee_id"]:
            if changes["assignee_id"] is not None:
                await _check_assignee(conn, row, changes["assignee_id"])
            sets["assignee_id"] = changes["assignee_id"]
        if not sets:
            return await detail(conn, principal, query_id)
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = %s").format(sql.Identifier(column)) for column in sets
        )
        await conn.execute(
            sql.SQL("UPDATE support_queries SET {}, updated_at = now() WHERE id = %s").format(
                assignments
            ),
            (*sets.values(), query_id),
        )
        await _audit(conn, principal, "update", query_id, before, sets)
        if sets.get("sla_due_at", row["sla_due_at"]) is None:
            await _close_sla_alert(conn, row, principal)
        if sets.get("assignee_id") and sets["assignee_id"] != principal.user_id:
            await _tell_desk(
                conn,
                row | {"assignee_id": sets["assignee_id"]},
                "support_update",
                f"Query #{query_id} is yours",
                row["subject"],
                f"support_assigned:{query_id}:{now.isoformat()}",
                base_url,
            )
        if sets.get("status") == "resolved":
            cursor = await conn.execute(
                "SELECT max(id) AS id FROM support_messages WHERE query_id = %s", (query_id,)
            )
            last = (await cursor.fetchone())["id"]
            await _tell_consumer(
                conn,
                row,
                last,
                f"Your query #{query_id} is resolved",
                "Not settled for you? Reply in the query and it opens again.",
                base_url,
            )
    return await detail(conn, principal, query_id)


async def delete(conn: AsyncConnection, principal: Principal, query_id: int) -> None:
    await _reach(conn, principal, query_id)
    async with conn.transaction():
        row = await _row(conn, query_id, lock=True)
        await conn.execute(
            "UPDATE support_queries SET deleted_at = now(), sla_due_at = NULL WHERE id = %s",
            (query_id,),
        )
        await _close_sla_alert(conn, row, principal)
        await _audit(conn, principal, "delete", query_id, {"status": row["status"]})


async def _consented(conn: AsyncConnection, query: dict[str, Any]) -> None:
    if not await has_consent(conn, query["opened_by"], "automated_support"):
        raise Conflict("the consumer has not consented to automated processing of their queries")


async def classify(conn: AsyncConnection, principal: Principal, query_id: int) -> dict[str, Any]:
    """Run the classifier on the query's opening message again (its category follows unless a
    person chose it)."""
    await _reach(conn, principal, query_id)
    row = await _row(conn, query_id)
    await _consented(conn, row)
    cursor = await conn.execute(
        "SELECT body FROM support_messages WHERE query_id = %s ORDER BY id LIMIT 1", (query_id,)
    )
    prediction = await _classify((await cursor.fetchone())["body"])
    async with conn.transaction():
        row = await _row(conn, query_id, lock=True)
        follows = row["category_source"] in (None, "classifier")
        await conn.execute(
            "UPDATE support_queries SET predicted = %s, confidence = %s, model_version = %s,"
            " category = CASE WHEN %s THEN %s ELSE category END,"
            " category_source = CASE WHEN %s THEN 'classifier' ELSE category_source END,"
            " updated_at = now() WHERE id = %s",
            (
                prediction.category,
                prediction.confidence,
                prediction.model_version,
                follows,
                prediction.category,
                follows,
                query_id,
            ),
        )
        await _audit(
            conn,
            principal,
            "classify",
            query_id,
            {"category": row["category"], "predicted": row["predicted"]},
            {
                "predicted": prediction.category,
                "confidence": prediction.confidence,
                "model_version": prediction.model_version,
            },
        )
    return await detail(conn, principal, query_id)


async def redraft(conn: AsyncConnection, principal: Principal, query_id: int) -> dict[str, Any]:
    """Draft the reply again from the records as they are now, for the category in force."""
    await _reach(conn, principal, query_id)
    async with conn.transaction():
        row = await _row(conn, query_id, lock=True)
        await _consented(conn, row)
        if row["category"] not in support_drafts.DRAFTED:
            raise Conflict(
                "only high-bill, outage and meter-fault queries are drafted from the records;"
                " answer this one in your own words"
            )
        await _attach_draft(conn, row, row["category"], principal=principal)
    return await detail(conn, principal, query_id)


async def send_draft(
    conn: AsyncConnection,
    principal: Principal,
    query_id: int,
    *,
    body: str | None,
    status: str,
    base_url: str,
) -> dict[str, Any]:
    """The agent sends the draft (as it is, or as they edited it) as their answer."""
    await _reach(conn, principal, query_id)
    row = await _row(conn, query_id)
    text = body if body is not None else row["draft"]
    if not text:
        raise Conflict("this query has no draft; write the answer instead")
    return await reply(
        conn, principal, query_id, body=text, agent=True, status=status, base_url=base_url
    )


# --- service levels -------------------------------------------------------------------------


async def _close_sla_alert(
    conn: AsyncConnection, query: dict[str, Any], principal: Principal | None
) -> None:
    if query["sla_breached_at"] is None:
        return
    await close_alert(
        conn,
        board_id=query["board_id"],
        subject=f"support_query:{query['id']}",
        kind=SLA_ALERT,
        by=principal.actor if principal else "system:support",
        at=datetime.now(UTC),
    )


async def check_sla(conn: AsyncConnection, now: datetime) -> int:
    """Mark the queries past their due time, open an alert for each on its board and tell its
    agent (or the board's desk); how many were found. Works in batches of `SLA_BATCH`, each in
    its own transaction, until none is left."""
    found = 0
    while True:
        batch = await _breach_batch(conn, now)
        found += batch
        if batch < SLA_BATCH:
            return found


async def _breach_batch(conn: AsyncConnection, now: datetime) -> int:
    found = 0
    async with conn.transaction():
        cursor = await conn.execute(
            sql.SQL(
                "SELECT {} FROM support_queries q WHERE q.sla_due_at < %s"
                " AND q.sla_breached_at IS NULL AND q.deleted_at IS NULL"
                " ORDER BY q.sla_due_at LIMIT %s FOR UPDATE SKIP LOCKED"
            ).format(_COLUMNS),
            (now, SLA_BATCH),
        )
        for row in await cursor.fetchall():
            found += 1
            await conn.execute(
                "UPDATE support_queries SET sla_breached_at = %s WHERE id = %s", (now, row["id"])
            )
            late = now - row["sla_due_at"]
            hours = int(SLA[row["priority"]].total_seconds() // 3600)
            message = (
                f"Support query #{row['id']} ({row['priority']} priority) has waited past its"
                f" {hours} h service level: {row['subject']}"
            )
            await open_alert(
                conn,
                board_id=row["board_id"],
                subject=f"support_query:{row['id']}",
                kind=SLA_ALERT,
                severity="high" if row["priority"] in ("urgent", "high") else "medium",
                source="cloud",
                at=now,
                message=message,
                details={"query_id": row["id"], "late_s": int(late.total_seconds())},
            )
            await _audit(conn, None, "sla_breached", row["id"], after={"due": row["sla_due_at"]})
            await _tell_desk(
                conn,
                row,
                "sla_breached",
                f"Query #{row['id']} is past its service level",
                message,
                f"support_sla:{row['id']}:{row['sla_due_at'].isoformat()}",
                None,
                urgent=row["priority"] in ("urgent", "high"),
            )
    return found
