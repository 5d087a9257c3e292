"""Runs the workflow's time-driven steps (nudges, expiry, end warnings, endings, meeting
reminders and personal reminders).

Due work comes from the database and time from the clock object, so a test moves the clock
and calls `tick()` instead of waiting hours. Each step commits with its fired key and its
messages in one transaction: a crash either leaves the step to run again or done once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bot.backoff import Backoff, sleep_unless_stopped
from bot.metrics import Metrics
from bot.pipeline import INFRASTRUCTURE_ERRORS, Pipeline
from commands.agenda_views import meeting_announcements
from commands.measure_views import scheduled
from commands.reminder_views import reminder_announcements
from commands.replies import Announcement
from workflow import Workflow
from workflow.meetings import Reminder

log = logging.getLogger(__name__)

TICK_SECONDS = 30.0


class Scheduler:
    def __init__(
        self, pipeline: Pipeline, stop: asyncio.Event, metrics: Metrics | None = None
    ) -> None:
        self.pipeline = pipeline
        self.stop = stop
        self.metrics = metrics

    async def run(self) -> None:
        backoff = Backoff(first=1, cap=60)
        while not self.stop.is_set():
            try:
                await self.tick()
                backoff.reset()
                await sleep_unless_stopped(TICK_SECONDS, self.stop)
            except INFRASTRUCTURE_ERRORS as exc:
                log.warning("scheduler: database unavailable: %r", exc)
                await backoff.wait(self.stop)

    async def tick(self) -> int:
        """Performs every step due now; returns how many took effect."""
        pipeline = self.pipeline
        done = await self._steps(
            "schedule",
            lambda wf: wf.schedule,
            lambda outcome, wf: scheduled(outcome, pipeline.tz, wf.now),
        )
        done += await self._steps(
            "meeting",
            lambda wf: wf.meetings,
            lambda outcome, wf: meeting_announcements(outcome, pipeline.tz),
        )
        done += await self._steps(
            "reminder",
            lambda wf: wf.reminders,
            lambda outcome, wf: reminder_announcements(outcome, pipeline.tz),
        )
        if done:
            pipeline.wake_sender()
        return done

    async def _steps(
        self,
        kind: str,
        rules: Callable[[Workflow], StepRules],
        present: Callable[[Any, Workflow], tuple[Announcement, ...]],
    ) -> int:
        """One read for what is due, then one transaction per step: its fired key, its
        effects and its messages commit together."""
        db, pipeline = self.pipeline.db, self.pipeline
        async with db.snapshot() as session:
            due = await rules(pipeline.workflow(session)).due()
        done = 0
        for step in due:
            async with db.transaction() as session:
                workflow = pipeline.workflow(session)
                outcome = await rules(workflow).run(step)
                if outcome is None:
                    continue
                # Stable per step, so each step's messages get transaction IDs of their own.
                cause = f"{kind}/{step.name}"
                await pipeline.enqueue_announcements(session, cause, present(outcome, workflow))
                done += 1
            # Committed: counted once, however often a crashed step was retried.
            if self.metrics is not None and isinstance(outcome, Reminder):
                self.metrics.reminder_fired(outcome.late)
            log.info("%s step %s done", kind, step.name)
        return done


class StepRules(Protocol):
    """What the scheduler needs of a rule set: the steps due now, and running one."""

    async def due(self) -> Sequence[Any]: ...

    async def run(self, step: Any) -> Any: ...
