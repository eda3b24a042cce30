"""Logging, set up once per process by the command that starts it.

structlog renders JSON lines when stderr is not a terminal (systemd's journal, CI, files) and
readable coloured lines when it is. The standard library's loggers (uvicorn, pymodbus, amqtt) are
routed through the same renderer so every line looks alike; libraries that log each routine step
(HTTP requests, broker state changes) are heard only when they warn, unless the level is DEBUG.
Libraries whose failures we catch and report ourselves (pymodbus) are heard only at DEBUG, and
then as debug lines.
Values under keys that name secrets are replaced before rendering: a password or token never
reaches a log.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

SECRET_KEYS = frozenset(
    {"password", "token", "secret", "private_key", "authorization", "refresh_token", "access_token"}
)


# Libraries that narrate their routine work at INFO (every HTTP request, every state-machine
# callback, every embedded-server command): at INFO and above only their warnings are shown;
# `--log-level DEBUG` shows everything.
CHATTY_LIBRARIES = ("httpx", "httpcore", "transitions", "amqtt", "pgserver", "hpack", "mail.log")

# Libraries whose errors are ours to report. pymodbus logs every unanswered or damaged
# transaction at ERROR ("No response received…") with a hex dump of the last twenty frames
# (kilobytes a line), although the transport has already turned it into a typed error that the
# daemon logs as a warning and the technician's commands print as a sentence. Their records are
# debug detail: dropped unless the level is DEBUG, and then rendered as debug lines.
DEBUG_ONLY_LIBRARIES = ("pymodbus",)


def _redact_secrets(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in event.keys() & SECRET_KEYS:
        event[key] = "[redacted]"
    return event


def _demote_to_debug(record: logging.LogRecord) -> bool:
    if record.name.partition(".")[0] in DEBUG_ONLY_LIBRARIES:
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return True


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of each record (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str = "INFO", *, json_output: bool | None = None) -> None:
    """Configure structlog and the standard library once, at process start-up.

    `json_output=None` chooses JSON when stderr is not a TTY.
    """
    if json_output is None:
        json_output = not sys.stderr.isatty()
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared_processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if json_output else (lambda _l, _n, e: e),
            renderer,
        ],
    )
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    handler.addFilter(_demote_to_debug)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet = logging.WARNING if root.level > logging.DEBUG else logging.NOTSET
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(quiet)
    # above CRITICAL: pymodbus asks `isEnabledFor` before it builds a message or a frame dump
    debug_only = logging.NOTSET if root.level <= logging.DEBUG else logging.CRITICAL + 1
    for name in DEBUG_ONLY_LIBRARIES:
        logging.getLogger(name).setLevel(debug_only)
