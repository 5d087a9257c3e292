"""Runs the workflow's time-driven steps (nudges, expiry, end warnings, endings, meeting
reminders and agendas, personal reminders) on time.

Each rule set tells when its next step falls due, and the scheduler sleeps until the
earliest of them, so a step runs within moments of its time rather than at the next tick.
The sleep is capped, so a changed configuration or another process's writes are picked up,
and a command that changed something schedulable wakes it early.

Due work comes from the database and time from the clock object, so a test moves the clock
and calls `tick()` instead of waiting hours. Each step commits with its fired key and its
messages in one transaction: a crash either leaves the step to run again or done once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from bot.anchor import Anchor
from bot.backoff import Backoff
from bot.metrics import Metrics
from bot.pipeline import INFRASTRUCTURE_ERRORS, Pipeline
from commands.agenda_views import meeting_announcements
from commands.measure_views import scheduled
from commands.reminder_views import reminder_announcements
from commands.replies import Announcement
from workflow import Workflow
from workflow.meetings import Reminder

log = logging.getLogger(__name__)

# The longest sleep, even with nothing due: configuration and other processes' changes
# are picked up at least this often.
LONGEST_SLEEP = 60.0


class StepRules(Protocol):
    """What the scheduler needs of a rule set: the steps due now, running one, and when
    the next falls due."""

    async def due(self) -> Sequence[Any]: ...

    async def run(self, step: Any) -> Any: ...

    async def next_due(self) -> datetime | None:
        """The earliest due time (UTC) of a step not yet run; None when there is none."""
        ...


@dataclass(frozen=True)
class RuleSet:
    """One kind of scheduled step: where its rules are, and how its outcomes read."""

    kind: str
    """Names the steps in logs and in their messages' transaction causes."""
    rules: Callable[[Workflow], StepRules]
    present: Callable[[Any, Workflow, ZoneInfo], tuple[Announcement, ...]]


RULE_SETS: tuple[RuleSet, ...] = (
    RuleSet(
        "schedule", lambda wf: wf.schedule, lambda outcome, wf, tz: scheduled(outcome, tz, wf.now)
    ),
    RuleSet(
        "meeting",
        lambda wf: wf.meetings,
        lambda outcome, wf, tz: meeting_announcements(outcome, tz),
    ),
    RuleSet(
        "reminder",
        lambda wf: wf.reminders,
        lambda outcome, wf, tz: reminder_announcements(outcome, tz),
    ),
)


def sleep_for(passed: datetime, due: Sequence[datetime | None], now: datetime) -> float:
    """Seconds from `now` until the earliest step due after the pass at `passed`, at most
    LONGEST_SLEEP; none if that time went by during the pass.

    A time not after `passed` was offered to that pass; if its step is still there, the
    next wake or the cap retries it, never a busy loop."""
    ahead = [moment for moment in due if moment is not None and moment > passed]
    if not ahead:
        return LONGEST_SLEEP
    return max(0.0, min((min(ahead) - now).total_seconds(), LONGEST_SLEEP))


class Scheduler:
    def __init__(
        self,
        pipeline: Pipeline,
        stop: asyncio.Event,
        metrics: Metrics | None = None,
        woken: asyncio.Event | None = None,
        rule_sets: Sequence[RuleSet] = RULE_SETS,
        anchor: Anchor | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.stop = stop
        self.metrics = metrics
        self.woken = woken or asyncio.Event()
        """Set (by the pipeline, after a commit) when something schedulable may have changed."""
        self.rule_sets = tuple(rule_sets)
        self.anchor = anchor
        """Posts the audit chain's checkpoints when due (every N entries or M minutes)."""

    def wake(self) -> None:
        self.woken.set()

    async def run(self) -> None:
        backoff = Backoff(first=1, cap=60)
        while not self.stop.is_set():
            # Cleared before the pass: a change committed during it wakes the next one.
            self.woken.clear()
            try:
                moment = self.pipeline.clock.now()
                await self.tick(moment)
                pause = await self.pause(moment)
                backoff.reset()
            except INFRASTRUCTURE_ERRORS as exc:
                log.warning("scheduler: database unavailable: %r", exc)
                await backoff.wait(self.stop)
                continue
            await self._sleep(pause)

    async def _sleep(self, seconds: float) -> None:
        """Until the time is up, the process stops, or something schedulable changed."""
        waits = [asyncio.ensure_future(self.stop.wait()), asyncio.ensure_future(self.woken.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await wait

    async def pause(self, passed: datetime) -> float:
        """How long to sleep after the pass at `passed`: until the earliest next step of
        any rule set (one that fell due during the pass included), capped."""
        async with self.pipeline.db.snapshot() as session:
            workflow = self.pipeline.workflow(session, passed)
            due = [await rule_set.rules(workflow).next_due() for rule_set in self.rule_sets]
        if self.anchor is not None:
            due.append(await self.anchor.next_due())
        return sleep_for(passed, due, self.pipeline.clock.now())

    async def tick(self, now: datetime | None = None) -> int:
        """Performs every step due at `now` (the clock's time if not given); returns how
        many took effect. Every rule set reads what is due at that one moment."""
        moment = now or self.pipeline.clock.now()
        done = 0
        for rule_set in self.rule_sets:
            done += await self._steps(rule_set, moment)
        if self.anchor is not None and await self.anchor.tick(moment) is not None:
            done += 1
        if done:
            self.pipeline.wake_sender()
        return done

    async def _steps(self, rule_set: RuleSet, now: datetime) -> int:
        """One read for what is due, then one transaction per step: its fired key, its
        effects and its messages commit together."""
        db, pipeline = self.pipeline.db, self.pipeline
        async with db.snapshot() as session:
            due = await rule_set.rules(pipeline.workflow(session, now)).due()
        done = 0
        for step in due:
            async with db.transaction() as session:
                workflow = pipeline.workflow(session)
                outcome = await rule_set.rules(workflow).run(step)
                if outcome is None:
                    continue
                # Stable per step, so each step's messages get transaction IDs of their own.
                cause = f"{rule_set.kind}/{step.name}"
                announcements = rule_set.present(outcome, workflow, pipeline.tz)
                await pipeline.enqueue_announcements(session, cause, announcements)
                done += 1
            # Committed: counted once, however often a crashed step was retried.
            if self.metrics is not None and isinstance(outcome, Reminder):
                self.metrics.reminder_fired(outcome.late)
            log.info("%s step %s done", rule_set.kind, step.name)
        return done
