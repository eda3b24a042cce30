"""Software updates in the contract: how a version is named, and what a gateway sends the cloud
about one besides the `update` command's result.

The cloud hands a gateway an `update` command (`CommandArgs.version`, and `sha256` when the
cloud serves the wheel). The gateway fetches the wheel with a signed `WheelRequest`
(`POST /api/v1/control/software/wheel`), checks its hash, installs it beside the running
version and restarts into it; the command's result says it was installed. Whether the new
version then proved healthy or was rolled back is known only later, by another process: that
gateway reports it with a signed `UpdateReport` (`POST /api/v1/control/software/report`).
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from ._models import Identifier, UtcDatetime

# a PEP 440 public version with an optional local part, in the characters a file name, a shell
# script and a URL carry safely (the guard script reads it back from a file)
VERSION_PATTERN = r"^[0-9][0-9A-Za-z.+!_-]{0,62}$"
SoftwareVersion = Annotated[str, Field(pattern=VERSION_PATTERN)]


class _Software(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WheelRequest(_Software):
    gateway_id: Identifier
    sent_at: UtcDatetime
    version: SoftwareVersion


class UpdateReport(_Software):
    """`confirmed`: the new version started, synced and stayed; `rolled_back`: it did not, and
    the version it replaced runs again."""

    gateway_id: Identifier
    sent_at: UtcDatetime
    command_id: UUID
    version: SoftwareVersion  # the version the update installed
    from_version: SoftwareVersion
    outcome: Literal["confirmed", "rolled_back"]
    detail: Annotated[str, Field(max_length=500)] = ""
