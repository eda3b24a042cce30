"""The support desk under `/api/v1/support/queries`.

A consumer opens queries, reads and writes in their threads and asks for a person; the board's
agents list and filter the queries in their scope, change status, priority, category and
assignee, and answer. The automatic steps have routes of their own for agents (SmartMettr's
pending queue, classify and resolve): the queue of drafts waiting for a person, classify again,
draft again, send the draft. Admins take a query off the desk (kept for the record).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict

from ..access import Permission, Principal
from ..access.ids import BoardId, ConsumerId, InvoiceId, MeterId, SupportQueryId, UserId
from ..services import listings, support
from .deps import PoolDep, PublicBase, require
from .paging import Limit, Offset, Order
from .scoped_route import ScopedRoute
from .types import text

router = APIRouter(prefix="/api/v1/support", tags=["support"], route_class=ScopedRoute)
Category = Literal[
    "high_bill",
    "billing_error",
    "meter_fault",
    "outage",
    "connection",
    "tariff",
    "payment",
    "other",
]
Status = Literal["open", "in_progress", "waiting_for_consumer", "resolved", "closed"]
Priority = Literal["low", "normal", "high", "urgent"]


class NewQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: text(4000, 1)  # type: ignore[valid-type]
    category: Category | None = None
    invoice_id: InvoiceId | None = None  # the bill it is about
    meter_id: MeterId | None = None  # the meter it is about


class ThreadMessage(BaseModel):
    id: int
    author_kind: Literal["consumer", "agent", "automatic"]
    author_name: str | None
    body: str
    created_at: datetime


class SupportQuery(BaseModel):
    """A query and its thread. The desk's workings (`predicted`, `confidence`,
    `model_version`, `draft`, `draft_facts`, `assignee_*`) are shown to agents only."""

    id: int
    board_id: int
    board_code: str
    time_zone: str
    consumer_id: int
    consumer_name: str
    account_no: str
    subject: str
    category: Category | None
    category_source: Literal["consumer", "classifier", "agent"] | None
    priority: Priority
    status: Status
    invoice_id: int | None
    meter_id: int | None
    sla_due_at: datetime | None
    sla_breached_at: datetime | None
    first_response_at: datetime | None
    auto_answered_at: datetime | None
    escalated_at: datetime | None
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    closed_at: datetime | None
    messages: list[ThreadMessage]
    predicted: Category | None = None
    confidence: Decimal | None = None
    model_version: str | None = None
    draft: str | None = None
    draft_facts: dict | None = None
    assignee_id: int | None = None
    assignee_name: str | None = None


class QueryPage(BaseModel):
    items: list[dict]
    total: int
    limit: int
    offset: int


class Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: text(4000, 1)  # type: ignore[valid-type]
    status: Status | None = None  # where the query goes (default: waiting for the consumer)


class Change(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Status | None = None
    priority: Priority | None = None
    category: Category | None = None
    assignee_id: UserId | None = None  # null: nobody's


class SendDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: text(4000, 1) | None = None  # type: ignore[valid-type]  # the draft as edited
    status: Status = "resolved"


SortKey = Literal["opened", "updated", "due", "priority"]


@router.post(
    "/queries",
    response_model=SupportQuery,
    response_model_exclude_unset=True,
    status_code=status.HTTP_201_CREATED,
)
async def open_query(
    body: NewQuery,
    pool: PoolDep,
    public_base: PublicBase,
    principal: Principal = require(Permission.QUERY_OPEN),
) -> dict:
    """Open a query (consumers). With consent to automated processing it is classified and,
    when the records answer it, may be answered at once (marked automatic)."""
    async with pool.connection() as conn:
        return await support.open_query(conn, principal, **body.model_dump(), base_url=public_base)


@router.get("/queries", response_model=QueryPage)
async def list_queries(
    pool: PoolDep,
    principal: Principal = require(Permission.QUERY_READ),
    board_id: BoardId | None = None,
    consumer_id: ConsumerId | None = None,
    status: Status | None = None,
    open_only: bool = False,
    category: Category | None = None,
    uncategorised: bool = False,
    priority: Priority | None = None,
    assignee_id: UserId | None = None,
    unassigned: bool = False,
    older_than_h: Annotated[int | None, Query(ge=0, le=24 * 366)] = None,
    breached: bool = False,
    search: text(100) | None = None,  # type: ignore[valid-type]
    sort: SortKey = "opened",
    order: Order = "desc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    """Queries in your scope (a consumer: their own), newest first. `older_than_h`: opened
    more than so many hours ago; `breached`: past their service level and still waiting."""
    async with pool.connection() as conn:
        found = await listings.support_queries(
            conn,
            principal,
            board_id=board_id,
            consumer_id=consumer_id,
            status=status,
            open_only=open_only,
            category=category,
            uncategorised=uncategorised,
            priority=priority,
            assignee_id=assignee_id,
            unassigned=unassigned,
            older_than_h=older_than_h,
            breached=breached,
            search=search,
            sort=sort,
            descending=order == "desc",
            limit=limit,
            offset=offset,
        )
    if not principal.may(Permission.QUERY_MANAGE):
        for row in found.rows:
            for key in ("assignee_id", "assignee_name", "draft_waiting"):
                row.pop(key, None)
    return {"items": found.rows, "total": found.total, "limit": limit, "offset": offset}


@router.get("/pending", response_model=QueryPage)
async def pending(
    pool: PoolDep,
    principal: Principal = require(Permission.QUERY_MANAGE),
    board_id: BoardId | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    """Queries whose drafted answer waits for an agent, most urgent first."""
    async with pool.connection() as conn:
        found = await listings.support_queries(
            conn,
            principal,
            board_id=board_id,
            open_only=True,
            drafted=True,
            sort="priority",
            descending=False,
            limit=limit,
            offset=offset,
        )
    return {"items": found.rows, "total": found.total, "limit": limit, "offset": offset}


@router.get("/queries/{query_id}", response_model=SupportQuery, response_model_exclude_unset=True)
async def get_query(
    query_id: SupportQueryId,
    pool: PoolDep,
    principal: Principal = require(Permission.QUERY_READ),
) -> dict:
    async with pool.connection() as conn:
        return await support.detail(conn, principal, query_id)


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: text(4000, 1)  # type: ignore[valid-type]


@router.post(
    "/queries/{query_id}/messages", response_model=SupportQuery, response_model_exclude_unset=True
)
async def write(
    query_id: SupportQueryId,
    body: Message,
    pool: PoolDep,
    public_base: PublicBase,
    principal: Principal = require(Permission.QUERY_OPEN),
) -> dict:
    """The consumer writes in their query's thread: a query waiting for them, or resolved,
    goes back to the desk."""
    async with pool.connection() as conn:
        return await support.reply(
            conn, principal, query_id, body=body.body, agent=False, base_url=public_base
        )


@router.post(
    "/queries/{query_id}/answers", response_model=SupportQuery, response_model_exclude_unset=True
)
async def answer(
    query_id: SupportQueryId,
    body: Reply,
    pool: PoolDep,
    public_base: PublicBase,
    principal: Principal = require(Permission.QUERY_MANAGE),
) -> dict:
    """An agent answers: the clock stops and the query waits for the consumer (or moves to
    `status`); the consumer hears of it as they chose."""
    async with pool.connection() as conn:
        return await support.reply(
            conn,
            principal,
            query_id,
            body=body.body,
            agent=True,
            status=body.status,
            base_url=public_base,
        )


@router.post(
    "/queries/{query_id}/escalate", response_model=SupportQuery, response_model_exclude_unset=True
)
async def escalate(
    query_id: SupportQueryId,
    pool: PoolDep,
    public_base: PublicBase,
    principal: Principal = require(Permission.QUERY_OPEN),
) -> dict:
    """Ask for a person (after an automatic answer, or any time before the query is closed)."""
    async with pool.connection() as conn:
        return await support.escalate(conn, principal, query_id, base_url=public_base)


@router.patch("/queries/{query_id}", response_model=SupportQuery, response_model_exclude_unset=True)
async def change(
    query_id: SupportQueryId,
    body: Change,
    pool: PoolDep,
    public_base: PublicBase,
    principal: Principal = require(Permission.QUERY_MANAGE),
) -> dict:
    async with pool.connection() as conn:
        return await support.update(
            conn, principal, query_id, body.model_dump(exclude_unset=True), base_url=public_base
        )


@router.delete("/queries/{query_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete(
    query_id: SupportQueryId,
    pool: PoolDep,
    principal: Principal = require(Permission.QUERY_DELETE),
) -> None:
    async with pool.connection() as conn:
        await support.delete(conn, principal, query_id)


@router.post(
    "/queries/{query_id}/classify", response_model=SupportQuery, response_model_exclude_unset=True
)
async def classify(
    query_id: SupportQueryId,
    pool: PoolDep,
    principal: Principal = require(Permission.QUERY_MANAGE),
) -> dict:
    """Classify the query again (only if its consumer consented to automated processing)."""
    async with pool.connection() as conn:
        return await support.classify(conn, principal, query_id)


@router.post(
    "/queries/{query_id}/draft", response_model=SupportQuery, response_model_exclude_unset=True
)
async def redraft(
    query_id: SupportQueryId,
    pool: PoolDep,
    principal: Principal = require(Permission.QUERY_MANAGE),
) -> dict:
    """Draft the answer again from the consumer's records as they are now."""
    async with pool.connection() as conn:
        return await support.redraft(conn, principal, query_id)


@router.post(
    "/queries/{query_id}/draft/send", response_model=SupportQuery, response_model_exclude_unset=True
)
async def send_draft(
    query_id: SupportQueryId,
    body: SendDraft,
    pool: PoolDep,
    public_base: PublicBase,
    principal: Principal = require(Permission.QUERY_MANAGE),
) -> dict:
    """Send the draft (or your edit of it) as your answer; the query moves to `status`
    (default: resolved)."""
    async with pool.connection() as conn:
        return await support.send_draft(
            conn,
            principal,
            query_id,
            body=body.body,
            status=body.status,
            base_url=public_base,
        )
