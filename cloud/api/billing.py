"""Tariffs, billing runs and invoices under `/api/v1`, each behind a permission and the scope
filter (a consumer sees only its own invoices)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared import describe_validation_error

from ..access import Permission, Principal
from ..access.ids import (
    BillingRunId,
    BoardId,
    ConsumerId,
    InvoiceId,
    TariffId,
    TariffOverrideId,
    TariffVersionId,
)
from ..billing import urdb
from ..billing.tariff import TariffSpec
from ..errors import InvalidInput, NotFound
from ..services import (
    billing_cycles,
    billing_runs,
    estimates,
    invoices,
    tariff_overrides,
    tariffs,
)
from ..services.scoped import BILLING_RUNS, INVOICES, TARIFFS, get_row
from .deps import PoolDep, PublicBase, require
from .paging import Limit, Offset, Order, Page, page
from .scoped_route import ScopedRoute
from .types import Day, Instant, Patch, text

router = APIRouter(prefix="/api/v1", tags=["billing"], route_class=ScopedRoute)
Category = Literal["domestic", "commercial", "industrial", "agricultural"]


class TariffCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    board_id: BoardId
    category: Category
    name: text(200, min_length=1)  # type: ignore[valid-type]


class VersionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    effective_from: Day
    effective_to: Day | None = None
    spec: TariffSpec


class VersionUpdate(Patch):
    NULLABLE = frozenset({"effective_to"})
    effective_from: Day | None = None
    effective_to: Day | None = None
    spec: TariffSpec | None = None


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    board_id: BoardId
    period_start: Day
    period_end: Day  # exclusive: a calendar month is [1 Oct, 1 Nov)
    consumer_ids: Annotated[list[ConsumerId], Field(max_length=10_000)] | None = None


class PaymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Annotated[Decimal, Field(gt=0, le=Decimal("1e10"), max_digits=14, decimal_places=2)]
    reference: text(100) = ""  # type: ignore[valid-type]


class DisputeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: text(2000, min_length=1)  # type: ignore[valid-type]


class DisputeResolve(BaseModel):
    model_config = ConfigDict(extra="forbid")
    upheld: bool
    resolution: text(2000, min_length=1)  # type: ignore[valid-type]


@router.get("/tariffs", response_model=Page)
async def list_tariffs(
    pool: PoolDep,
    principal: Principal = require(Permission.BILLING_READ),
    board_id: BoardId | None = None,
    category: Category | None = None,
    sort: Literal["id", "category", "name"] = "id",
    order: Order = "asc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page:
    filters = {"board_id": board_id, "category": category}
    return await page(pool, principal, TARIFFS, filters, sort, order, limit, offset)


@router.post("/tariffs", status_code=status.HTTP_201_CREATED)
async def create_tariff(
    body: TariffCreate, pool: PoolDep, principal: Principal = require(Permission.TARIFF_MANAGE)
) -> dict:
    async with pool.connection() as conn:
        return await tariffs.create(conn, principal, **body.model_dump())


@router.get("/tariffs/{tariff_id}")
async def get_tariff(
    tariff_id: TariffId, pool: PoolDep, principal: Principal = require(Permission.BILLING_READ)
) -> dict:
    async with pool.connection() as conn:
        tariff = await get_row(conn, principal, TARIFFS, tariff_id)
        return {**tariff, "versions": await tariffs.versions(conn, principal, tariff_id)}


@router.post("/tariffs/{tariff_id}/versions", status_code=status.HTTP_201_CREATED)
async def add_tariff_version(
    tariff_id: TariffId,
    body: VersionCreate,
    pool: PoolDep,
    public_base: PublicBase,
    principal: Principal = require(Permission.TARIFF_MANAGE),
) -> dict:
    """A new effective-dated version; it may not overlap another version of the tariff."""
    async with pool.connection() as conn:
        return await tariffs.add_version(
            conn,
            principal,
            tariff_id,
            effective_from=body.effective_from,
            effective_to=body.effective_to,
            spec=body.spec,
            base_url=public_base,
        )


class UrdbVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    effective_from: Day
    effective_to: Day | None = None
    urdb: dict[str, Any]


@router.post("/tariffs/{tariff_id}/versions/urdb", status_code=status.HTTP_201_CREATED)
async def import_urdb_version(
    tariff_id: TariffId,
    body: UrdbVersion,
    pool: PoolDep,
    public_base: PublicBase,
    principal: Principal = require(Permission.TARIFF_MANAGE),
) -> dict:
    """A new version from OpenEI URDB-like JSON (with GridGate's `gridgate` extension)."""
    try:
        spec = urdb.from_urdb(body.urdb)
    except ValidationError as exc:
        problems = describe_validation_error(exc)
        raise InvalidInput(
            "; ".join(f"urdb.{f}: {m}" for f, m in problems[:10]),
            errors=[(f"urdb.{f}", m) for f, m in problems],
        ) from None
    except ValueError as exc:
        raise InvalidInput(f"urdb.{exc}", errors=[("urdb", str(exc))]) from None
    async with pool.connection() as conn:
        return await tariffs.add_version(
            conn,
            principal,
            tariff_id,
            effective_from=body.effective_from,
            effective_to=body.effective_to,
            spec=spec,
            base_url=public_base,
        )


@router.get("/tariffs/{tariff_id}/versions/{version_id}/urdb")
async def export_urdb_version(
    tariff_id: TariffId,
    version_id: TariffVersionId,
    pool: PoolDep,
    principal: Principal = require(Permission.BILLING_READ),
) -> dict:
    """The version as URDB-like JSON."""
    async with pool.connection() as conn:
        for version in await tariffs.versions(conn, principal, tariff_id):
            if version["id"] == version_id:
                try:
                    return urdb.to_urdb(TariffSpec.model_validate(version["spec"]))
                except ValueError as exc:
                    raise InvalidInput(str(exc), errors=[("urdb", str(exc))]) from None
    raise NotFound(f"no version {version_id} of tariff {tariff_id}")


@router.patch("/tariffs/{tariff_id}/versions/{version_id}")
async def update_tariff_version(
    tariff_id: TariffId,
    version_id: TariffVersionId,
    body: VersionUpdate,
    pool: PoolDep,
    principal: Principal = require(Permission.TARIFF_MANAGE),
) -> dict:
    """Change a version no issued bill has used (409 once one has)."""
    changes = body.model_dump(exclude_unset=True)
    if "spec" in changes:
        changes["spec"] = body.spec
    async with pool.connection() as conn:
        return await tariffs.update_version(conn, principal, tariff_id, version_id, changes)


class Holiday(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: text(200, min_length=1)  # type: ignore[valid-type]


@router.get("/boards/{board_id}/holidays")
async def list_holidays(
    board_id: BoardId, pool: PoolDep, principal: Principal = require(Permission.BILLING_READ)
) -> list[dict]:
    """The board's holidays (billed as weekends by time-of-day tariffs)."""
    async with pool.connection() as conn:
        return await tariffs.holidays(conn, principal, board_id)


@router.put("/boards/{board_id}/holidays/{day}", status_code=status.HTTP_204_NO_CONTENT)
async def put_holiday(
    board_id: BoardId,
    day: Day,
    body: Holiday,
    pool: PoolDep,
    principal: Principal = require(Permission.TARIFF_MANAGE),
) -> None:
    async with pool.connection() as conn:
        await tariffs.set_holiday(conn, principal, board_id, day, body.name)


@router.delete("/boards/{board_id}/holidays/{day}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_holiday(
    board_id: BoardId,
    day: Day,
    pool: PoolDep,
    principal: Principal = require(Permission.TARIFF_MANAGE),
) -> None:
    async with pool.connection() as conn:
        await tariffs.set_holiday(conn, principal, board_id, day, None)


class TariffOverrideCreate(BaseModel):
    """A temporary override of a category's energy charge over [starts_on, ends_on) of the
    board's days: `energy_rate` prices every unit at `value` instead, `multiplier` multiplies
    every energy rate by `value`."""

    model_config = ConfigDict(extra="forbid")
    category: Category
    kind: Literal["energy_rate", "multiplier"]
    value: Annotated[Decimal, Field(ge=0, le=Decimal("1e6"), max_digits=14, decimal_places=6)]
    starts_on: Day
    ends_on: Day  # exclusive: the first day it no longer applies
    reason: text(500, min_length=1)  # type: ignore[valid-type]


@router.post("/boards/{board_id}/tariff-overrides", status_code=status.HTTP_201_CREATED)
async def create_tariff_override(
    board_id: BoardId,
    body: TariffOverrideCreate,
    pool: PoolDep,
    principal: Principal = require(Permission.TARIFF_MANAGE),
) -> dict:
    """A temporary override that ends by itself (at most 366 days; audited). Bills and
    estimates price the days inside its window under it."""
    async with pool.connection() as conn:
        return await tariff_overrides.create(
            conn, principal, board_id=board_id, **body.model_dump()
        )


@router.get("/boards/{board_id}/tariff-overrides")
async def list_tariff_overrides(
    board_id: BoardId,
    pool: PoolDep,
    principal: Principal = require(Permission.BILLING_READ),
    category: Category | None = None,
) -> list[dict]:
    """The board's overrides, active, scheduled, ended and removed, the latest first."""
    async with pool.connection() as conn:
        return await tariff_overrides.list_for_board(conn, principal, board_id, category=category)


@router.delete("/tariff-overrides/{override_id}")
async def remove_tariff_override(
    override_id: TariffOverrideId,
    pool: PoolDep,
    principal: Principal = require(Permission.TARIFF_MANAGE),
) -> dict:
    """Take an override off early (audited): from today (the board's) the tariff applies as
    usual; the days before stay priced under the override."""
    async with pool.connection() as conn:
        return await tariff_overrides.remove(conn, principal, override_id)


class BillingCycle(BaseModel):
    """A board's billing cycle: the day of the month its period closes (1-28, in the board's
    zone), one month or two, whether the bills are issued as soon as they are made."""

    model_config = ConfigDict(extra="forbid")
    cycle_day: Annotated[int, Field(ge=1, le=28)]
    cycle: Literal["monthly", "bimonthly"]
    auto_issue: bool = False
    enabled: bool = True


@router.get("/boards/{board_id}/billing-cycle")
async def get_billing_cycle(
    board_id: BoardId, pool: PoolDep, principal: Principal = require(Permission.BILLING_READ)
) -> dict:
    """The board's billing cycle (`configured` false when it has none), the day its next run
    starts and its latest scheduled runs with their outcome."""
    async with pool.connection() as conn:
        return await billing_cycles.get_cycle(conn, principal, board_id)


@router.put("/boards/{board_id}/billing-cycle")
async def put_billing_cycle(
    board_id: BoardId,
    body: BillingCycle,
    pool: PoolDep,
    principal: Principal = require(Permission.BILLING_GENERATE),
) -> dict:
    """Set the board's billing cycle. The service bills each period once it closes (and issues
    the bills with `auto_issue`); a new cycle takes effect from the next period to close."""
    async with pool.connection() as conn:
        return await billing_cycles.set_cycle(conn, principal, board_id, **body.model_dump())


@router.post("/billing/runs")
async def run_billing(
    body: RunRequest, pool: PoolDep, principal: Principal = require(Permission.BILLING_GENERATE)
) -> dict:
    """Bill the board's consumers for the period: idempotent; changed bills get a new version
    that bills only the difference."""
    async with pool.connection() as conn, billing_runs.spare_connection(pool) as reader:
        return await billing_runs.run(conn, principal, reader=reader, **body.model_dump())


@router.get("/billing/runs", response_model=Page)
async def list_runs(
    pool: PoolDep,
    principal: Principal = require(Permission.BILLING_READ),
    board_id: BoardId | None = None,
    status_: Literal["running", "done", "failed"] | None = Query(None, alias="status"),
    period_start: Day | None = None,
    sort: Literal["id", "created_at", "period_start"] = "created_at",
    order: Order = "desc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page:
    """Billing runs, newest first: a running one shows how many consumers it has measured."""
    filters = {"board_id": board_id, "status": status_, "period_start": period_start}
    return await page(pool, principal, BILLING_RUNS, filters, sort, order, limit, offset)


@router.get("/billing/runs/{run_id}")
async def get_run(
    run_id: BillingRunId, pool: PoolDep, principal: Principal = require(Permission.BILLING_READ)
) -> dict:
    """One run: its progress while running, its outcome (created, revised, unchanged,
    estimated, failed, without a meter) and the reasons for the failures."""
    async with pool.connection() as conn:
        return await get_row(conn, principal, BILLING_RUNS, run_id)


@router.get("/billing/aging")
async def billing_aging(
    board_id: BoardId, pool: PoolDep, principal: Principal = require(Permission.BILLING_READ)
) -> dict:
    """What the board's consumers owe, by days past the due date."""
    async with pool.connection() as conn:
        return await invoices.aging(conn, principal, board_id, today=date.today())


class IssueMany(BaseModel):
    model_config = ConfigDict(extra="forbid")
    invoice_ids: Annotated[list[InvoiceId], Field(min_length=1, max_length=1000)]


@router.post("/invoices/issue")
async def issue_invoices(
    body: IssueMany,
    pool: PoolDep,
    public_base: PublicBase,
    principal: Principal = require(Permission.BILLING_GENERATE),
) -> dict:
    """Issue many drafts at once; each is issued on its own, and the answer says which were and
    why the others were not."""
    async with pool.connection() as conn:
        return await invoices.issue_many(conn, principal, body.invoice_ids, base_url=public_base)


@router.post("/billing/overdue")
async def mark_overdue(
    board_id: BoardId,
    pool: PoolDep,
    public_base: PublicBase,
    principal: Principal = require(Permission.BILLING_GENERATE),
) -> dict:
    async with pool.connection() as conn:
        marked = await invoices.mark_overdue(conn, principal, board_id, base_url=public_base)
        return {"marked_overdue": marked}


@router.get("/invoices", response_model=Page)
async def list_invoices(
    pool: PoolDep,
    principal: Principal = require(Permission.BILLING_READ),
    board_id: BoardId | None = None,
    consumer_id: ConsumerId | None = None,
    status_: Literal["draft", "issued", "paid", "overdue", "disputed", "cancelled"] | None = Query(
        None, alias="status"
    ),
    period_start: Day | None = None,
    estimated: bool | None = None,
    sort: Literal["id", "period_start", "due_date", "created_at", "total"] = "id",
    order: Order = "asc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page:
    filters = {
        "board_id": board_id,
        "consumer_id": consumer_id,
        "status": status_,
        "period_start": period_start,
        "estimated": estimated,
    }
    return await page(pool, principal, INVOICES, filters, sort, order, limit, offset)


@router.get("/invoices/{invoice_id}")
async def get_invoice(
    invoice_id: InvoiceId, pool: PoolDep, principal: Principal = require(Permission.BILLING_READ)
) -> dict:
    """The invoice with every line, payment and dispute."""
    async with pool.connection() as conn:
        return await invoices.get(conn, principal, invoice_id)


@router.get(
    "/invoices/{invoice_id}/pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def invoice_pdf(
    invoice_id: InvoiceId, pool: PoolDep, principal: Principal = require(Permission.BILLING_READ)
) -> Response:
    """The invoice as a PDF, with a chart of the consumer's daily consumption."""
    async with pool.connection() as conn:
        name, body = await invoices.pdf(conn, principal, invoice_id)
    return Response(
        body,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )


@router.get(
    "/invoices/{invoice_id}/export.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def invoice_csv(
    invoice_id: InvoiceId, pool: PoolDep, principal: Principal = require(Permission.BILLING_READ)
) -> Response:
    """The invoice for accounting: its lines, totals and payments as CSV (exact amounts)."""
    async with pool.connection() as conn:
        name, body = await invoices.csv_export(conn, principal, invoice_id)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


EARLIEST_AS_OF = datetime(2000, 1, 1, tzinfo=UTC)


@router.get("/consumers/{consumer_id}/estimate")
async def consumer_estimate(
    consumer_id: ConsumerId,
    pool: PoolDep,
    as_of: Instant | None = None,
    principal: Principal = require(Permission.BILLING_READ),
) -> dict:
    """This month so far and the bill it is heading for, at the same daily rate; `as_of` (a past
    instant, with its zone) asks how it looked then."""
    now = datetime.now(UTC)
    if as_of is not None and not EARLIEST_AS_OF <= as_of <= now:
        raise InvalidInput(
            f"as_of must lie between {EARLIEST_AS_OF:%Y-%m-%d} and now",
            errors=[("as_of", as_of.isoformat())],
        )
    async with pool.connection() as conn:
        return await estimates.estimate(conn, principal, consumer_id, now=as_of or now)


@router.post("/invoices/{invoice_id}/issue")
async def issue_invoice(
    invoice_id: InvoiceId,
    pool: PoolDep,
    public_base: PublicBase,
    principal: Principal = require(Permission.BILLING_GENERATE),
) -> dict:
    async with pool.connection() as conn:
        return await invoices.issue(conn, principal, invoice_id, base_url=public_base)


@router.post("/invoices/{invoice_id}/cancel")
async def cancel_invoice(
    invoice_id: InvoiceId,
    pool: PoolDep,
    principal: Principal = require(Permission.BILLING_RECALCULATE),
) -> dict:
    async with pool.connection() as conn:
        return await invoices.cancel(conn, principal, invoice_id)


@router.post("/invoices/{invoice_id}/payments", status_code=status.HTTP_201_CREATED)
async def pay_invoice(
    invoice_id: InvoiceId,
    body: PaymentCreate,
    pool: PoolDep,
    public_base: PublicBase,
    principal: Principal = require(Permission.BILLING_COLLECT),
) -> dict:
    async with pool.connection() as conn:
        return await invoices.pay(
            conn, principal, invoice_id, **body.model_dump(), base_url=public_base
        )


@router.post("/invoices/{invoice_id}/disputes", status_code=status.HTTP_201_CREATED)
async def dispute_invoice(
    invoice_id: InvoiceId,
    body: DisputeCreate,
    pool: PoolDep,
    principal: Principal = require(Permission.BILLING_DISPUTE),
) -> dict:
    async with pool.connection() as conn:
        return await invoices.open_dispute(conn, principal, invoice_id, reason=body.reason)


@router.post("/invoices/{invoice_id}/disputes/resolve")
async def resolve_dispute(
    invoice_id: InvoiceId,
    body: DisputeResolve,
    pool: PoolDep,
    public_base: PublicBase,
    principal: Principal = require(Permission.BILLING_RECALCULATE),
) -> dict:
    async with pool.connection() as conn:
        return await invoices.resolve_dispute(
            conn, principal, invoice_id, **body.model_dump(), base_url=public_base
        )
