"""Commands every Aegis user has: help, and a liveness check."""

from __future__ import annotations

from datetime import timedelta

from commands.arguments import Rest
from commands.context import Context
from commands.declaration import Registry, command
from commands.help import overview, topic_help
from commands.replies import Reply


@command(
    "help",
    help="List the commands you may use, or explain one command or group.",
    examples=["!help", "!help ping"],
)
async def help_(ctx: Context, registry: Registry, topic: Rest[str] = "") -> Reply:
    if not topic.strip():
        return overview(registry, ctx.roles, ctx.prefix)
    return topic_help(registry, topic, ctx.roles, ctx.prefix)


@command(
    "ping",
    help="Check that the bot is alive; answers with its version and uptime.",
    examples=["!ping", "!ping from the ops room"],
)
async def ping(ctx: Context, text: Rest[str] = "") -> Reply:
    info = ctx.workflow.info
    return Reply(
        f"pong {text}".rstrip(),
        fields=(("Version", info.version), ("Uptime", uptime(ctx.now - info.started_at))),
    )


def uptime(elapsed: timedelta) -> str:
    """`2h 03m`, or `3d 02h 03m` after a day."""
    minutes = max(int(elapsed.total_seconds()) // 60, 0)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m"
    return f"{hours}h {minutes:02d}m"
