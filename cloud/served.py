"""Several server processes on one port (`gridgate cloud serve --workers N`).

uvicorn's supervisor binds the port once, starts N worker processes that share it (the kernel
hands each new connection to one of them), replaces a worker that dies, and stops them all on
SIGTERM. A worker builds its app with `create_served_app`, from the plan the parent wrote into
its environment: the database URL the parent resolved — so an embedded PostgreSQL is started
once, by the parent, and outlives every worker — the command line's settings, and how to log.

What the processes share lives in PostgreSQL or the data directory, never in one process's
memory: the periodic jobs claim each interval (`services/job_runs.py`), billing cycles and
report schedules their periods, rate limits count in a table, live streams hear every
process's changes through LISTEN/NOTIFY, and the signing secrets are files made once.
"""

from __future__ import annotations

import json
import os
from typing import Any

from fastapi import FastAPI

from shared import configure_logging

from .app import create_app
from .settings import CloudSettings

PLAN_VARIABLE = "GRIDGATE_SERVE_PLAN"
FACTORY = "cloud.served:create_served_app"


def worker_plan(
    database_url: str, changes: dict[str, Any], *, log_level: str, json_logs: bool | None
) -> str:
    """What a worker needs beyond the environment it inherits, as the plan's text."""
    return json.dumps(
        {
            "database_url": database_url,
            "settings": changes,
            "log_level": log_level,
            "json_logs": json_logs,
        }
    )


def create_served_app() -> FastAPI:
    """uvicorn's app factory in a worker process: the app the parent's plan describes."""
    plan = json.loads(os.environ[PLAN_VARIABLE])
    configure_logging(plan["log_level"], json_output=plan["json_logs"])
    settings = CloudSettings(**plan["settings"])
    return create_app(settings, plan["database_url"])
