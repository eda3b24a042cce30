"""Who is calling: the user, their role and the scope the role carries.

A `Principal` is built once per request from a checked session (`cloud.services.sessions`) or
API key (`cloud.services.api_keys`) and passed down to every service; nothing below the routes
reads tokens or cookies. A key's principal carries the key's permissions: what it may do is the
intersection of those with its owner's role (`may`), while its scope stays the owner's.
"""

from __future__ import annotations

from dataclasses import dataclass

from .permissions import Permission, allowed


@dataclass(frozen=True)
class Principal:
    """Who is calling, and the scope their role carries."""

    user_id: int
    role: str
    state_id: int | None
    board_id: int | None
    consumer_id: int | None
    # an API key's permissions (None: the role's, for a session) and the key's id
    permissions: frozenset[Permission] | None = None
    api_key_id: int | None = None

    def may(self, permission: Permission) -> bool:
        """Whether the caller may do `permission`: their role allows it and, for an API key,
        the key carries it. Every permission check goes through here."""
        if not allowed(self.role, permission):
            return False
        return self.permissions is None or permission in self.permissions

    @property
    def by_key(self) -> bool:
        return self.api_key_id is not None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"user:{self.user_id}"
