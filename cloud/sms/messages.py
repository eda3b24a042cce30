"""What a text message says and where it goes: pure functions, no I/O.

A notification's text is its title and body, without links (a link in a text from an unknown
number reads as phishing, and the web app is where the details are), cut at a word to
`MAX_TEXT_CHARS`: two concatenated segments of plain text, so a text costs at most two.
"""

from __future__ import annotations

import re

MAX_TEXT_CHARS = 300
_LINK = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_PHONE_SEPARATORS = re.compile(r"[ ()-]")
_PHONE = re.compile(r"^\+?[0-9]{6,20}$")


def compose_text(title: str, body: str, *, limit: int = MAX_TEXT_CHARS) -> str:
    """The title on its first line and the body after it, links removed, at most `limit`
    characters (cut at a word, marked with an ellipsis)."""
    title, body = _plain(title), _plain(body)
    text = f"{title}\n{body}" if body and body != title else title
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    at_word = max(cut.rfind(" "), cut.rfind("\n"))
    if at_word > limit * 0.6:  # a very long word is cut through rather than losing most text
        cut = cut[:at_word]
    return cut.rstrip(" \n,;:.-") + "…"


def _plain(text: str) -> str:
    return _SPACE.sub(" ", _LINK.sub("", text)).strip()


def normalize_phone(phone: str) -> str:
    """The number as digits with an optional leading +, as providers take it: the separators a
    person types (spaces, brackets, hyphens) removed. ValueError if what is left cannot be a
    phone number."""
    digits = _PHONE_SEPARATORS.sub("", phone)
    if not _PHONE.match(digits):
        raise ValueError(f"{phone!r} is not a phone number a text can be sent to")
    return digits
