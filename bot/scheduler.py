"""Runs the workflow's time-driven steps (nudges, expiry, end warnings, endings).

Due work comes from the database and time from the clock object, so a test moves the clock
and calls `tick()` instead of waiting hours. Each step commits with its fired key and its
messages in one transaction: a crash either leaves the step to run again or done once."""

from __future__ import annotations

import asyncio
import logging

from bot.backoff import Backoff, sleep_unless_stopped
from bot.pipeline import INFRASTRUCTURE_ERRORS, Pipeline
from commands.agenda_views import meeting_announcements
from commands.measure_views import scheduled

log = logging.getLogger(__name__)

TICK_SECONDS = 30.0


class Scheduler:
    def __init__(self, pipeline: Pipeline, stop: asyncio.Event) -> None:
        self.pipeline = pipeline
        self.stop = stop

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
        db, pipeline = self.pipeline.db, self.pipeline
        async with db.transaction() as session:
            due = await pipeline.workflow(session).schedule.due()
        done = 0
        for step in due:
            async with db.transaction() as session:
                workflow = pipeline.workflow(session)
                outcome = await workflow.schedule.run(step)
                if outcome is None:
                    continue
                announcements = scheduled(outcome, pipeline.tz, workflow.now)
                await pipeline.enqueue_announcements(
                    session, f"schedule/{step.step}/{step.key}", announcements
                )
                done += 1
            log.info("scheduled step %s %s done", step.step, step.key)
        done += await self._meetings()
        if done:
            pipeline.wake_sender()
        return done

    async def _meetings(self) -> int:
        """Meeting reminders and "starting now" posts, one transaction each, like the above."""
        db, pipeline = self.pipeline.db, self.pipeline
        async with db.transaction() as session:
            due = await pipeline.workflow(session).meetings.due()
        done = 0
        for step in due:
            async with db.transaction() as session:
                outcome = await pipeline.workflow(session).meetings.run(step)
                if outcome is None:
                    continue
                announcements = meeting_announcements(outcome, pipeline.tz)
                await pipeline.enqueue_announcements(session, f"meeting/{step.key}", announcements)
                done += 1
            log.info("meeting step %s done", step.key)
        return done
