"""Personal reminders: setting, listing and cancelling them, and the scheduler's steps that
post them.

A reminder falls due at a time (once, or on a recurrence rule counted on the local clock,
so 9:00 stays 9:00 across daylight saving), when a proposal is decided, or some time before
a dossier's start. The last two are read from the proposal and the dossier at each pass, so
a moved start moves the reminder. Each firing is keyed in the fired table (kind `remind`)
in the transaction that writes its message: posted once, across restarts and with two
processes. One missed while the bot was down is posted late, marked so; a recurring one
then resumes at its next time, without a burst of the occurrences it missed."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

from workflow.errors import Refused
from workflow.meetings import LATE_AFTER
from workflow.model import DossierStatus, Proposal, ProposalState
from workflow.reminder_model import (
    FIRED_KIND,
    PersonalReminder,
    ReminderDue,
    ReminderFired,
    ReminderRequest,
    ReminderState,
    Scheduled,
    Trigger,
)

if TYPE_CHECKING:
    from storage.reminders import ReminderStore
    from workflow.core import Workflow

log = logging.getLogger(__name__)

# Enough for anyone's own use; a runaway script cannot fill the table.
MAX_PENDING = 100


@lru_cache(maxsize=256)
def _rule(text: str, tz: ZoneInfo) -> rrule:
    parsed = rrulestr(text, dtstart=datetime(2024, 1, 1, tzinfo=tz))
    assert isinstance(parsed, rrule)
    return parsed


def occurrence_after(text: str, tz: ZoneInfo, moment: datetime) -> datetime | None:
    """The rule's first time strictly after `moment`, in UTC; computed in local time."""
    found = _rule(text, tz).after(moment.astimezone(tz))
    return None if found is None else found.astimezone(UTC)


class ReminderRules:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow

    @property
    def store(self) -> ReminderStore:
        return self.wf.store.reminders

    @property
    def tz(self) -> ZoneInfo:
        return self.wf.policy.timezone

    # --- what people do ----------------------------------------------------------------------

    async def set(self, actor: str, event_id: str, request: ReminderRequest) -> Scheduled:
        """Checks the request against what exists now, stores it and audits it (without its
        text, which is the sender's own words)."""
        if request.target is not None and not await self.wf.roles_of(request.target):
            raise Refused(f"{request.target} has no role in Aegis; reminders go to its users only")
        if await self.store.pending_count(actor) >= MAX_PENDING:
            raise Refused(f"you have {MAX_PENDING} pending reminders; cancel some first")
        fields = await self._trigger_fields(request)
        reminder = await self.store.add(
            {
                "created_by": actor,
                "target": request.target,
                "room_id": request.room_id,
                "text": request.text,
                "trigger": request.trigger.value,
                "state": ReminderState.PENDING.value,
                "created_at": self.wf.now,
                "event_id": event_id,
                **fields,
            }
        )
        [scheduled] = await self.schedule([reminder])
        detail = {"trigger": reminder.trigger.value, "for": request.target or "room"}
        if scheduled.at is not None:
            detail["due"] = scheduled.at.isoformat()
        for name in ("rrule", "dossier_ref"):
            if fields.get(name):
                detail[name] = str(fields[name])
        if reminder.proposal_id is not None:
            detail["proposal"] = f"P-{reminder.proposal_id}"
        await self.wf.audit(actor, "reminder.set", reminder.ref, event_id, detail)
        return scheduled

    async def _trigger_fields(self, request: ReminderRequest) -> dict[str, object]:
        now = self.wf.now
        if request.trigger is Trigger.DECIDED:
            assert request.proposal_id is not None
            proposal = await self.wf.measures.require_proposal(request.proposal_id)
            if proposal.state is not ProposalState.PENDING:
                raise Refused(f"{proposal.ref} is {proposal.state} already")
            measure = await self.wf.measures.require(proposal.measure_id)
            return {"proposal_id": proposal.id, "dossier_ref": measure.dossier_ref}
        if request.trigger is Trigger.START:
            assert request.dossier_ref is not None and request.offset is not None
            dossier = await self.wf.dossiers.require(request.dossier_ref)
            if dossier.status is not DossierStatus.OPEN:
                raise Refused(f"{dossier.ref} is {dossier.status}")
            if dossier.starts_at is not None:
                due = self._before(dossier.starts_at, request.offset)
                if due <= now:
                    raise Refused(f"that time has passed: {dossier.ref} starts sooner than that")
            return {
                "dossier_ref": dossier.ref,
                "offset_minutes": int(request.offset.total_seconds() // 60),
            }
        due_at = request.at
        if request.rrule is not None:
            due_at = occurrence_after(request.rrule, self.tz, now)
            if due_at is None:
                raise Refused("that recurrence never happens")
        if due_at is None or due_at <= now:
            raise Refused("that time has passed; give a time to come")
        return {"due_at": due_at, "rrule": request.rrule}

    async def mine(self, actor: str, room_id: str) -> list[Scheduled]:
        """The pending reminders set in this room by or for the user: a room shows only what
        was said in it."""
        found = await self.schedule(await self.store.of(actor, room_id))
        far = datetime.max.replace(tzinfo=UTC)
        return sorted(found, key=lambda s: (s.at or far, s.reminder.id))

    async def cancel(self, actor: str, event_id: str, reminder_id: int) -> PersonalReminder:
        reminder = await self.store.get(reminder_id)
        if reminder is None or actor not in (reminder.created_by, reminder.target):
            # Someone else's reminder is not confirmed to exist either.
            raise Refused(f"you have no reminder RM-{reminder_id}")
        if reminder.state is not ReminderState.PENDING:
            raise Refused(f"{reminder.ref} is {reminder.state} already")
        await self.store.update(reminder.id, {"state": ReminderState.CANCELLED.value})
        await self.wf.audit(actor, "reminder.cancel", reminder.ref, event_id, {})
        cancelled = await self.store.get(reminder.id)
        assert cancelled is not None
        return cancelled

    # --- when each falls due ----------------------------------------------------------------

    def _before(self, start: datetime, offset: timedelta) -> datetime:
        """Counted on the local clock: a day before 10:00 is 10:00 the day before."""
        return (start.astimezone(self.tz) - offset).astimezone(UTC)

    async def schedule(self, reminders: list[PersonalReminder]) -> list[Scheduled]:
        """When each falls due, read from its dossier or proposal as they are now."""
        refs = [r.dossier_ref for r in reminders if r.trigger is Trigger.START and r.dossier_ref]
        dossiers = await self.wf.store.dossiers(refs) if refs else {}
        found = []
        for reminder in reminders:
            at = reminder.due_at
            if reminder.trigger is Trigger.START:
                dossier = dossiers.get(reminder.dossier_ref or "")
                at = None
                if dossier is not None and dossier.starts_at is not None:
                    assert reminder.offset is not None
                    at = self._before(dossier.starts_at, reminder.offset)
            elif reminder.trigger is Trigger.DECIDED:
                proposal = await self._proposal(reminder)
                at = None
                if proposal is not None and proposal.state is not ProposalState.PENDING:
                    at = proposal.decided_at or reminder.created_at
            found.append(Scheduled(reminder, at))
        return found

    async def _proposal(self, reminder: PersonalReminder) -> Proposal | None:
        if reminder.proposal_id is None:
            return None
        return await self.wf.store.measures.proposal(reminder.proposal_id)

    # --- the scheduler's steps --------------------------------------------------------------

    async def due(self) -> list[ReminderDue]:
        now, fired = self.wf.now, self.wf.store.measures.fired
        return [
            ReminderDue(s.reminder, s.at)
            for s in await self.schedule(await self.store.pending())
            if s.at is not None
            and s.at <= now
            and not await fired(FIRED_KIND, ReminderDue(s.reminder, s.at).key)
        ]

    async def next_due(self) -> datetime | None:
        """The earliest time a pending reminder falls due (it may be past: due now)."""
        times = [s.at for s in await self.schedule(await self.store.pending()) if s.at]
        return min(times, default=None)

    async def run(self, due: ReminderDue) -> ReminderFired | None:
        """Posts nothing twice, nothing cancelled meanwhile, and nothing whose due time moved
        since the pass read it (it is due again at its new time)."""
        now = self.wf.now
        current = await self.store.get(due.reminder.id)
        if current is None or current.state is not ReminderState.PENDING:
            return None
        [scheduled] = await self.schedule([current])
        if scheduled.at != due.at:
            return None
        if not await self.wf.store.measures.fire(FIRED_KIND, due.key, now):
            return None
        fields: dict[str, object] = {"last_fired_at": now}
        next_at = None
        if current.rrule is not None:
            next_at = occurrence_after(current.rrule, self.tz, now)
            fields["due_at"] = next_at
        if next_at is None:
            fields["state"] = ReminderState.DONE.value
        await self.store.update(current.id, fields)
        late = now - due.at > LATE_AFTER
        if late:
            log.info("reminder %s posted late (due %s)", current.ref, due.at.isoformat())
        starts_at = None
        if current.trigger is Trigger.START and current.dossier_ref:
            dossier = await self.wf.store.dossier(current.dossier_ref)
            starts_at = dossier.starts_at if dossier else None
        return ReminderFired(
            current,
            due.at,
            late,
            next_at=next_at,
            proposal=await self._proposal(current),
            starts_at=starts_at,
        )
