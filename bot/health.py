"""`/healthz`, `/readyz` and `/metrics` on the bot's HTTP server.

- `/healthz`: liveness; answers 200 as long as the event loop runs, even before login.
- `/readyz`: 200 only while the last successful sync is younger than `max_sync_age`, the
  database answers `SELECT 1` and every configured and dossier room is end-to-end
  encrypted; else 503 with a JSON reason (naming the unencrypted rooms by ID).
- `/metrics`: Prometheus text (see bot/metrics.py).

No token: they reveal no personal data. Bind `http.listen` to loopback or a private network,
or let the reverse proxy refuse them from outside."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from aiohttp import web

from bot.metrics import CONTENT_TYPE, Metrics
from storage.db import Database

log = logging.getLogger(__name__)

MAX_SYNC_AGE = 60.0
DB_TIMEOUT = 5.0


class SyncStatus:
    """When the sync loop last handled a sync completely (its token stored); shared between
    the sync loop, which marks it, and the health endpoints and metrics, which read it.
    Monotonic time: a wall-clock jump neither ages nor rejuvenates it."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self.started = monotonic()
        self.last_success: float | None = None

    def mark(self) -> None:
        self.last_success = self._monotonic()

    def age(self) -> float | None:
        """Seconds since the last successful sync; None before the first."""
        if self.last_success is None:
            return None
        return self._monotonic() - self.last_success

    def lag(self) -> float:
        """Seconds since the last successful sync, or since start before the first: a bot
        that never syncs shows a growing lag rather than none."""
        return self._monotonic() - (self.last_success or self.started)


class Health:
    def __init__(
        self,
        db: Database,
        sync: SyncStatus,
        metrics: Metrics,
        unencrypted: Callable[[], Sequence[str]] = lambda: (),
        max_sync_age: float = MAX_SYNC_AGE,
    ) -> None:
        self.db = db
        self.sync = sync
        self.metrics = metrics
        # Rooms that must be encrypted and are not (bot/audience.py keeps the list).
        self.unencrypted = unencrypted
        self.max_sync_age = max_sync_age

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/metrics", self.metrics_text),
        ]

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        reason = self._sync_problem() or await self._database_problem() or self._room_problem()
        if reason:
            body: dict[str, object] = {"status": "not ready", "reason": reason}
            if self.unencrypted():
                body["unencrypted_rooms"] = list(self.unencrypted())
            return web.json_response(body, status=503)
        return web.json_response({"status": "ready"})

    def _sync_problem(self) -> str | None:
        age = self.sync.age()
        if age is None:
            return "no successful sync yet"
        if age >= self.max_sync_age:
            return f"last successful sync {age:.0f}s ago (limit {self.max_sync_age:.0f}s)"
        return None

    def _room_problem(self) -> str | None:
        rooms = self.unencrypted()
        if rooms:
            return "rooms not end-to-end encrypted: " + ", ".join(rooms)
        return None

    async def _database_problem(self) -> str | None:
        try:
            await asyncio.wait_for(self.db.ping(), DB_TIMEOUT)
        except TimeoutError:
            return f"database did not answer within {DB_TIMEOUT:.0f}s"
        except Exception as exc:
            log.warning("readiness: database unavailable: %r", exc)
            return f"database unavailable: {type(exc).__name__}"
        return None

    async def metrics_text(self, _request: web.Request) -> web.Response:
        await self.metrics.refresh(self.db)
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})
