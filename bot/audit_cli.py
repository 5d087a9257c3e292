"""`aegis audit verify`: checks the audit trail against its key, and against the checkpoints
the bot posted in Matrix, read back from the homeserver.

The key catches a rewrite, even one whose chain was recomputed without it; the checkpoints
catch what the key cannot: the last rows deleted, which leaves a shorter chain that is still
valid. The rooms are encrypted, so the checkpoints are read with the bot's own login and
E2EE store (it holds the keys of the messages it sent); nothing is synced, so the running
bot's to-device messages are left for it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from nio import AsyncClient, MegolmEvent, RoomMessagesResponse

from bot.anchor import parse
from bot.app import resolve_room
from bot.login import login, make_client
from config import Settings, add_config_option, audit_key
from config.key_files import store_key
from storage import audit
from storage.audit import Checkpoint
from storage.db import Database

# A homeserver that does not answer must not hang the check.
READ_TIMEOUT = 60.0
PAGE = 100


class CheckpointsUnreadable(Exception):
    pass


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("audit", help="audit trail tools")
    audit_sub = parser.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser(
        "verify",
        help="check the keyed chain and the checkpoints posted in Matrix; names the first "
        "broken entry, or the rows missing at the end",
    )
    add_config_option(verify)
    verify.add_argument(
        "--offline",
        action="store_true",
        help="do not read the checkpoints from the homeserver: checks the chain only, so "
        "a removal of the last rows goes unseen",
    )


async def run(settings: Settings, args: argparse.Namespace) -> int:
    anchors: list[Checkpoint] = []
    if not args.offline:
        try:
            anchors = await asyncio.wait_for(read_checkpoints(settings), READ_TIMEOUT)
        except (CheckpointsUnreadable, TimeoutError, OSError) as exc:
            print(
                f"cannot read the audit checkpoints from {settings.matrix.homeserver}: "
                f"{exc or 'timed out'} (--offline checks the chain alone)",
                file=sys.stderr,
            )
            return 1
    db = Database(settings.database.url, audit_key(settings))
    try:
        await db.migrate()
        async with db.snapshot() as session:
            result = await audit.verify(session, anchors)
    finally:
        await db.close()
    against = "" if args.offline else f", against {_count(len(anchors), 'checkpoint')}"
    if result.ok:
        print(f"audit trail intact: {_count(result.checked, 'entry')} verified{against}")
        return 0
    if result.missing is not None:
        first, last = result.missing
        print(f"audit trail TRUNCATED: entries {first}-{last} missing", file=sys.stderr)
    print(f"audit trail BROKEN at entry {result.first_broken}: {result.reason}", file=sys.stderr)
    return 1


def _count(n: int, noun: str) -> str:
    plural = "entries" if noun == "entry" else f"{noun}s"
    return f"{n} {noun if n == 1 else plural}"


async def read_checkpoints(settings: Settings) -> list[Checkpoint]:
    """Every checkpoint the bot's account posted in the checkpoint room, newest first."""
    logging.getLogger("nio").setLevel(logging.CRITICAL)  # its retry chatter is not ours
    # The bot's own store, under its key (a start has made the key file, if not configured).
    client = make_client(settings.matrix, store_key(settings.matrix).value)
    try:
        try:
            await login(client, settings.matrix)
        except Exception as exc:  # LoginFailed, or the homeserver unreachable
            raise CheckpointsUnreadable(f"cannot log in: {exc}") from exc
        stop = asyncio.Event()
        room = settings.rooms.audit or settings.rooms.coordination
        room_id = await resolve_room(client, room, stop)
        return await _read(client, room_id, settings.matrix.user_id)
    finally:
        await client.close()


async def _read(client: AsyncClient, room_id: str, bot_user: str) -> list[Checkpoint]:
    found: list[Checkpoint] = []
    undecrypted = 0
    token: str | None = None
    while True:
        page = await client.room_messages(room_id, start=token, limit=PAGE)
        if not isinstance(page, RoomMessagesResponse):
            raise CheckpointsUnreadable(f"cannot read {room_id}: {page}")
        for event in page.chunk:
            if getattr(event, "sender", None) != bot_user:
                continue
            if isinstance(event, MegolmEvent):
                undecrypted += 1
                continue
            content = event.source.get("content", {})
            checkpoint = parse(content) if isinstance(content, dict) else None
            if checkpoint is not None:
                found.append(checkpoint)
        if not page.chunk or not page.end or page.end == token:
            break
        token = page.end
    if undecrypted:
        print(
            f"warning: {undecrypted} of the bot's messages in {room_id} could not be "
            "decrypted with its store; checkpoints among them were not checked",
            file=sys.stderr,
        )
    return found
