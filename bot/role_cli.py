"""`aegis role …`: the audited recovery path on the host, for when chat cannot help (the
last chat-granted admin was revoked, or no second admin is left to confirm a grant).

Run by an operator on the server, so it is audited as `cli:<login>`. A grant here needs no
second admin: whoever runs it can edit the config file as well. It works while the bot runs
and takes effect at once, because the bot reads roles for every command; each change is
announced in the coordination and approvals rooms through the bot's outbox."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import secrets
import sys
from datetime import UTC, datetime

from nio import AsyncClient, AsyncClientConfig, RoomResolveAliasResponse
from sqlalchemy.ext.asyncio import AsyncSession

import bot
from bot.app import access_policy, open_database, policy
from bot.pipeline import txn_id
from bot.render import MESSAGE, notice
from commands.replies import Announcement, RoomKey
from commands.role_views import changed
from config import Role, Settings, add_config_option
from config.settings import USER_ID_RE
from storage import outbox
from storage.store import Store
from workflow import RuntimeInfo, Workflow
from workflow.errors import Refused
from workflow.role_model import RoleChange
from workflow.roles import RoleRules

_TOLD = (RoomKey.COORDINATION, RoomKey.APPROVALS)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    role = sub.add_parser(
        "role",
        help="grant, revoke and list roles from the host: the audited recovery path",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = role.add_subparsers(dest="role_command", required=True)
    grant_text = (
        "give a user a role at once, audited as cli:<login> and announced in coordination "
        "and approvals; no second admin is asked: the operator on the host is the recovery "
        "path (in chat, approver, warning_approver and admin wait for a second admin's ✅)"
    )
    grant = verbs.add_parser("grant", help=grant_text, description=grant_text)
    revoke_text = (
        "take a granted role away at once, audited and announced; roles in the config file "
        "stay until the file changes"
    )
    revoke = verbs.add_parser("revoke", help=revoke_text, description=revoke_text)
    for verb in (grant, revoke):
        verb.add_argument("user", type=_user_id, help="a Matrix user ID, @name:server")
        verb.add_argument("role", choices=[r.value for r in Role])
    verbs.add_parser("list", help="who holds which role; grants waiting for a second admin")
    for verb in verbs.choices.values():
        add_config_option(verb)


def _user_id(text: str) -> str:
    if not USER_ID_RE.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a Matrix user ID like @bob:example.org")
    return text


async def _announced_rooms(settings: Settings) -> dict[RoomKey, str]:
    """The rooms a change is announced in, as room IDs. An alias is resolved through the
    homeserver's directory, which asks for no login (this process has no device of its
    own); a room that cannot be resolved is named on stderr and skipped."""
    found: dict[RoomKey, str] = {}
    client: AsyncClient | None = None
    try:
        for key in _TOLD:
            ref = getattr(settings.rooms, key.value)
            if ref.startswith("!"):
                found[key] = ref
                continue
            # Bounded: a homeserver that is down must not hold the recovery path. nio's
            # retry chatter stays out of the operator's way; the outcome is printed below.
            logging.getLogger("nio").setLevel(logging.CRITICAL)
            client = client or AsyncClient(
                settings.matrix.homeserver,
                config=AsyncClientConfig(max_timeouts=1, request_timeout=10),
            )
            try:
                answer = await asyncio.wait_for(client.room_resolve_alias(ref), 20)
            except Exception as exc:  # unreachable homeserver: the change still matters more
                answer = exc
            if isinstance(answer, RoomResolveAliasResponse):
                found[key] = answer.room_id
            else:
                print(f"not announced in {ref}: cannot resolve it ({answer})", file=sys.stderr)
    finally:
        if client is not None:
            await client.close()
    return found


async def _change(rules: RoleRules, actor: str, verb: str, user: str, role: Role) -> RoleChange:
    if verb == "grant":
        return await rules.grant_from_host(actor, user, role)
    return await rules.revoke(actor, "", user, role)


async def _announce(
    session: AsyncSession,
    rooms: dict[RoomKey, str],
    announcements: tuple[Announcement, ...],
    now: datetime,
) -> None:
    """Outbox rows in the same transaction as the change, under a cause of their own."""
    cause = f"cli-role/{secrets.token_hex(8)}"
    for index, announcement in enumerate(announcements):
        room_id = rooms.get(RoomKey(announcement.room))
        if room_id is not None:
            await outbox.enqueue(
                session,
                txn_id=txn_id(cause, index),
                room_id=room_id,
                event_type=MESSAGE,
                content=notice(announcement.reply),
                now=now,
            )


async def run(settings: Settings, args: argparse.Namespace) -> int:
    db = open_database(settings)
    actor = f"cli:{getpass.getuser()}"
    now = datetime.now(UTC)
    verb = args.role_command
    try:
        await db.migrate()
        rooms = await _announced_rooms(settings) if verb != "list" else {}
        async with db.transaction() as session:
            rules = Workflow(
                Store(session),
                now,
                access_policy(settings),
                RuntimeInfo(bot.__version__, now),
                policy(settings),
            ).roles
            if verb == "list":
                for holder in await rules.holders():
                    roles = ", ".join(
                        f"{r} (config)" if r in holder.seeded else str(r)
                        for r in sorted(holder.roles)
                    )
                    print(f"{holder.user_id}\t{roles}")
                for request in await rules.pending():
                    print(
                        f"{request.ref}\twaiting for a second admin: {request.role} for "
                        f"{request.user_id}, asked by {request.requested_by}"
                    )
                return 0
            try:
                change = await _change(rules, actor, verb, args.user, Role(args.role))
            except Refused as exc:
                # Caught inside the transaction, so the audited refusal is committed.
                refusal = str(exc)
            else:
                refusal = ""
                # The bot's sender posts these from the outbox within seconds, or at its start.
                await _announce(session, rooms, changed(change), now)
        if refusal:
            print(f"aegis role {verb}: {refusal}", file=sys.stderr)
            return 1
        state = "now holds" if change.granted else "no longer holds"
        print(f"{change.user_id} {state} {change.role} (audited as {actor})")
    finally:
        await db.close()
    return 0
