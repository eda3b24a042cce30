"""Dependencies shared by the routes, as Annotated aliases so handlers read like signatures."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from ..metrics import Metrics
from ..settings import CloudSettings


def _pool(request: Request) -> AsyncConnectionPool:
    return request.app.state.pool


def _settings(request: Request) -> CloudSettings:
    return request.app.state.settings


def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics


PoolDep = Annotated[AsyncConnectionPool, Depends(_pool)]
SettingsDep = Annotated[CloudSettings, Depends(_settings)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
