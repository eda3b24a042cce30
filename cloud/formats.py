"""Numbers, money and times as people read them: grouped digits, units, the currency's symbol
(Indian grouping for rupees), and local times with their zone. Used as Jinja filters."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

SYMBOLS = {"INR": "₹", "USD": "$", "EUR": "€", "GBP": "£"}


def _group(digits: str, indian: bool) -> str:
    if not indian or len(digits) <= 3:
        return f"{int(digits):,}"
    head, tail = digits[:-3], digits[-3:]
    pairs = []
    while len(head) > 2:
        pairs.insert(0, head[-2:])
        head = head[:-2]
    return ",".join([head, *pairs, tail]) if head else ",".join([*pairs, tail])


def number(value: object, decimals: int = 0, *, indian: bool = False) -> str:
    if value is None or value == "":
        return "—"
    amount = Decimal(str(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    sign = "−" if amount < 0 else ""
    whole, _, fraction = f"{abs(amount):f}".partition(".")
    grouped = _group(whole, indian)
    return f"{sign}{grouped}.{fraction}" if decimals else f"{sign}{grouped}"


def money(value: object, currency: str = "INR", decimals: int = 2) -> str:
    if value is None:
        return "—"
    text = number(value, decimals, indian=currency == "INR")
    symbol = SYMBOLS.get(currency)
    if text.startswith("−"):
        return f"−{symbol}{text[1:]}" if symbol else f"{text} {currency}"
    return f"{symbol}{text}" if symbol else f"{text} {currency}"


def fine_decimals(value: object, most: int = 4) -> int:
    """How many decimals a rate needs: two (paise), or as many as the tariff gives, up to
    `most` (a fuel adjustment of 0.1234 a unit)."""
    exponent = Decimal(str(value)).normalize().as_tuple().exponent
    return min(most, max(2, -exponent if isinstance(exponent, int) else 2))


def line_rate(rate: object, unit: str, currency: str = "INR") -> str:
    """A bill line's rate as a person reads it: '₹4.00 / kWh', '₹100.00 / month', or '5 %'
    where the line is a share of an amount (a tax, a load-based adjustment: its unit is the
    currency)."""
    if rate is None:
        return "—"
    value = Decimal(str(rate))
    if unit == currency:
        percent = (value * 100).normalize()
        return f"{number(percent, fine_decimals(percent, 2) if percent % 1 else 0)} %"
    text = money(value, currency, fine_decimals(value))
    return f"{text} / {unit}" if unit else text


# digits as people type them: plain (4.50, 1200), or grouped by commas the Western way
# (1,234,567.5) or the Indian way (12,34,567.5); the decimal separator is a point
_TYPED_NUMBER = re.compile(
    r"^(?:\d+|\d{1,3}(?:,\d{3})+|\d{1,2}(?:,\d{2})*,\d{3})(?:\.\d+)?$|^\.\d+$"
)


def typed_decimal(text: str) -> Decimal | None:
    """A number typed in a form, exactly, or None when it is not one. A comma must group
    digits: "4,50" is refused rather than read as 450 (a decimal comma, as much of the world
    writes it, would otherwise multiply a rate by a hundred)."""
    typed = text.strip()
    if not _TYPED_NUMBER.match(typed):
        return None
    try:
        return Decimal(typed.replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the pattern admits only digits
        return None


def quantity(value: object, unit: str, decimals: int = 1) -> str:
    if value is None:
        return "—"
    return f"{number(value, decimals)} {unit}".strip()


def local_time(moment: datetime | str | None, zone: str, *, seconds: bool = False) -> str:
    """'27 Nov 2026, 18:05 IST' in the board's zone (an ISO instant kept as text, too)."""
    if moment is None:
        return "—"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    local = moment.astimezone(ZoneInfo(zone))
    text = local.strftime("%d %b %Y, %H:%M:%S" if seconds else "%d %b %Y, %H:%M").lstrip("0")
    return f"{text} {local.tzname()}"


def local_date(day: date | datetime | None, zone: str | None = None) -> str:
    if day is None:
        return "—"
    if isinstance(day, datetime):
        day = day.astimezone(ZoneInfo(zone or "UTC")).date()
    return day.strftime("%d %b %Y").lstrip("0")


def month_name(day: date) -> str:
    return day.strftime("%B %Y")


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """'just now', '5 min ago', '3 h ago', '2 days ago'."""
    if moment is None:
        return "never"
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400 * 2:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"


def change(current: object, before: object) -> str:
    """'+12 %' / '−3 %' / '—' when there is nothing to compare with."""
    if current is None or before in (None, 0):
        return "—"
    pct = round((float(current) - float(before)) / float(before) * 100)
    if pct == 0:  # a change too small to show has no sign ("−0 %" reads as a fall)
        return "0 %"
    sign = "+" if pct > 0 else "−"
    return f"{sign}{abs(pct)} %"


def period(start: date, end: date) -> str:
    """A billing period [start, end) as people say it: '1–31 Oct 2026', '1 Sep – 30 Nov 2026'."""
    last = end - timedelta(days=1)
    if (start.year, start.month) == (last.year, last.month):
        return f"{start.day}–{last.day} {last:%b %Y}"
    if start.year == last.year:
        return f"{start.day} {start:%b} – {last.day} {last:%b %Y}"
    return f"{local_date(start)} – {local_date(last)}"
