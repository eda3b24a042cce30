"""The permission map: which role may do what. One declarative table; nothing else in the code
checks role names. (Matrix of the reference system, extended with TECHNICIAN and CONSUMER, and
with gateway and reading permissions of our own.)

What a permission allows is further limited by the caller's scope (`cloud.scope`).
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    METER_CREATE = "meter:create"
    METER_READ = "meter:read"
    METER_UPDATE = "meter:update"
    METER_ASSIGN = "meter:assign"
    METER_DELETE = "meter:delete"
    CONSUMER_CREATE = "consumer:create"
    CONSUMER_READ = "consumer:read"
    CONSUMER_UPDATE = "consumer:update"
    CONSUMER_DELETE = "consumer:delete"
    BILLING_READ = "billing:read"
    BILLING_GENERATE = "billing:generate"
    BILLING_RECALCULATE = "billing:recalculate"
    REPORT_GENERATE = "report:generate"
    QUERY_MANAGE = "query:manage"  # work the support desk: triage, assign, answer
    QUERY_READ = "query:read"  # see support queries (a consumer: their own)
    QUERY_OPEN = "query:open"  # open a query and write in its thread (consumers)
    QUERY_DELETE = "query:delete"  # take a query off the desk (kept for the record)
    NOTIFICATION_BROADCAST = "notification:broadcast"  # announce to everyone in a scope
    NOTIFICATION_MANAGE = "notification:manage"
    AUDIT_READ = "audit:read"
    USER_READ = "user:read"  # list the users in scope (board admins see their board's)
    USER_MANAGE = "user:manage"
    GATEWAY_READ = "gateway:read"
    GATEWAY_ENROLL = "gateway:enroll"
    GATEWAY_REVOKE = "gateway:revoke"
    GATEWAY_COMMAND = "gateway:command"  # send a gateway commands (read now, doctor, log, restart)
    GATEWAY_CONFIGURE = "gateway:configure"  # set a gateway's buses, meters and limits
    # register software releases and set the version boards and gateways run (one release
    # reaches a whole fleet: super admins only)
    GATEWAY_UPDATE = "gateway:update"
    METER_DISCONNECT = "meter:disconnect"  # cut and restore a consumer's supply at the meter
    READING_READ = "reading:read"
    BOARD_READ = "board:read"
    BOARD_MANAGE = "board:manage"
    STATE_MANAGE = "state:manage"
    TARIFF_MANAGE = "tariff:manage"
    BILLING_COLLECT = "billing:collect"  # record payments
    BILLING_DISPUTE = "billing:dispute"  # open a dispute on a bill
    ALERT_READ = "alert:read"
    ALERT_MANAGE = "alert:manage"  # acknowledge, resolve
    REPORT_READ = "report:read"
    JOBS_RUN = "jobs:run"  # run the fleet-wide periodic jobs now (the operator)
    # work out a consumer's ways to pay less again and store them (a consumer: their own)
    RECOMMENDATION_GENERATE = "recommendation:generate"
    # mark one's own recommendations seen, done or not for me (the consumer's answer alone:
    # nobody answers for them)
    RECOMMENDATION_RESPOND = "recommendation:respond"


P = Permission
_ADMIN = {
    P.METER_CREATE,
    P.METER_READ,
    P.METER_UPDATE,
    P.METER_ASSIGN,
    P.CONSUMER_CREATE,
    P.CONSUMER_READ,
    P.CONSUMER_UPDATE,
    P.CONSUMER_DELETE,
    P.BILLING_READ,
    P.BILLING_GENERATE,
    P.BILLING_RECALCULATE,
    P.REPORT_GENERATE,
    P.QUERY_MANAGE,
    P.QUERY_READ,
    P.QUERY_DELETE,
    P.NOTIFICATION_MANAGE,
    P.NOTIFICATION_BROADCAST,
    P.GATEWAY_READ,
    P.GATEWAY_ENROLL,
    P.GATEWAY_REVOKE,
    P.GATEWAY_COMMAND,
    P.GATEWAY_CONFIGURE,
    P.READING_READ,
    P.BOARD_READ,
    P.TARIFF_MANAGE,
    P.BILLING_COLLECT,
    P.BILLING_DISPUTE,
    P.ALERT_READ,
    P.ALERT_MANAGE,
    P.REPORT_READ,
    P.USER_READ,
    P.RECOMMENDATION_GENERATE,
}

ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    # everything but what only a consumer does (open a query about their own supply, answer
    # the advice given to them)
    "SUPER_ADMIN": frozenset(Permission) - {P.QUERY_OPEN, P.RECOMMENDATION_RESPOND},
    "STATE_ADMIN": frozenset(
        _ADMIN | {P.AUDIT_READ, P.USER_MANAGE, P.BOARD_MANAGE, P.METER_DISCONNECT}
    ),
    "BOARD_ADMIN": frozenset(_ADMIN | {P.METER_DISCONNECT}),
    "SUPPORT_AGENT": frozenset(
        {
            P.METER_READ,
            P.CONSUMER_READ,
            P.BILLING_READ,
            P.QUERY_MANAGE,
            P.QUERY_READ,
            P.NOTIFICATION_MANAGE,
            P.NOTIFICATION_BROADCAST,
            P.GATEWAY_READ,
            P.READING_READ,
            P.BOARD_READ,
            P.BILLING_COLLECT,
            P.BILLING_DISPUTE,
            P.ALERT_READ,
            P.ALERT_MANAGE,
        }
    ),
    "AUDITOR": frozenset(
        {
            P.METER_READ,
            P.CONSUMER_READ,
            P.BILLING_READ,
            P.AUDIT_READ,
            P.GATEWAY_READ,
            P.READING_READ,
            P.BOARD_READ,
            P.ALERT_READ,
            P.REPORT_READ,
        }
    ),
    "TECHNICIAN": frozenset(
        {
            P.METER_READ,
            P.GATEWAY_READ,
            P.GATEWAY_ENROLL,
            P.GATEWAY_COMMAND,
            P.GATEWAY_CONFIGURE,
            P.READING_READ,
            P.BOARD_READ,
            P.ALERT_READ,
            P.ALERT_MANAGE,
        }
    ),
    "CONSUMER": frozenset(
        {
            P.METER_READ,
            P.CONSUMER_READ,
            P.BILLING_READ,
            P.READING_READ,
            P.BILLING_DISPUTE,
            P.ALERT_READ,
            P.QUERY_READ,
            P.QUERY_OPEN,
            P.RECOMMENDATION_GENERATE,
            P.RECOMMENDATION_RESPOND,
        }
    ),
}


# Which roles a user manager may grant (and so create, change or deactivate). Scope is checked
# separately: the new user's state, board or consumer must lie inside the manager's scope.
ROLE_GRANTS: dict[str, frozenset[str]] = {
    "SUPER_ADMIN": frozenset(ROLE_PERMISSIONS),
    "STATE_ADMIN": frozenset({"BOARD_ADMIN", "SUPPORT_AGENT", "AUDITOR", "TECHNICIAN", "CONSUMER"}),
}


def may_grant(role: str, granted: str) -> bool:
    return granted in ROLE_GRANTS.get(role, frozenset())


def allowed(role: str, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS.get(role, frozenset())
