"""Text messages: what a text says, where it goes, and how its request is signed."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from cloud.sms.messages import MAX_TEXT_CHARS, compose_text, normalize_phone
from cloud.sms.webhook import retry_after_s, sign


def test_the_text_is_the_title_and_body_without_links_cut_at_a_word() -> None:
    assert compose_text("Payment received", "Thank you. See https://x.example/pay?id=1 now") == (
        "Payment received\nThank you. See now"
    )
    assert compose_text("Same", "Same") == "Same"
    long = compose_text("Outage on meter M-1", "the supply " * 60)
    assert len(long) <= MAX_TEXT_CHARS
    assert long.endswith("…")
    assert long[:-1].split()[-1] in ("the", "supply")  # whole words only
    assert compose_text("T", "x" * 400).endswith("x…")  # one long word is cut through


def test_phone_numbers_lose_their_separators() -> None:
    assert normalize_phone("+91 (98765) 43-210") == "+919876543210"
    assert normalize_phone("09876543210") == "09876543210"
    with pytest.raises(ValueError, match="not a phone number"):
        normalize_phone("1-----")


def test_retry_after_is_read_in_seconds() -> None:
    assert retry_after_s("30") == 30
    assert retry_after_s("Wed, 21 Oct 2026 07:28:00 GMT") is None
    assert retry_after_s(None) is None
    assert retry_after_s("-1") is None


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"id":"1","to":"+919876543210","text":"hi"}'
    expected = hmac.new(b"k" * 16, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("k" * 16, "1700000000", body) == f"sha256={expected}"
