"""Who may read what: the confidentiality boundary is the role, not the room.

Everything the bot posts in a room is read by every member of it, so before personal data
goes into a room, every joined and invited member must be cleared for it. The rules live
here, once; the runtime (bot/) only tells who is in a room and whether it is encrypted."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from config import Role


class Data(enum.StrEnum):
    """What a post carries, from the most to the least sensitive."""

    # Dossier content: title, persons, notes, threat assessments, timeline, export.
    DOSSIER = "dossier"
    # What an execution order needs: dossier ID, protected person's name, place, measure,
    # period, executor. Never notes, assessments or exports.
    EXECUTION = "execution"
    # Early-warning reports from partners, and sector warnings.
    EARLY_WARNING = "early_warning"


_CONTENT = frozenset({Role.LIAISON, Role.ANALYST, Role.APPROVER, Role.ADMIN})

# The documented defaults of `access.read` (config/example.yaml, docs/security.md).
DEFAULT_READ: Mapping[Data, frozenset[Role]] = {
    Data.DOSSIER: _CONTENT,
    Data.EXECUTION: _CONTENT | {Role.POLICE},
    Data.EARLY_WARNING: _CONTENT | {Role.WARNING_APPROVER},
}


@dataclass(frozen=True)
class AccessPolicy:
    """Roles seeded from the config (grants made in chat are layered over them), the
    servers whose users may act at all, and which roles may read which data."""

    roles: Mapping[str, frozenset[Role]]
    allowed_servers: frozenset[str]
    home_server: str
    read: Mapping[Data, frozenset[Role]] = field(default_factory=lambda: dict(DEFAULT_READ))
    # Always cleared (a moderation bot, a bridge), so they never freeze a room.
    service_accounts: frozenset[str] = frozenset()
    # An uncleared member of a dossier room is removed (configured rooms only get a warning).
    remove_uncleared: bool = True

    def server_allowed(self, user_id: str) -> bool:
        server = user_id.partition(":")[2]
        if not self.allowed_servers:
            return server == self.home_server
        return server in self.allowed_servers

    def may_read(self, roles: Iterable[Role], data: Data) -> bool:
        """Roles as `Workflow.roles_of` gives them (already empty off an allowed server)."""
        return not self.read.get(data, frozenset()).isdisjoint(roles)

    def cleared(self, user_id: str, roles: Iterable[Role], data: Data) -> bool:
        """May this member of a room read a post carrying `data`?"""
        if user_id in self.service_accounts:
            return True
        return self.server_allowed(user_id) and self.may_read(roles, data)

    def seeded(self, user_id: str, role: Role) -> bool:
        """Roles from the config file: chat can neither revoke them nor outvote the file."""
        return role in self.roles.get(user_id, frozenset())
