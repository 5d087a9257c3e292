"""The storage interface the workflow is given: one transaction, queries by intent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit


class Store:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def append_audit(
        self,
        *,
        actor: str,
        role: str,
        action: str,
        target: str,
        event_id: str,
        detail: dict[str, Any],
        now: datetime,
    ) -> int:
        record = audit.AuditRecord(actor, role, action, target, event_id, detail)
        return await audit.append(self.session, record, now)
