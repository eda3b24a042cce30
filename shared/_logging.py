"""Logging, set up once per process by the command that starts it.

structlog renders JSON lines when stderr is not a terminal (systemd's journal, CI, files) and,
when it is, lines a person reads: the local time with its zone, the level, the event and its
context, wrapped to the terminal's width. A command may show a person less than it keeps: only
warnings on the terminal, every record at the level in a file of JSON lines (the demo's log).
The standard library's loggers (uvicorn, pymodbus, amqtt) are
routed through the same renderer so every line looks alike; libraries that log each routine step
(HTTP requests, broker state changes) are heard only when they warn, unless the level is DEBUG.
Libraries whose failures we catch and report ourselves (pymodbus) are heard only at DEBUG, and
then as debug lines.
Values under keys that name secrets are replaced before rendering: a password or token never
reaches a log.
"""

from __future__ import annotations

import logging
import shutil
import sys
import textwrap
from datetime import datetime
from pathlib import Path
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


class _TerminalLines:
    """A record as a person reads it: `12:55:02 IST warning: event key=value`, in as many lines
    as the terminal's width needs (the rest indented), then its traceback if it has one. The
    logger's name only at DEBUG, where it says which library spoke."""

    def __init__(self, *, show_logger: bool) -> None:
        self.show_logger = show_logger

    def __call__(self, _logger: Any, _name: str, event: dict[str, Any]) -> str:
        stamp = event.pop("timestamp", None)
        level = event.pop("level", "info")
        logger_name = event.pop("logger", None)
        text = str(event.pop("event", ""))
        traceback = event.pop("exception", None)
        when = datetime.fromisoformat(stamp).astimezone() if stamp else datetime.now().astimezone()
        words = [f"{when:%H:%M:%S %Z}", text if level == "info" else f"{level}: {text}"]
        words += [f"{key}={value}" for key, value in event.items()]
        if self.show_logger and logger_name:
            words.append(f"[{logger_name}]")
        width = shutil.get_terminal_size().columns
        lines = textwrap.wrap(
            " ".join(words), width, subsequent_indent="    ", break_on_hyphens=False
        )
        return "\n".join([*lines, *([traceback] if traceback else [])])


def configure_logging(
    level: str = "INFO",
    *,
    json_output: bool | None = None,
    terminal_level: str | None = None,
    log_file: Path | None = None,
) -> None:
    """Configure structlog and the standard library once, at process start-up (a command may
    configure it again once it knows what it is).

    `json_output=None` chooses JSON when stderr is not a TTY. `terminal_level` hides from stderr
    what is below it (a person's command: "WARNING"); `log_file` also keeps every record at
    `level` in that file, as JSON lines.
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
    structlog.configure(
        processors=[*shared_processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    level_number = logging.getLevelName(level.upper())

    def formatter(renderer: Any) -> logging.Formatter:
        return structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared_processors,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )

    json_lines = structlog.processors.JSONRenderer()
    handler = _StderrHandler()
    handler.setFormatter(
        formatter(
            json_lines if json_output else _TerminalLines(show_logger=level_number <= logging.DEBUG)
        )
    )
    if terminal_level is not None:
        handler.setLevel(max(level_number, logging.getLevelName(terminal_level.upper())))
    handlers: list[logging.Handler] = [handler]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        kept = logging.FileHandler(log_file, encoding="utf-8")
        kept.setFormatter(formatter(json_lines))
        handlers.append(kept)
    root = logging.getLogger()
    for old in root.handlers:
        if old not in handlers and isinstance(old, logging.FileHandler):
            old.close()
    for each in handlers:
        each.addFilter(_demote_to_debug)
    root.handlers[:] = handlers
    root.setLevel(level_number)
    quiet = logging.WARNING if root.level > logging.DEBUG else logging.NOTSET
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(quiet)
    # above CRITICAL: pymodbus asks `isEnabledFor` before it builds a message or a frame dump
    debug_only = logging.NOTSET if root.level <= logging.DEBUG else logging.CRITICAL + 1
    for name in DEBUG_ONLY_LIBRARIES:
        logging.getLogger(name).setLevel(debug_only)
