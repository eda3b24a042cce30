"""Input types shared by the routes.

`PLAIN_TEXT` refuses control characters (NUL above all: PostgreSQL cannot store it in text, and
a NUL that reached a query would turn bad input into a server error).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, ClassVar, Self

from annotated_types import Interval
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    StringConstraints,
    model_validator,
)

PLAIN_TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"

# Every date and instant the API accepts lies in this century: arithmetic on them (a month
# later, a day before, a local midnight) can never leave the calendar.
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2099, 12, 31)
EARLIEST_INSTANT = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(2099, 12, 31, tzinfo=UTC)
Day = Annotated[date, Interval(ge=EARLIEST_DAY, le=LATEST_DAY)]
Instant = Annotated[AwareDatetime, Interval(ge=EARLIEST_INSTANT, le=LATEST_INSTANT)]


_ADDRESS = re.compile(r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+$")


def _address(value: str) -> str:
    if not _ADDRESS.match(value):
        raise ValueError(f"{value[:80]!r} is not an e-mail address (it looks like name@example.in)")
    return value


Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=254),
    AfterValidator(_address),
]
# digits with the usual separators and an optional leading +, as people write them
Phone = Annotated[
    str, StringConstraints(min_length=6, max_length=25, pattern=r"^\+?[0-9][0-9 ()-]{5,24}$")
]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")]


def text(max_length: int, min_length: int = 0) -> type[str]:
    """A string type of bounded length without control characters, for bodies."""
    return Annotated[
        str, StringConstraints(min_length=min_length, max_length=max_length, pattern=PLAIN_TEXT)
    ]  # type: ignore[return-value]


class Patch(BaseModel):
    """A partial update: absent fields stay as they are; unknown fields are refused; an explicit
    null is accepted only for the fields listed in `NULLABLE` (columns that may be empty)."""

    model_config = ConfigDict(extra="forbid")
    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_null_for_required(self) -> Self:
        for name in self.model_fields_set:
            if getattr(self, name) is None and name not in self.NULLABLE:
                raise ValueError(f"{name} cannot be null; leave it out to keep it")
        return self
