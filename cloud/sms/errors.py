"""Errors of SMS delivery.

GridgateError (shared)
└── SmsError
    ├── SmsConfigError          the provider settings cannot work (names the setting)
    └── DeliveryFailure         one message was not accepted
        ├── PassingFailure      try again later: no answer, a timeout, 408, 425, 429 or 5xx
        └── FinalFailure        refused for good: any other 4xx, or a redirect

A failure carries the HTTP status when there was an answer (`http_status`), and a passing one
the wait the provider asked for in `Retry-After`, in seconds (`retry_after_s`).
"""

from __future__ import annotations

from shared import GridgateError


class SmsError(GridgateError):
    """Root of the SMS errors."""


class SmsConfigError(SmsError):
    """The SMS provider settings cannot work."""


class DeliveryFailure(SmsError):
    """One message was not accepted by the provider."""

    def __init__(
        self, detail: str, *, http_status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        self.http_status = http_status
        self.retry_after_s = retry_after_s
        super().__init__(detail)


class PassingFailure(DeliveryFailure):
    """Try again later: the provider was unreachable, slow, busy or failing."""


class FinalFailure(DeliveryFailure):
    """The provider refused this message for good."""
