"""Ids as they arrive in requests, each typed with the kind of row it names.

An id parameter or body field declared with one of these types (`BoardId`, `ConsumerId`, ...)
is bounded (1 to 2^53, what every JSON client can hold) and marked `InScope(entity)`: before the
route runs, `cloud.api.scoped_route` resolves every marked id of the request through the scope
filter, and one outside the caller's scope answers 404, whatever the verb. A route cannot name a
row of another tenant by forgetting a check: `tests/cloud/test_authorization_matrix.py` fails
for an id parameter that is not typed this way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from annotated_types import Interval

from .scope import Entity

MAX_ID = 2**53


@dataclass(frozen=True)
class InScope:
    """Marks an id that must name a row inside the caller's scope."""

    entity: Entity


_BOUNDS = Interval(ge=1, le=MAX_ID)

StateId = Annotated[int, InScope("state"), _BOUNDS]
WholeStateId = Annotated[int, InScope("whole_state"), _BOUNDS]  # a state the caller covers whole
BoardId = Annotated[int, InScope("board"), _BOUNDS]
ConsumerId = Annotated[int, InScope("consumer"), _BOUNDS]
MeterId = Annotated[int, InScope("meter"), _BOUNDS]
GatewayId = Annotated[int, InScope("gateway"), _BOUNDS]
UserId = Annotated[int, InScope("user"), _BOUNDS]
InvoiceId = Annotated[int, InScope("invoice"), _BOUNDS]
TariffId = Annotated[int, InScope("tariff"), _BOUNDS]
TariffVersionId = Annotated[int, InScope("tariff_version"), _BOUNDS]
TariffOverrideId = Annotated[int, InScope("tariff_override"), _BOUNDS]
AlertId = Annotated[int, InScope("alert"), _BOUNDS]
ReportId = Annotated[int, InScope("report"), _BOUNDS]
ReportFormatId = Annotated[int, InScope("report_format"), _BOUNDS]
ReportScheduleId = Annotated[int, InScope("report_schedule"), _BOUNDS]
BillingRunId = Annotated[int, InScope("billing_run"), _BOUNDS]
ApiKeyId = Annotated[int, InScope("api_key"), _BOUNDS]
NotificationId = Annotated[int, InScope("notification"), _BOUNDS]
SupportQueryId = Annotated[int, InScope("support_query"), _BOUNDS]
GatewayCommandId = Annotated[int, InScope("gateway_command"), _BOUNDS]
GatewayDiscoveryId = Annotated[int, InScope("gateway_discovery"), _BOUNDS]
AuditEntryId = Annotated[int, InScope("audit_entry"), _BOUNDS]
RecommendationId = Annotated[int, InScope("recommendation"), _BOUNDS]
