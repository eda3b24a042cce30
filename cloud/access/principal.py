"""Who is calling: the user, their role and the scope the role carries.

A `Principal` is built once per request from a checked session (`cloud.services.sessions`) and
passed down to every service; nothing below the routes reads tokens or cookies.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """Who is calling, and the scope their role carries."""

    user_id: int
    role: str
    state_id: int | None
    board_id: int | None
    consumer_id: int | None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"user:{self.user_id}"
