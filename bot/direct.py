"""Direct chats: a user with a role may ask Aegis for their own views in a chat of their own.

A direct chat is a room the bot accepted on an invite marked `is_direct` and shares with
exactly one other user; it is no configured room and no dossier room. Its only reader is
that user, so the audience check (bot/audience.py) clears it for what their roles may
read. Reads are answered there; anything that changes something, or that others should
see, is pointed to the coordination room, where colleagues see it happen."""

from __future__ import annotations

from collections.abc import Iterable

from nio import Event, InviteMemberEvent

from bot.audience import RoomState
from commands.replies import Reply, Severity

# Commands that only read what the user's roles may read anyway.
DIRECT_COMMANDS = frozenset(
    {
        "help",
        "ping",
        "approvals",
        "measure list",
        "measure show",
        "dossier list",
        "dossier show",
        "threat list",
    }
)


def is_direct_invite(invite_state: Iterable[Event], own_user_id: str) -> bool:
    """The invite marks the bot's membership as a direct chat, as Element does."""
    return any(
        isinstance(event, InviteMemberEvent)
        and event.state_key == own_user_id
        and event.membership == "invite"
        and bool(event.content.get("is_direct"))
        for event in invite_state
    )


def is_direct(state: RoomState | None, own_user_id: str) -> bool:
    """A room the bot shares with one other user (joined or invited), by nio's state."""
    if state is None:
        return False
    members = (frozenset(state.users) | frozenset(state.invited_users)) - {own_user_id}
    return len(members) == 1


def link(room_id: str) -> str:
    return f"https://matrix.to/#/{room_id}"


def turned_away(coordination: str) -> Reply:
    """The one line a user without a role gets before the bot leaves their chat."""
    return Reply(
        f"Aegis works in the coordination room ({link(coordination)}) for people with a "
        "role; ask an admin there if you need one.",
        Severity.WARNING,
    )


def elsewhere(prefix: str, name: str, coordination: str) -> Reply:
    """A command that changes something, asked in a direct chat."""
    return Reply(
        f"Use {prefix}{name} in the coordination room ({link(coordination)})",
        Severity.WARNING,
        lines=(
            f"Here: {prefix}help, {prefix}approvals, {prefix}measure list mine, "
            f"{prefix}dossier list mine and other reads.",
        ),
    )
