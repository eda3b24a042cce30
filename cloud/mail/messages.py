"""The messages GridGate sends, each a pair of templates in `templates/`: `<kind>.txt` (its
first line is the subject) and `<kind>.html` (the same words, for mail readers that show HTML)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import jinja2

KINDS = (
    "signup_code",
    "signup_exists",
    "invitation",
    "password_reset",
    "password_changed",
    "email_change",
    "email_changed",
    "notification",
    "alert_digest",
    "report_link",
)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@functools.cache
def _environments() -> tuple[jinja2.Environment, jinja2.Environment]:
    loader = jinja2.PackageLoader("cloud.mail", "templates")
    # the plain-text parts are never shown as HTML, so nothing in them is escaped
    plain = jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined)  # noqa: S701
    html = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    return plain, html


def render(kind: str, context: dict[str, Any]) -> Rendered:
    if kind not in KINDS:
        raise ValueError(f"no e-mail template {kind}")
    plain, html = _environments()
    subject, _, text = plain.get_template(f"{kind}.txt").render(context).partition("\n")
    body = html.get_template(f"{kind}.html").render({**context, "subject": subject})
    return Rendered(subject.strip(), text.lstrip("\n"), body)


def build(
    *, sender: str, to: str, subject: str, text: str, html: str, message_id: str
) -> EmailMessage:
    """A multipart/alternative message. The Message-ID is the outbox row's, so a message sent
    again after a crash carries the same one and mail readers fold the two."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def message_id(outbox_id: int, domain: str) -> str:
    return f"<gridgate.outbox.{outbox_id}@{domain}>"
