"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

import psycopg
import structlog
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from .api import (
    account,
    alerts,
    analytics,
    api_keys,
    audit,
    auth,
    billing,
    boards,
    broadcasts,
    deliveries,
    docs,
    fleet,
    gateway_commands,
    gateway_configs,
    gateways,
    health,
    ingest,
    insights,
    notifications,
    payments,
    report_setup,
    reports,
    software,
    support,
    users,
)
from .api.limits import RateLimit
from .dashboard import routes as dashboard
from .dashboard.web import unknown_page
from .db import open_pool
from .errors import CloudError
from .jobs import run_jobs
from .mail.sender import run_sender
from .mail.smtp import SmtpTarget
from .metrics import Metrics
from .metrics import install as install_metrics
from .middleware import BodyLimit, SecurityHeaders
from .migrate import migrate
from .reports.storage import storage_for
from .services import sms_outbox
from .services.alert_feed import AlertFeed
from .services.api_keys import KeyCache
from .services.auth import resolve_jwt_secret
from .services.gateway_control import signing_key
from .services.rate_limits import RateLimits
from .services.sessions import SessionCache
from .settings import CloudSettings
from .sms.sender import run_sender as run_sms_sender
from .sms.webhook import WebhookTarget

log = structlog.get_logger(__name__)


def _a_page(path: str) -> bool:
    """An address of the web app's pages (not its static files, not the API)."""
    return (path == "/dashboard" or path.startswith("/dashboard/")) and not path.startswith(
        "/dashboard/static/"
    )


class GridgateApp(FastAPI):
    """FastAPI with the security headers outermost: they reach every response, a server
    error's too (Starlette's error middleware otherwise sits outside every other)."""

    def build_middleware_stack(self) -> SecurityHeaders:
        return SecurityHeaders(super().build_middleware_stack())


def create_app(settings: CloudSettings, database_url: str) -> FastAPI:
    """An app bound to one database; the pool opens and migrations run at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_pool(database_url, settings) as pool, _read_pool(pool) as read_pool:
            async with pool.connection() as conn:
                await migrate(conn)
            app.state.pool = pool
            app.state.read_pool = read_pool
            app.state.database_url = database_url
            app.state.alert_feed = AlertFeed(database_url)
            await app.state.alert_feed.start()
            jobs = None
            if settings.jobs_interval_s:
                jobs = asyncio.create_task(run_jobs(pool, settings, app.state.report_storage))
            stop_mail, mail = asyncio.Event(), None
            if settings.smtp_url:
                mail = asyncio.create_task(run_sender(pool, settings, stop_mail))
            else:
                log.warning("no GRIDGATE_SMTP_URL: e-mail waits in the outbox until one is set")
            sms_outbox.configure(settings)  # texts are queued only with a provider to send them
            stop_sms, sms = asyncio.Event(), None
            if settings.sms_webhook_url:
                sms = asyncio.create_task(run_sms_sender(pool, settings, stop_sms))
            else:
                log.info("no GRIDGATE_SMS_WEBHOOK_URL: text messages are recorded as not sent")
            try:
                yield
            finally:
                await app.state.alert_feed.stop()
                if jobs is not None:
                    jobs.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await jobs
                if mail is not None:
                    stop_mail.set()  # a message being sent is finished, not cut off
                    try:
                        await asyncio.wait_for(mail, 35)
                    except TimeoutError:
                        log.warning("e-mail sender did not stop in time")
                sms_outbox.configure(None)
                if sms is not None:
                    stop_sms.set()  # a request in flight is finished, not cut off
                    try:
                        await asyncio.wait_for(sms, settings.sms_timeout_s + 5)
                    except TimeoutError:
                        log.warning("SMS sender did not stop in time")

    @asynccontextmanager
    async def _read_pool(primary: AsyncConnectionPool) -> AsyncIterator[AsyncConnectionPool]:
        """The replica's pool for the charts' reads, or the primary's when there is none."""
        if not settings.replica_url:
            yield primary
            return
        async with open_pool(
            settings.replica_url, settings, role="gridgate-cloud-replica"
        ) as replica:
            yield replica

    app = GridgateApp(
        title="GridGate cloud",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # served offline by cloud.api.docs
        redoc_url=None,
    )
    if settings.smtp_url:
        SmtpTarget.from_url(settings.smtp_url)  # a malformed URL stops the start, not the mail
    if settings.sms_webhook_url:
        WebhookTarget.from_settings(settings)  # so do a bad SMS URL and a missing secret
    app.state.settings = settings
    app.state.jwt_secret = resolve_jwt_secret(settings)
    app.state.cloud_key = signing_key(settings)
    app.state.sessions = SessionCache(settings.session_check_s)
    app.state.api_keys = KeyCache(settings.session_check_s)
    app.state.rate_limits = RateLimits.from_settings(settings)
    app.state.metrics = Metrics()
    app.state.report_storage = storage_for(
        settings.data_dir, settings.reports_s3_bucket, settings.reports_s3_endpoint
    )
    app.state.tasks = set()  # background jobs started by requests (kept referenced)
    # the body bound and the rate limit sit inside the metrics middleware, so their 413s and
    # 429s are counted like any answer
    app.add_middleware(RateLimit)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    install_metrics(app, app.state.metrics, settings)

    @app.exception_handler(CloudError)
    async def cloud_error(_request: Request, exc: CloudError) -> JSONResponse:
        retry_after = getattr(exc, "retry_after_s", None)
        return JSONResponse(
            {
                "detail": str(exc),
                "errors": [{"field": field, "message": message} for field, message in exc.errors],
            },
            status_code=exc.status_code,
            headers={"Retry-After": str(retry_after)} if retry_after else None,
        )

    @app.exception_handler(psycopg.DataError)
    async def data_error(_request: Request, exc: psycopg.DataError) -> JSONResponse:
        # input validation should stop these first; this keeps a miss a client error, not a 500
        return JSONResponse(
            {"detail": f"a value is not acceptable: {exc}", "errors": []}, status_code=422
        )

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    async def database_away(_request: Request, exc: Exception) -> JSONResponse:
        # the database restarting, failing over or out of connections: a moment's wait, not a
        # server fault; a gateway resends its batch (writes are idempotent), a page retries
        log.warning("database unavailable", error=str(exc).splitlines()[0] if str(exc) else "")
        return JSONResponse(
            {"detail": "the database is not reachable just now; try again shortly", "errors": []},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> Response:
        if request.method == "GET" and _a_page(request.url.path):
            return await unknown_page(request)  # /dashboard/consumers/abc: no such page
        problems = [
            (".".join(str(p) for p in e["loc"]), e["msg"].removeprefix("Value error, "))
            for e in exc.errors()
        ]
        # `errors` keeps the whole location for programs; the sentence a page shows a person
        # names the field as its form does: not "body.emails.1", but "emails"
        said = [
            (
                ".".join(str(p) for p in e["loc"][1:] if not isinstance(p, int))
                or str(e["loc"][0]),
                m,
            )
            for e, (_, m) in zip(exc.errors(), problems, strict=True)
        ]
        return JSONResponse(
            {
                "detail": "; ".join(f"{f}: {m}" for f, m in said[:10]),
                "errors": [{"field": f, "message": m} for f, m in problems],
            },
            status_code=422,
        )

    app.mount("/dashboard/static", dashboard.static, name="dashboard-static")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # a person who mistypes a page's address gets the app's page, a program the JSON
        if exc.status_code == 404 and request.method == "GET" and _a_page(request.url.path):
            return await unknown_page(request)
        return await http_exception_handler(request, exc)

    @app.exception_handler(dashboard.LoginNeeded)
    async def login_needed(_request: Request, exc: dashboard.LoginNeeded) -> RedirectResponse:
        # try the refresh cookie first; that page sends to the login form if it cannot
        return RedirectResponse(
            f"/dashboard/session/refresh?next={quote(exc.next_url)}", status_code=303
        )

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/dashboard", status_code=303)

    app.include_router(dashboard.router)
    docs.install(app)
    for module in (
        health,
        auth,
        gateways,
        ingest,
        fleet,
        boards,
        account,  # before users: /users/me is not /users/{user_id}
        users,
        api_keys,
        billing,
        insights,
        payments,
        alerts,
        reports,
        report_setup,
        audit,
        analytics,
        notifications,
        broadcasts,
        deliveries,
        support,
        software,
    ):
        app.include_router(module.router)
    app.include_router(gateway_commands.people)
    app.include_router(gateway_commands.gateways)
    app.include_router(gateway_configs.people)
    app.include_router(gateway_configs.gateways)
    app.include_router(report_setup.links)
    return app
