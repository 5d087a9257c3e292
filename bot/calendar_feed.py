"""`GET /calendar.ics`: the meeting schedule as iCalendar, for members' calendar apps.

Protected by a token (query `token=` or `Authorization: Bearer`), compared in constant time.
Built from the database on each request, so skips and moves show at the next refresh."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from datetime import timedelta

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from commands.agenda_views import calendar
from storage.db import Database
from workflow import Workflow
from workflow.agenda import AgendaKind

log = logging.getLogger(__name__)

BEFORE, AFTER = timedelta(days=31), timedelta(days=366)


class CalendarFeed:
    def __init__(
        self, db: Database, workflow: Callable[[AsyncSession], Workflow], token: str
    ) -> None:
        self.db = db
        self.workflow = workflow
        self.token = token

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/calendar.ics", self.handle)]

    def _authorized(self, request: web.Request) -> bool:
        given = request.query.get("token", "")
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = header.removeprefix("Bearer ")
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    async def handle(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401, text="token required\n")
        wanted = request.query.get("agenda")
        if wanted is not None and wanted not in AgendaKind.__members__.values():
            return web.Response(status=400, text="agenda must be weekly, monthly or daily\n")
        async with self.db.transaction() as session:
            workflow = self.workflow(session)
            occurrences = []
            for spec in workflow.meetings.specs:
                if wanted is None or spec.agenda == wanted:
                    occurrences += await workflow.meetings.occurrences(
                        spec, workflow.now - BEFORE, workflow.now + AFTER
                    )
        data = calendar(occurrences, workflow.now, "Aegis meetings")
        return web.Response(body=data, content_type="text/calendar", charset="utf-8")
