"""The control channel of the contract: commands from the cloud to a gateway, and their results.

A gateway learns that commands (or a new configuration) wait from `Ack.commands_waiting`, or
asks at start-up, then posts a signed `ControlRequest` to `POST /api/v1/control/exchange`: the
results of the commands it has finished since it last reported, and what configuration it runs.
The cloud records them (a result is recorded once; sending it again changes nothing) and
answers a `ControlReply` with the commands still to run, and the desired configuration when the
gateway has not handled its version yet, signed with the cloud's own key
(`CLOUD_SIGNATURE_HEADER`), which the gateway verifies against the key it was given when it
enrolled. A gateway runs each command at most once: it remembers a command's id before it
starts it, across restarts and power cuts, and a command it was running when it stopped is
reported as interrupted, never started again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from ._gateway_config import ConfigReport, DesiredConfig
from ._models import Identifier, QuantityCode, UtcDatetime
from ._software import SoftwareVersion

CLOUD_SIGNATURE_HEADER = "X-Gridgate-Cloud-Signature"
MAX_COMMANDS = 20  # commands handed over in one reply
MAX_RESULTS = 50  # results reported in one request
MAX_LOG_LINES = 2000  # what `upload_log` may ask for
MAX_RESULT_TEXT = 2000
MAX_BACKFILL = timedelta(days=90)  # the longest range `backfill` may ask a meter for
DEFAULT_MAX_DRIFT_S = 30.0  # `set_clock` leaves a meter clock alone within this drift


class CommandKind(StrEnum):
    READ_NOW = "read_now"  # read a meter now: its instantaneous values and registers
    DOCTOR = "doctor"  # run the gateway's own checks and return the report
    UPLOAD_LOG = "upload_log"  # the daemon's last lines of log, secrets redacted
    RESTART = "restart"  # stop cleanly; the service manager starts the daemon again
    DISCONNECT = "disconnect"  # open a DLMS meter's supply relay (disconnect control)
    RECONNECT = "reconnect"  # close it again
    BACKFILL = "backfill"  # read a DLMS meter's load profile over a range into the readings
    SET_CLOCK = "set_clock"  # set a DLMS meter's clock when it drifts past a limit
    UPDATE = "update"  # install a software version beside the running one, then restart into it


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"  # not run: the gateway cannot do it (unknown meter, unknown kind)
    INTERRUPTED = "interrupted"  # the daemon stopped while running it: not run again


class _Control(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CommandArgs(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    quantities: Annotated[list[QuantityCode], Field(max_length=64)] | None = None
    lines: Annotated[int, Field(ge=1, le=MAX_LOG_LINES)] | None = None
    # backfill: the range (checked by `backfill_range_problem` at both ends, not here, so a
    # bad range refuses one command instead of failing the parse of the whole reply)
    start: UtcDatetime | None = None
    end: UtcDatetime | None = None
    max_drift_s: Annotated[float, Field(ge=1, le=3600)] | None = None  # set_clock

    # update: the version to run, and the sha256 of its wheel (none: from the package index)
    version: SoftwareVersion | None = None
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None


def backfill_range_problem(
    start: datetime | None, end: datetime | None, *, now: datetime | None = None
) -> str | None:
    """Why a backfill range cannot be asked for, in words; None when it can. Both ends given,
    start before end, at most `MAX_BACKFILL` long, and (given `now`) not ending in the future:
    a meter has no profile for time to come."""
    if start is None or end is None:
        return "say the range to backfill: a start and an end"
    if start >= end:  # said in the zone the range was given in (a form's, the board's)
        return (
            f"the range starts ({start:%Y-%m-%d %H:%M %Z}) at or after its end"
            f" ({end:%Y-%m-%d %H:%M %Z})"
        )
    if end - start > MAX_BACKFILL:
        return f"a backfill covers at most {MAX_BACKFILL.days} days; ask for several ranges"
    if now is not None and end > now + timedelta(minutes=1):
        return f"the range ends in the future ({end:%Y-%m-%d %H:%M %Z}): a meter has no profile yet"
    return None


class Command(BaseModel):
    """A kind or field this gateway does not know is refused by the gateway, not by the
    parser: a newer cloud's command never stops the others from being read."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    id: UUID
    kind: Annotated[str, Field(max_length=32)]
    meter_id: Identifier | None = None
    args: CommandArgs = CommandArgs()
    issued_at: UtcDatetime
    expires_at: UtcDatetime


class CommandResult(_Control):
    id: UUID
    outcome: Outcome
    detail: Annotated[str, Field(max_length=MAX_RESULT_TEXT)] = ""
    # what the command produced: values read, the doctor's checks, log lines (bounded by the
    # request's size limit)
    data: dict[str, Any] = {}
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime


class ControlRequest(_Control):
    contract_version: Literal[1] = 1
    gateway_id: Identifier
    sent_at: UtcDatetime
    results: Annotated[list[CommandResult], Field(max_length=MAX_RESULTS)] = []
    config: ConfigReport | None = None  # sent after each start and each version handled


class ControlReply(BaseModel):
    """Unknown fields are ignored, so a gateway keeps working with a newer cloud."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    commands: Annotated[list[Command], Field(max_length=MAX_COMMANDS)] = []
    recorded: Annotated[int, Field(ge=0)] = 0  # results recorded by this request
    config: DesiredConfig | None = None  # a version of the settings the gateway has not handled
