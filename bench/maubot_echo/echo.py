"""The ten-line maubot echo plugin the benchmarks run as a peer (bench/latency.py, backlog.py)."""

from maubot import MessageEvent, Plugin
from maubot.handlers import command


class Echo(Plugin):
    @command.passive(r"^!")
    async def echo(self, evt: MessageEvent, _: tuple[str, ...]) -> None:
        await evt.respond(evt.content.body, markdown=False, reply=True)
