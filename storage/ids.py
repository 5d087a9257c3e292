"""Every existing ID of one kind: the candidates a did-you-mean picks from (workflow/refs.py).
Only asked when an ID named nothing, so a full list is affordable."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.tables import DossierRow, MeasureRow, ProposalRow, ReportRow, WarningRow

_NUMBERED = {"M": MeasureRow.id, "P": ProposalRow.id, "EW": ReportRow.id, "W": WarningRow.id}


async def existing(session: AsyncSession, kind: str) -> list[str]:
    """`D-2026-0001`, `M-3`, …; nothing for a kind this does not know."""
    if kind == "D":
        return list(await session.scalars(select(DossierRow.ref)))
    column = _NUMBERED.get(kind)
    if column is None:
        return []
    return [f"{kind}-{number}" for number in await session.scalars(select(column))]
