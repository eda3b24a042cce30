"""Errors of the cloud service, each mapped to one HTTP status by the API layer.

GridgateError (shared)
└── CloudError
    ├── NotFound            404 (also for objects outside the caller's scope)
    ├── Unauthorized        401 (unknown gateway, bad signature, bad credentials)
    ├── Forbidden           403 (revoked gateway, role without the permission)
    ├── Conflict            409 (already exists, token already used)
    ├── PayloadTooLarge     413
    ├── InvalidInput        422 (names the field)
    ├── TooManyRequests     429
    └── Unavailable         503 (a feature this service is not configured for)
"""

from __future__ import annotations

from shared import GridgateError


class CloudError(GridgateError):
    status_code = 500

    def __init__(self, message: str, *, errors: list[tuple[str, str]] | None = None) -> None:
        self.errors = errors or []
        super().__init__(message)


class NotFound(CloudError):
    status_code = 404


class Unauthorized(CloudError):
    status_code = 401


class Forbidden(CloudError):
    status_code = 403


class Conflict(CloudError):
    status_code = 409


class PayloadTooLarge(CloudError):
    status_code = 413


class InvalidInput(CloudError):
    status_code = 422


class TooManyRequests(CloudError):
    status_code = 429


class Unavailable(CloudError):
    status_code = 503
