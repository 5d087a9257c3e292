"""The membership guard's warnings: user and room IDs only, in the room and in coordination."""

from __future__ import annotations

from commands.replies import Announcement, Reply, RoomKey, Severity
from workflow.membership import Uncleared


def uncleared_warning(found: Uncleared) -> tuple[Announcement, ...]:
    """One notice, posted where the member is and in coordination (once if that is where):
    a warning carries no personal data, so it may go to a room with an uncleared member."""
    if found.removed:
        follow_up = "Removed from the room: only users cleared for its data belong in it."
    else:
        follow_up = "They may read what the bot posts here: remove them, or grant them a role."
    reply = Reply(
        f"Not cleared for this room: {found.user}",
        Severity.WARNING,
        fields=(
            ("Room", f"{found.room.label} ({found.room.room_id})"),
            ("Membership", str(found.arrival)),
        ),
        lines=(follow_up,),
    )
    return (
        Announcement(found.room.room_id, reply),
        Announcement(RoomKey.COORDINATION, reply),
    )
