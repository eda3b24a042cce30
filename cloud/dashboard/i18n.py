"""The web app's words, kept out of its templates and scripts: one catalog per language
(`locales/<language>.json`, flat keys to texts with `{name}` placeholders). English is complete;
another language adds its file and falls back to English key by key.

Pages call `t("key", name=value)`; quantities are named `quantity.<OBIS code>`, defaulting to the
quantity table's description. The words travel in the page to the browser (`client_strings`),
so the scripts hold none.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

from shared import QUANTITIES

LOCALES = Path(__file__).parent / "locales"
DEFAULT = "en"


@functools.cache
def catalog(language: str) -> dict[str, str]:
    path = LOCALES / f"{language}.json"
    words = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if language != DEFAULT:
        return {**catalog(DEFAULT), **words}
    return words


def languages() -> list[str]:
    return sorted(p.stem for p in LOCALES.glob("*.json"))


def pick_language(accept_language: str | None) -> str:
    """The first language of the browser's list that has a catalog; English otherwise."""
    available = set(languages())
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower().split("-")[0]
        if code in available:
            return code
    return DEFAULT


def translator(language: str) -> Callable[..., str]:
    words = catalog(language)

    def t(key: str, default: str | None = None, **values: object) -> str:
        # a count of one takes the key's singular where it has one ("1 bill", not "1 bills")
        text = words.get(key + "_one") if str(values.get("n")) == "1" else None
        text = text if text is not None else words.get(key)
        if text is None and key.startswith("quantity."):
            quantity = QUANTITIES.get(key.removeprefix("quantity."))
            text = quantity.description if quantity else None
        if text is None:
            text = default if default is not None else key
        return text.format(**values) if values else text

    return t


def client_strings(language: str) -> dict[str, str]:
    """The words for the browser's scripts, embedded in each page (the whole catalog: a few
    hundred short strings, and a script never meets a key it lacks)."""
    return catalog(language)
