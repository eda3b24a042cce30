"""Input types shared by the routes.

`PLAIN_TEXT` refuses control characters (NUL above all: PostgreSQL cannot store it in text, and
a NUL that reached a query would turn bad input into a server error).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

PLAIN_TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


def text(max_length: int, min_length: int = 0) -> type[str]:
    """A string type of bounded length without control characters, for bodies."""
    return Annotated[
        str, StringConstraints(min_length=min_length, max_length=max_length, pattern=PLAIN_TEXT)
    ]  # type: ignore[return-value]
