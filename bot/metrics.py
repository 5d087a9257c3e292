"""The bot's Prometheus metrics, in a registry of its own (never the process-global one, so
several bots in one process, as in the tests, count separately).

The parts that record are handed this object (or one of its bound methods): the pipeline for
commands, the scheduler for reminders, the sender for retries, the early-warning intake for
reports. Gauges that describe state (sync lag, pending proposals) are computed at scrape time
by `refresh`, from the sync status and the database."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from nio import AsyncClient, ErrorResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from bot.pipeline import INFRASTRUCTURE_ERRORS
from commands.dispatcher import Outcome
from storage.db import Database
from storage.store import Store
from workflow.clock import Clock

log = logging.getLogger(__name__)

# The classic text format generate_latest writes, understood by every Prometheus version.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Handling inside the bot is meant to stay well under 20 ms; the upper buckets catch outliers.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RATE_LIMITED = ("M_LIMIT_EXCEEDED", "429")


class Metrics:
    def __init__(self, sync_age: Callable[[], float], clock: Clock) -> None:
        """`sync_age`: seconds since the last successful sync (or since start, before one)."""
        self.registry = CollectorRegistry(auto_describe=True)
        self.clock = clock
        r = self.registry
        self.commands = Counter(
            "aegis_commands",
            "Commands handled, by declared name ('unknown' for none) and outcome.",
            ["command", "outcome"],
            registry=r,
        )
        self.command_seconds = Histogram(
            "aegis_command_duration_seconds",
            "Handling time of a command inside the bot: parse, workflow, storage, render, commit.",
            ["command"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.sync_lag = Gauge(
            "aegis_sync_lag_seconds",
            "Seconds since the last successful sync (since start, before the first one).",
            registry=r,
        )
        self.sync_lag.set_function(sync_age)
        self.pending_proposals = Gauge(
            "aegis_pending_proposals", "Proposals waiting for a decision.", registry=r
        )
        self.oldest_pending = Gauge(
            "aegis_oldest_pending_proposal_age_seconds",
            "Age of the oldest pending proposal; 0 when none is pending.",
            registry=r,
        )
        self.reminders = Counter("aegis_reminders_fired", "Meeting reminders posted.", registry=r)
        self.reminders_late = Counter(
            "aegis_reminders_late",
            "Meeting reminders posted late (the bot was down when they fell due).",
            registry=r,
        )
        self.early_warning_reports = Counter(
            "aegis_early_warning_reports", "Early-warning reports received.", registry=r
        )
        self.send_retries = Counter(
            "aegis_send_retries", "Outbox sends retried after a failed attempt.", registry=r
        )
        self.rate_limit_waits = Counter(
            "aegis_rate_limit_waits",
            "Times a request to the homeserver was rate limited (429) and waited.",
            registry=r,
        )

    # --- recording ----------------------------------------------------------------------------

    def command_handled(self, command: str, outcome: Outcome, seconds: float) -> None:
        self.commands.labels(command=command, outcome=outcome.value).inc()
        self.command_seconds.labels(command=command).observe(seconds)

    def reminder_fired(self, late: bool) -> None:
        self.reminders.inc()
        if late:
            self.reminders_late.inc()

    def report_received(self) -> None:
        self.early_warning_reports.inc()

    def send_retried(self) -> None:
        self.send_retries.inc()

    def watch_rate_limits(self, client: AsyncClient) -> None:
        """nio waits out a 429 itself (retry_after_ms) and tells the response callbacks of
        each one before it sleeps."""

        async def on_error(response: ErrorResponse) -> None:
            if str(response.status_code) in RATE_LIMITED:
                self.rate_limit_waits.inc()

        client.add_response_callback(on_error, ErrorResponse)

    # --- scraping -----------------------------------------------------------------------------

    async def refresh(self, db: Database) -> None:
        """The gauges read from the database. If it does not answer they show NaN, and the
        other metrics are still served."""
        try:
            async with db.snapshot() as session:
                pending = await Store(session).measures.pending()
        except INFRASTRUCTURE_ERRORS as exc:
            log.warning("metrics: database unavailable: %r", exc)
            self.pending_proposals.set(math.nan)
            self.oldest_pending.set(math.nan)
            return
        self.pending_proposals.set(len(pending))
        oldest = min((p.created_at for p in pending), default=None)
        age = (self.clock.now() - oldest).total_seconds() if oldest else 0.0
        self.oldest_pending.set(max(age, 0.0))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
