"""Pushing to partners' webhooks: signed POSTs, retried with doubling delays, each attempt
recorded, so `!ew deliveries` can say who received a warning and who did not.

Delivery is at least once: a crash after the partner answered but before the result was
stored sends it again, with the same X-Aegis-Delivery ID for the receiver to drop."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import timedelta

import aiohttp

import bot
from bot.backoff import sleep_unless_stopped
from storage.db import Database
from storage.early_warning import DueWebhook, EarlyWarningStore
from workflow.clock import Clock
from workflow.early_warning import sign

log = logging.getLogger(__name__)

BATCH = 20
POLL_SECONDS = 2.0
MAX_DELAY = timedelta(hours=1)


@dataclass(frozen=True)
class WebhookPolicy:
    attempts: int = 8
    backoff: timedelta = timedelta(seconds=30)
    timeout: timedelta = timedelta(seconds=10)


class WebhookSender:
    def __init__(
        self, db: Database, clock: Clock, stop: asyncio.Event, policy: WebhookPolicy
    ) -> None:
        self.db = db
        self.clock = clock
        self.stop = stop
        self.policy = policy

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.policy.timeout.total_seconds())
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while not self.stop.is_set():
                try:
                    sent = await self.deliver_due(http)
                except Exception:
                    # The database may be restarting; the rows wait, nothing is lost.
                    log.exception("webhook delivery round failed; retrying")
                    sent = 0
                if not sent:
                    await sleep_unless_stopped(POLL_SECONDS, self.stop)

    async def deliver_due(self, http: aiohttp.ClientSession) -> int:
        async with self.db.snapshot() as session:
            due = await EarlyWarningStore(session).due_webhooks(self.clock.now(), BATCH)
        results = await asyncio.gather(*(self._post(http, hook) for hook in due))
        async with self.db.transaction() as session:
            store = EarlyWarningStore(session)
            for hook, error in zip(due, results, strict=True):
                await self._record(store, hook, error)
        return len(due)

    async def _post(self, http: aiohttp.ClientSession, hook: DueWebhook) -> str | None:
        """None when the partner answered 2xx; else what went wrong."""
        if hook.url is None:
            return "partner has no webhook or is revoked"
        body = json.dumps(
            {"event": hook.kind, "delivery": hook.id, "data": hook.payload}, ensure_ascii=False
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"Aegis/{bot.__version__}",
            "X-Aegis-Event": hook.kind,
            "X-Aegis-Delivery": str(hook.id),
            "X-Aegis-Signature": sign(hook.secret, int(self.clock.now().timestamp()), body),
        }
        try:
            async with http.post(hook.url, data=body, headers=headers) as response:
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"[:300]

    async def _record(self, store: EarlyWarningStore, hook: DueWebhook, error: str | None) -> None:
        now, attempts = self.clock.now(), hook.attempts + 1
        extra = {"webhook": hook.id, "partner": hook.partner_id, "subject": hook.subject}
        if error is None:
            log.info("webhook delivered", extra=extra)
            await store.webhook_attempted(
                hook.id, attempts=attempts, next_attempt_at=None, delivered_at=now
            )
        elif attempts >= self.policy.attempts:
            log.warning("webhook failed for good: %s", error, extra=extra)
            await store.webhook_attempted(
                hook.id, attempts=attempts, next_attempt_at=None, failed_at=now, error=error
            )
        else:
            delay = min(MAX_DELAY, self.policy.backoff * 2 ** (attempts - 1))
            log.info(
                "webhook attempt %d failed: %s; next in %s", attempts, error, delay, extra=extra
            )
            await store.webhook_attempted(
                hook.id, attempts=attempts, next_attempt_at=now + delay, error=error
            )
