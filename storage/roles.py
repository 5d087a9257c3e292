"""Role grants and revocations made in chat, layered over the config file's seed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.tables import RoleGrant


async def changes_for(session: AsyncSession, user_id: str) -> dict[str, bool]:
    """role -> granted (True) or revoked (False), for one user."""
    rows = await session.execute(
        select(RoleGrant.role, RoleGrant.granted).where(RoleGrant.user_id == user_id)
    )
    return {role: granted for role, granted in rows.all()}


async def all_changes(session: AsyncSession) -> dict[str, dict[str, bool]]:
    rows = await session.execute(select(RoleGrant.user_id, RoleGrant.role, RoleGrant.granted))
    result: dict[str, dict[str, bool]] = {}
    for user_id, role, granted in rows.all():
        result.setdefault(user_id, {})[role] = granted
    return result


async def set_role(
    session: AsyncSession, user_id: str, role: str, granted: bool, by: str, now: datetime
) -> None:
    row = await session.get(RoleGrant, (user_id, role))
    if row is None:
        session.add(
            RoleGrant(user_id=user_id, role=role, granted=granted, changed_by=by, changed_at=now)
        )
    else:
        row.granted, row.changed_by, row.changed_at = granted, by, now


async def version(session: AsyncSession) -> tuple[int, datetime | None]:
    """Changes whenever a role is granted or revoked, by chat or by the CLI from another
    process: caches of who is cleared compare it instead of re-reading every grant."""
    count, last = (
        await session.execute(select(func.count(), func.max(RoleGrant.changed_at)))
    ).one()
    return int(count), last
