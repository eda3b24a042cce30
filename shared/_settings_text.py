"""Settings written as TOML by people (a gateway's edge.toml, the settings the cloud's page
edits): where a key path stands in the text, and TOML's and pydantic's complaints in words a
person reads.

Both sides point a person at the line a problem is on, whichever side found it.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

_KEY_TUPLE = re.compile(r"\(((?:'[^']*',? ?)+)\)")


def line_of(text: str, loc: tuple[str | int, ...]) -> int | None:
    """The line a key path such as ("buses", 0, "meters", 2, "unit") points at: the key's own
    line if it is in the file, else the header of the deepest table that contains it."""
    wanted = list(loc)
    current: list[str | int] = []
    counters: dict[tuple, int] = {}  # array-of-tables path (with parent indexes) -> last index
    best: tuple[int, int] | None = None  # (depth, line)
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]", stripped)
        if header:
            current = []
            for depth, name in enumerate(header.group(2).split(".")):
                current.append(name)
                last = depth == len(header.group(2).split(".")) - 1
                key = tuple(current)
                if last and header.group(1) == "[[":
                    counters[key] = counters.get(key, -1) + 1
                    for other in [k for k in counters if k[: len(key)] == key and k != key]:
                        del counters[other]
                if key in counters:
                    current.append(counters[key])
            if wanted[: len(current)] == current and (best is None or len(current) > best[0]):
                best = (len(current), number)
            elif (
                wanted
                and current[: len(wanted)] == wanted
                and (best is None or best[0] < len(wanted))
            ):
                best = (len(wanted), number)  # the key is an array of tables: its first header
            continue
        assignment = re.match(r"^([A-Za-z0-9_-]+)\s*=", stripped)
        if assignment and [*current, assignment.group(1)] == wanted[: len(current) + 1]:
            if len(current) + 1 == len(wanted):
                return number
            if best is None or len(current) + 1 > best[0]:
                best = (len(current) + 1, number)
    return best[1] if best else None


def toml_problem(exc: tomllib.TOMLDecodeError) -> str:
    """TOML's complaint with a key written as the file writes it: "Cannot declare checks
    twice (at line 12, column 8)", not "Cannot declare ('checks',) twice"."""

    def dotted(match: re.Match[str]) -> str:
        return ".".join(re.findall(r"'([^']*)'", match.group(1)))

    return _KEY_TUPLE.sub(dotted, str(exc))


# pydantic's words where they are not a person's
_SAID = {
    "extra_forbidden": "not a setting known here (is it spelt right, and in the right section?)",
    "float_parsing": "not a number (write it like 0.5 or 230)",
    "int_parsing": "not a whole number",
    "int_from_float": "not a whole number",
    "bool_parsing": "not true or false",
    "string_type": "not text (put it in quotes)",
}


def validation_message(error: Any) -> str:
    """One pydantic error's message as a person reads it (a check's own ValueError as it was
    raised, an unknown key as a likely misspelling)."""
    return _SAID.get(error["type"], error["msg"]).removeprefix("Value error, ")
