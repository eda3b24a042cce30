"""Access control, below every service that checks it: who is calling (`Principal`), what their
role may do (`permissions`), and which rows they may reach (`scope`).

This package imports nothing else of the cloud but its error types: services, routes and the
dashboard import it, so a change of scope rules reaches every one of them at once. See
docs/architecture.md ("Access").
"""

from .ids import InScope
from .permissions import ROLE_PERMISSIONS, Permission, allowed, may_grant
from .principal import Principal
from .scope import ENTITY_TABLES, Entity, OutOfScope, resolve_in_scope, scope_filter

__all__ = [
    "ENTITY_TABLES",
    "ROLE_PERMISSIONS",
    "Entity",
    "InScope",
    "OutOfScope",
    "Permission",
    "Principal",
    "allowed",
    "may_grant",
    "resolve_in_scope",
    "scope_filter",
]
