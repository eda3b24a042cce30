"""How a notification went on each channel, in words for the staff consumer page: "E-mail sent
28 Nov 2026, 06:23 IST", "Text not sent: no phone number on the account", "E-mail failed after
6 tries: …". Pure: a delivery as `services.deliveries` gives it, the viewer's words, a zone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..formats import local_time

MAX_ERROR_CHARS = 160


def _tries(t: Callable[..., str], n: int) -> str:
    return t("delivery.tries_one") if n == 1 else t("delivery.tries", n=n)


def _error(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1].rstrip() + "…"


def delivery_line(
    t: Callable[..., str],
    notification: dict[str, Any],
    delivery: dict[str, Any],
    zone: str,
    now: datetime,
) -> dict[str, str]:
    """One channel's outcome as a sentence and its tone (`good`, `bad`, `wait` or `none`)."""
    if delivery["channel"] == "in_app":
        if delivery["status"] != "delivered":
            return {"text": t("delivery.in_app.not_chosen"), "tone": "none"}
        if notification.get("deleted_at"):
            when = local_time(notification["deleted_at"], zone)
            return {"text": t("delivery.in_app.deleted", time=when), "tone": "good"}
        if notification.get("read_at"):
            when = local_time(notification["read_at"], zone)
            return {"text": t("delivery.in_app.read", time=when), "tone": "good"}
        return {"text": t("delivery.in_app.unread"), "tone": "good"}
    channel = t(f"delivery.channel.{delivery['channel']}")
    outbox = delivery.get("outbox")
    if outbox is None:
        if delivery["status"] == "not_sent":
            detail = delivery["detail"] or t("delivery.no_reason")
            return {"text": t("delivery.not_sent", channel=channel, detail=detail), "tone": "bad"}
        return {"text": t("delivery.queued", channel=channel), "tone": "wait"}
    status, attempts = outbox["status"], outbox["attempts"]
    if status == "sent":
        when = local_time(outbox["sent_at"], zone)
        return {"text": t("delivery.sent", channel=channel, time=when), "tone": "good"}
    if status == "failed":
        text = t(
            "delivery.failed",
            channel=channel,
            tries=_tries(t, attempts),
            error=_error(outbox["last_error"]) or t("delivery.no_reason"),
        )
        return {"text": text, "tone": "bad"}
    if status == "expired":
        if not attempts:
            return {"text": t("delivery.expired_untried", channel=channel), "tone": "bad"}
        text = t("delivery.expired", channel=channel, tries=_tries(t, attempts))
        return {"text": text, "tone": "bad"}
    if status == "sending":
        return {"text": t("delivery.sending", channel=channel), "tone": "wait"}
    next_try = local_time(outbox["next_attempt_at"], zone)
    if attempts:
        text = t(
            "delivery.retrying",
            channel=channel,
            tries=_tries(t, attempts),
            error=_error(outbox["last_error"]) or t("delivery.no_reason"),
            time=next_try,
        )
        return {"text": text, "tone": "wait"}
    if outbox["next_attempt_at"] > now:
        key = "delivery.held_because" if delivery["detail"] else "delivery.held"
        text = t(key, channel=channel, time=next_try, detail=delivery["detail"])
        return {"text": text, "tone": "wait"}
    return {"text": t("delivery.waiting", channel=channel), "tone": "wait"}
