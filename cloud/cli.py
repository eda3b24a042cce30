"""`gridgate cloud`: serve, migrate, and the admin's commands."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import textwrap
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any, TypeVar

import psycopg
import typer
from psycopg.rows import dict_row
from pydantic import ValidationError

from .billing.engine import month_of
from .db import database_url
from .errors import CloudError
from .migrate import migrate
from .services import auth, billing_runs, enrollment, fleet, invoices, notifications, sms_outbox
from .settings import CloudSettings
from .sms.errors import SmsConfigError

app = typer.Typer(
    rich_markup_mode="markdown",
    help="The cloud service: serve, migrate, admin, billing.",
    no_args_is_help=True,
)
admin = typer.Typer(
    rich_markup_mode="markdown",
    help="States, boards, users and gateways: create-state, create-board, create-user,"
    " enroll-token, revoke-gateway.",
    no_args_is_help=True,
)
app.add_typer(admin, name="admin")
T = TypeVar("T")
STOP_GRACE_S = 20  # how long `serve` waits on a stop for the requests in flight


@app.callback()
def _cloud(ctx: typer.Context) -> None:
    # A one-off command answers a person: its routine steps (the embedded PostgreSQL started,
    # each migration applied) are not theirs to read unless they ask with --log-level. `serve`
    # is a service: its log is its output.
    root = ctx.find_root().params
    if ctx.invoked_subcommand != "serve" and root.get("log_level") is None:
        from shared import configure_logging

        configure_logging("INFO", json_output=root.get("json_logs"), terminal_level="WARNING")


def _refuse(message: str) -> typer.Exit:
    """Say on stderr why the command stops, wrapped to the terminal (at most 80 columns), and
    the exit to raise: 2."""
    width = min(shutil.get_terminal_size().columns, 80)
    typer.echo(textwrap.fill(f"gridgate cloud: {message}", width, subsequent_indent="  "), err=True)
    return typer.Exit(2)


def _settings(**changes: Any) -> CloudSettings:
    """The settings from the environment and the command line; a bad one stops the command with
    a message naming its variable."""
    try:
        return CloudSettings(**changes)
    except ValidationError as exc:
        for problem in exc.errors():
            name = "GRIDGATE_" + "_".join(str(p) for p in problem["loc"]).upper()
            typer.echo(f"gridgate cloud: {name}: {problem['msg']}", err=True)
        raise typer.Exit(2) from None


def _with_connection(work: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
    settings = _settings()

    async def run(url: str) -> T:
        sms_outbox.configure(settings)  # a bill marked overdue here is texted as from the app
        async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
            await migrate(conn)
            await conn.set_autocommit(False)
            return await work(conn)

    try:
        with database_url(settings) as url:
            return asyncio.run(run(url))
    except CloudError as exc:
        raise _refuse(str(exc)) from None
    except psycopg.OperationalError as exc:
        raise _refuse(f"cannot reach the database: {exc}") from None


@app.command("migrate")
def migrate_command() -> None:
    """Apply the schema migrations that are missing (they also run at start-up).

    Example: GRIDGATE_DATABASE_URL=postgresql://... gridgate cloud migrate
    """

    async def work(conn: psycopg.AsyncConnection) -> list[str]:
        return await migrate(conn)

    _with_connection(work)
    typer.echo("schema is up to date")


@app.command()
def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(None, help="Listen address (GRIDGATE_HOST)."),
    port: int | None = typer.Option(None, help="Port (GRIDGATE_PORT; 0 picks a free one)."),
    workers: int | None = typer.Option(
        None, min=1, max=64, help="Server processes sharing the port (GRIDGATE_WORKERS; 1)."
    ),
) -> None:
    """Run the API. Uses GRIDGATE_DATABASE_URL, else an embedded PostgreSQL in GRIDGATE_DATA_DIR.

    With --workers N, N processes serve the port (started once more if one dies); the periodic
    jobs still run once per interval between them.

    Example: gridgate cloud serve --port 8000 --workers 4
    """
    import uvicorn

    from .app import create_app
    from .metrics import MULTIPROCESS_VARIABLE
    from .served import FACTORY, PLAN_VARIABLE, worker_plan

    given = (("host", host), ("port", port), ("workers", workers))
    changes: dict[str, Any] = {k: v for k, v in given if v is not None}
    settings = _settings(**changes)
    served = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        # the client address (login limits, audit) and https (HSTS, secure cookies) are
        # taken from X-Forwarded-* only when the request comes from these proxies
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        # a stop waits this long for the requests in flight, then ends those left (a stream a
        # client never closes): it is over well before a service manager's kill
        "timeout_graceful_shutdown": STOP_GRACE_S,
    }
    with database_url(settings) as url:  # an embedded server starts here, once
        try:
            # built here whatever the workers: a bad setting stops the start with its reason,
            # and the secrets in the data directory are made before any worker looks for them
            cloud = create_app(settings, url)
        except SmsConfigError as exc:
            raise _refuse(str(exc)) from None
        if settings.workers == 1:
            uvicorn.run(cloud, **served)
            return
        logging = ctx.find_root().params
        os.environ[PLAN_VARIABLE] = worker_plan(
            url,
            changes,
            log_level=logging.get("log_level") or "INFO",
            json_logs=logging.get("json_logs"),
        )
        # the workers' metrics, summed at every scrape (cloud/metrics.py); a fresh folder at
        # every start, so the counts are the service's since it started
        with tempfile.TemporaryDirectory(prefix="gridgate-metrics-") as metrics_folder:
            os.environ[MULTIPROCESS_VARIABLE] = metrics_folder
            uvicorn.run(FACTORY, factory=True, workers=settings.workers, **served)


@admin.command("create-state")
def create_state(code: str = typer.Option(...), name: str = typer.Option(...)) -> None:
    """Create a state. Example: gridgate cloud admin create-state --code DL --name Delhi"""
    _with_connection(lambda conn: fleet.create_state(conn, code=code, name=name, actor="cli"))
    typer.echo(f"state {code} created")


@admin.command("create-board")
def create_board(
    state: str = typer.Option(..., help="State code."),
    code: str = typer.Option(...),
    name: str = typer.Option(...),
    time_zone: str = typer.Option("Asia/Kolkata"),
) -> None:
    """Create a board (DISCOM).

    Example: gridgate cloud admin create-board --state DL --code BRPL --name "BSES Rajdhani"
    """
    _with_connection(
        lambda conn: fleet.create_board(
            conn, state_code=state, code=code, name=name, time_zone=time_zone, actor="cli"
        )
    )
    typer.echo(f"board {code} created")


@admin.command("enroll-token")
def enroll_token(
    board: str = typer.Option(..., help="Board code the gateway will belong to."),
    ttl_s: int = typer.Option(86400, min=60, max=7 * 86400, help="Validity in seconds."),
    gateway: str | None = typer.Option(
        None, help="Re-key this enrolled gateway of BOARD (a lost key, a new SD card)."
    ),
) -> None:
    """Print a one-time enrollment token for a new gateway of BOARD, or one that re-keys an
    enrolled gateway (--gateway).

    Example: gridgate cloud admin enroll-token --board BRPL
    """
    token, expires = _with_connection(
        lambda conn: enrollment.create_token(
            conn, board_code=board, ttl_s=ttl_s, actor="cli", gateway_code=gateway
        )
    )
    typer.echo(token)
    typer.echo(f"valid until {expires.astimezone():%Y-%m-%d %H:%M %Z}, once", err=True)


@admin.command("create-user")
def create_user(
    email: str = typer.Option(...),
    role: str = typer.Option(
        ...,
        help="SUPER_ADMIN, STATE_ADMIN, BOARD_ADMIN, SUPPORT_AGENT, "
        "AUDITOR, TECHNICIAN or CONSUMER.",
    ),
    state: str | None = typer.Option(None, help="State code (STATE_ADMIN)."),
    board: str | None = typer.Option(None, help="Board code (board-scoped roles)."),
    password: str | None = typer.Option(
        None,
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        help="Asked for twice when not given (better than leaving it in the shell's history).",
    ),
) -> None:
    """Create a user (the password is asked for).

    Example: gridgate cloud admin create-user --email a@b.in --role BOARD_ADMIN --board BRPL
    """
    _with_connection(
        lambda conn: auth.create_user(
            conn,
            email=email,
            password=password or "",
            role=role.upper(),
            state_code=state,
            board_code=board,
            actor="cli",
        )
    )
    typer.echo(f"user {email} created")


@admin.command("revoke-gateway")
def revoke_gateway(gateway: str = typer.Option(...)) -> None:
    """Revoke a gateway's key: its batches are refused from now on."""
    _with_connection(lambda conn: enrollment.revoke(conn, gateway_code=gateway, actor="cli"))
    typer.echo(f"gateway {gateway} revoked")


billing = typer.Typer(
    rich_markup_mode="markdown",
    help="A board's bills: run (bill a month), overdue (mark bills past their due date).",
    no_args_is_help=True,
)
app.add_typer(billing, name="billing")
_OPERATOR = auth.Principal(
    user_id=0, role="SUPER_ADMIN", state_id=None, board_id=None, consumer_id=None
)


def _month(text: str) -> tuple[date, date]:
    try:
        start = datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        typer.echo(f"gridgate cloud: --period {text!r} must look like 2026-10", err=True)
        raise typer.Exit(2) from None
    return month_of(start)


@billing.command("run")
def billing_run(
    board: str = typer.Option(..., help="The board's code."),
    period: str = typer.Option(..., help="The calendar month to bill, e.g. 2026-10."),
) -> None:
    """Bill every consumer of the board for the month; running it again creates nothing.

    Changed data (late readings, a corrected tariff) makes a new version that bills the
    difference.

    Example: gridgate cloud billing run --board BRPL --period 2026-10
    """
    start, end = _month(period)

    async def work(conn: psycopg.AsyncConnection) -> dict:
        board_id = (await fleet.board_by_code(conn, board))["id"]
        return await billing_runs.run(
            conn, _OPERATOR, board_id=board_id, period_start=start, period_end=end
        )

    summary = _with_connection(work)
    width = shutil.get_terminal_size().columns
    typer.echo(describe_billing_run(board, start, summary, width))
    for error in summary["errors"]:
        typer.echo(
            textwrap.fill(error, width, initial_indent="  ", subsequent_indent="    "), err=True
        )
    if summary["failed"]:
        raise typer.Exit(1)


def describe_billing_run(board: str, start: date, summary: dict, width: int) -> str:
    """What a billing run did, in lines of at most `width` characters: the bills made, revised,
    left as they were and failed; then how many were estimated and how many consumers had no
    meter to bill from."""
    lines = [
        f"{board}, {start:%B %Y}: {summary['created']} created, {summary['revised']} revised,"
        f" {summary['unchanged']} unchanged, {summary['failed']} failed",
        f"  {summary['estimated']} of them estimated, {summary['unmeasured']} consumers without"
        " a meter",
    ]
    return "\n".join(
        "\n".join(textwrap.wrap(line, width, subsequent_indent="  ")) for line in lines
    )


@billing.command("overdue")
def billing_overdue(board: str = typer.Option(..., help="The board's code.")) -> None:
    """Mark the board's issued bills past their due date as overdue.

    Example: gridgate cloud billing overdue --board BRPL
    """

    async def work(conn: psycopg.AsyncConnection) -> int:
        board_id = (await fleet.board_by_code(conn, board))["id"]
        links = notifications.base_url(CloudSettings())
        return await invoices.mark_overdue(conn, _OPERATOR, board_id, base_url=links)

    typer.echo(f"{_with_connection(work)} invoices marked overdue")
