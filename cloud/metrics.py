"""Prometheus metrics, one registry per app (no process-global state): requests by route and
status, request latency, and what ingest stored.

Under `gridgate cloud serve --workers N` each worker counts for itself and a scrape reaches one
of them: the service then gives its workers one folder (`MULTIPROCESS_VARIABLE`, set before
they start), prometheus_client keeps each process's values in files there, and `/metrics` sums
every worker's, those of a worker that died and was replaced included (they are counts since
the service started)."""

from __future__ import annotations

import hmac
import os
import time

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as render
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .settings import CloudSettings

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# prometheus_client's: read when it is imported, so set before a worker process starts
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gridgate_http_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gridgate_http_request_seconds",
            "HTTP request latency",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.ingest_batches = Counter(
            "gridgate_ingest_batches", "Batches acknowledged", registry=self.registry
        )
        self.ingest_readings = Counter(
            "gridgate_ingest_readings", "Readings stored (new, not replays)", registry=self.registry
        )
        self.ingest_events = Counter(
            "gridgate_ingest_events", "Events stored", registry=self.registry
        )

    def render(self) -> Response:
        registry = self.registry
        if os.environ.get(MULTIPROCESS_VARIABLE):  # every worker's values, from their files
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        return Response(render(registry), media_type=CONTENT_TYPE_LATEST)


class MeasureRequests:
    """Counts and times each HTTP request (plain ASGI: no task or body buffering per request)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception becomes the server's 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")  # the router records the matched route in the scope
            template = getattr(route, "path", "unmatched")
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - started)


def install(app: FastAPI, metrics: Metrics, settings: CloudSettings) -> None:
    """Count every request by its route template (never the raw path: unbounded labels), and
    serve them at /metrics: to anyone if `metrics_public`, else to a scraper presenting
    `metrics_token` as a bearer token; with neither set, /metrics is not there."""

    app.add_middleware(MeasureRequests, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    async def expose(request: Request) -> Response:
        if settings.metrics_public:
            return metrics.render()
        if settings.metrics_token is None:
            return JSONResponse(
                {
                    "detail": "metrics are not served: set GRIDGATE_METRICS_TOKEN (a scraper's"
                    " bearer token) or GRIDGATE_METRICS_PUBLIC=true",
                    "errors": [],
                },
                status_code=404,
            )
        given = request.headers.get("authorization", "")
        expected = f"Bearer {settings.metrics_token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return JSONResponse(
                {"detail": "metrics need the scraper's bearer token", "errors": []},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return metrics.render()
