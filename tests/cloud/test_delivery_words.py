"""How each channel's outcome reads on the staff consumer page, from the records alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud.dashboard.delivery_words import delivery_line
from cloud.dashboard.i18n import translator

t = translator("en")
ZONE = "Asia/Kolkata"
NOW = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
SENT_AT = datetime(2026, 11, 28, 0, 53, tzinfo=UTC)  # 06:23 IST
NOTIFICATION = {"read_at": None, "deleted_at": None}


def outbox(status: str, attempts: int = 1, **more: object) -> dict:
    return {
        "status": status,
        "attempts": attempts,
        "last_error": None,
        "sent_at": None,
        "next_attempt_at": NOW - timedelta(minutes=1),
        **more,
    }


def line(channel: str, status: str, box: dict | None = None, detail: str | None = None) -> dict:
    delivery = {"channel": channel, "status": status, "detail": detail, "outbox": box}
    return delivery_line(t, NOTIFICATION, delivery, ZONE, NOW)


@pytest.mark.parametrize(
    ("channel", "status", "box", "detail", "text", "tone"),
    [
        ("in_app", "delivered", None, None, "In the inbox, not read yet", "good"),
        (
            "in_app",
            "not_sent",
            None,
            None,
            "Not in the inbox: they chose not to get messages in the app",
            "none",
        ),
        (
            "email",
            "queued",
            outbox("sent", sent_at=SENT_AT),
            None,
            "E-mail sent 28 Nov 2026, 06:23 IST",
            "good",
        ),
        (
            "sms",
            "not_sent",
            None,
            "no phone number on the account",
            "Text not sent: no phone number on the account",
            "bad",
        ),
        (
            "email",
            "queued",
            outbox("failed", 6, last_error="550 5.1.1 mailbox unavailable"),
            None,
            "E-mail failed after 6 tries: 550 5.1.1 mailbox unavailable",
            "bad",
        ),
        (
            "sms",
            "queued",
            outbox("expired", 3),
            None,
            "Text not sent in time and given up after 3 tries",
            "bad",
        ),
        ("sms", "queued", outbox("expired", 0), None, "Text not sent in time and given up", "bad"),
        ("email", "queued", outbox("sending"), None, "E-mail being sent", "wait"),
        ("email", "queued", outbox("pending", 0), None, "E-mail waiting to be sent", "wait"),
        (
            "email",
            "queued",
            outbox("pending", 1, last_error="timed out", next_attempt_at=SENT_AT),
            None,
            "E-mail not sent yet after 1 try (timed out); next try 28 Nov 2026, 06:23 IST",
            "wait",
        ),
        (
            "email",
            "queued",
            outbox("pending", 0, next_attempt_at=datetime(2026, 11, 28, 1, 30, tzinfo=UTC)),
            "held until quiet hours end (01:30 UTC)",
            "E-mail waiting to go out 28 Nov 2026, 07:00 IST: held until quiet hours end"
            " (01:30 UTC)",
            "wait",
        ),
    ],
)
def test_each_outcome_in_words(
    channel: str, status: str, box: dict | None, detail: str | None, text: str, tone: str
) -> None:
    assert line(channel, status, box, detail) == {"text": text, "tone": tone}


def test_a_long_error_is_cut_and_kept_on_one_line() -> None:
    error = "421 try later\n" + "x" * 400
    said = line("email", "queued", outbox("failed", 2, last_error=error))["text"]
    assert said.startswith("E-mail failed after 2 tries: 421 try later xxx")
    assert said.endswith("…")
    assert "\n" not in said
    assert len(said) < 220


def test_the_inbox_says_when_it_was_read_or_deleted() -> None:
    read = {"read_at": SENT_AT, "deleted_at": None}
    delivery = {"channel": "in_app", "status": "delivered", "detail": None, "outbox": None}
    said = delivery_line(t, read, delivery, ZONE, NOW)["text"]
    assert said == "In the inbox, read 28 Nov 2026, 06:23 IST"
    gone = {"read_at": SENT_AT, "deleted_at": SENT_AT}
    said = delivery_line(t, gone, delivery, ZONE, NOW)["text"]
    assert said == "In the inbox; they deleted it 28 Nov 2026, 06:23 IST"
