"""Role grants and revocations (chat or `aegis role`), layered over the config file's seed,
and the grants waiting for a second admin."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from config import Role
from storage.dossiers import aware, utc_or_none
from storage.tables import RoleGrant, RoleRequestRow
from workflow.role_model import RequestState, RoleRequest

# Keys of `session.info`: what this transaction already read of the grants. A command asks
# for its sender's roles and the roles version more than once (dispatch, the read check, the
# audience check before and after); a write through set_role forgets both.
_CHANGES = "aegis.role_changes"
_VERSION = "aegis.roles_version"


async def changes_for(session: AsyncSession, user_id: str) -> dict[str, bool]:
    """role -> granted (True) or revoked (False), for one user."""
    known: dict[str, dict[str, bool]] = session.info.setdefault(_CHANGES, {})
    if user_id not in known:
        rows = await session.execute(
            select(RoleGrant.role, RoleGrant.granted).where(RoleGrant.user_id == user_id)
        )
        known[user_id] = {role: granted for role, granted in rows.all()}
    return dict(known[user_id])


async def all_changes(session: AsyncSession) -> dict[str, dict[str, bool]]:
    rows = await session.execute(select(RoleGrant.user_id, RoleGrant.role, RoleGrant.granted))
    result: dict[str, dict[str, bool]] = {}
    for user_id, role, granted in rows.all():
        result.setdefault(user_id, {})[role] = granted
    return result


async def set_role(
    session: AsyncSession, user_id: str, role: str, granted: bool, by: str, now: datetime
) -> None:
    session.info.pop(_CHANGES, None)
    session.info.pop(_VERSION, None)
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
    if _VERSION not in session.info:
        count, last = (
            await session.execute(select(func.count(), func.max(RoleGrant.changed_at)))
        ).one()
        session.info[_VERSION] = (int(count), last)
    known: tuple[int, datetime | None] = session.info[_VERSION]
    return known


def request_record(row: RoleRequestRow) -> RoleRequest:
    return RoleRequest(
        id=row.id,
        user_id=row.user_id,
        role=Role(row.role),
        requested_by=row.requested_by,
        origin_room=row.origin_room,
        state=RequestState(row.state),
        created_at=aware(row.created_at),
        decided_at=utc_or_none(row.decided_at),
        decided_by=row.decided_by,
    )


async def add_request(session: AsyncSession, fields: dict[str, Any]) -> RoleRequest:
    row = RoleRequestRow(**fields, state=RequestState.PENDING.value)
    session.add(row)
    await session.flush()
    return request_record(row)


async def request(session: AsyncSession, request_id: int, lock: bool = False) -> RoleRequest | None:
    """With `lock`, re-read under a row lock (PostgreSQL; SQLite transactions are serial):
    two admins' reactions on one request are decided one transaction at a time."""
    query = select(RoleRequestRow).where(RoleRequestRow.id == request_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    row = (await session.scalars(query)).first()
    return request_record(row) if row else None


async def pending_requests(session: AsyncSession) -> list[RoleRequest]:
    rows = await session.scalars(
        select(RoleRequestRow)
        .where(RoleRequestRow.state == RequestState.PENDING.value)
        .order_by(RoleRequestRow.id)
    )
    return [request_record(r) for r in rows]


async def close_request(
    session: AsyncSession, request_id: int, state: RequestState, by: str, at: datetime
) -> bool:
    """Pending → decided, exactly once: of two racing decisions only one changes the row."""
    result = await session.execute(
        update(RoleRequestRow)
        .where(
            RoleRequestRow.id == request_id,
            RoleRequestRow.state == RequestState.PENDING.value,
        )
        .values(state=state.value, decided_by=by, decided_at=at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
