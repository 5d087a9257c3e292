"""`GET /calendar.ics`: the meeting schedule as iCalendar, for members' calendar apps.

Protected by a token (query `token=` or `Authorization: Bearer`), compared in constant time.
Built from the database on each request, so skips and moves show at the next refresh.
With no meeting to show, the answer says so (404) rather than serving an empty calendar."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from commands.calendar_view import calendar, no_meetings
from storage.db import Database
from workflow import Workflow
from workflow.agenda import AgendaKind

log = logging.getLogger(__name__)


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
        kind = AgendaKind(wanted) if wanted is not None else None
        async with self.db.snapshot() as session:
            workflow = self.workflow(session)
            series = await workflow.meetings.series(kind)
        if not series:
            return web.Response(status=404, text=no_meetings(kind) + "\n")
        data = calendar(series, workflow.now, workflow.policy.timezone, "Aegis meetings")
        return web.Response(body=data, content_type="text/calendar", charset="utf-8")
