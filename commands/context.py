"""What a command handler receives: who asks, where, when, and the workflow to call."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from config import Role
from workflow import Workflow


@dataclass(frozen=True)
class Context:
    actor: str
    roles: frozenset[Role]
    room_id: str
    event_id: str
    now: datetime
    tz: ZoneInfo
    prefix: str
    workflow: Workflow
