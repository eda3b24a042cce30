"""The daemon's last lines of log, kept in memory for the cloud's `upload_log` command.

A logging handler on the root logger keeps the most recent lines as JSON, rendered after the
shared processors have replaced the values of secret-named keys; what looks like a secret inside
free text (`password=...`, `token: ...`, a bearer token) is blanked as well. Bounded: at most
`MAX_LINES` lines of at most `MAX_LINE_CHARS` characters each.
"""

from __future__ import annotations

import collections
import logging
import re

import structlog

from shared import MAX_LOG_LINES

MAX_LINES = MAX_LOG_LINES
MAX_LINE_CHARS = 2000
# the gateway's own loggers (a demo runs the cloud and the simulated meters in the same process:
# their lines are not the gateway's log)
OURS = ("edge", "protocols", "shared", "gridgate", "pymodbus", "aiomqtt", "dlms_cosem")
_SECRET_TEXT = re.compile(
    r"(?i)((?:password|passwd|secret|token|api[_-]?key|authorization)\s*[=:]\s*)(\"[^\"]*\"|\S+)"
    r"|(bearer\s+)[A-Za-z0-9._~+/=-]+"
)


def redact(line: str) -> str:
    return _SECRET_TEXT.sub(
        lambda m: f"{m.group(1)}[redacted]" if m.group(1) else f"{m.group(3)}[redacted]", line
    )


class RecentLog(logging.Handler):
    def __init__(self, lines: int = MAX_LINES) -> None:
        super().__init__(level=logging.INFO)
        self._lines: collections.deque[str] = collections.deque(maxlen=lines)
        self.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer(),
                ],
            )
        )

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(OURS):
            return
        try:
            line = self.format(record)
        except Exception:  # a line that cannot be rendered is not worth a crash
            line = f"{record.levelname} {record.name}: {record.getMessage()}"
        self._lines.append(redact(line)[:MAX_LINE_CHARS])

    def last(self, count: int) -> list[str]:
        count = max(0, min(count, len(self._lines)))
        return list(self._lines)[len(self._lines) - count :]

    def install(self) -> None:
        logging.getLogger().addHandler(self)

    def remove(self) -> None:
        logging.getLogger().removeHandler(self)
