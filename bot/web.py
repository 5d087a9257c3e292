"""The one HTTP server of the bot process: each part (calendar feed, early-warning intake,
health and metrics) brings its routes, so they share a port and a lifecycle."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


class Routes(Protocol):
    def routes(self) -> Iterable[web.RouteDef]: ...


class WebServer:
    def __init__(self, parts: Iterable[Routes], middlewares: Iterable[Middleware] = ()) -> None:
        self.app = web.Application(client_max_size=MAX_BODY, middlewares=list(middlewares))
        for part in parts:
            self.app.add_routes(list(part.routes()))
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, listen: str) -> int:
        """Serves on host:port (port 0: any free one); returns the port."""
        host, _, port = listen.rpartition(":")
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host.strip("[]"), int(port))
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else int(port)
        log.info("HTTP server on %s:%d", host, self.port)
        return self.port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
