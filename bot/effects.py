"""Outbox rows that are more than one `room_send`: a file upload, a dossier's room, and the
invites and removals the bot makes in its rooms.

Each function does one attempt and answers `Done` or the homeserver's refusal; the sender
owns retries, backoff and giving up, so these rows follow the same policy and the same order
as plain messages. Every step is safe to repeat after a crash or a lost answer."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any, TypeAlias

from nio import (
    AsyncClient,
    ErrorResponse,
    JoinedRoomsResponse,
    RoomCreateResponse,
    RoomGetStateEventResponse,
    RoomGetStateResponse,
    RoomInviteResponse,
    RoomKickResponse,
    RoomLeaveResponse,
    RoomMessagesResponse,
    RoomPreset,
    RoomRedactResponse,
    RoomSendResponse,
    UploadResponse,
)

from bot.erasure import event_txn_id
from bot.render import INVITE, MESSAGE, membership_request
from storage import dossiers, outbox
from storage.db import Database
from workflow.clock import Clock

log = logging.getLogger(__name__)

# Marks a room as a dossier's; the key to finding it again when our database missed it.
DOSSIER_STATE = "org.aegis.dossier"
MEGOLM = {"algorithm": "m.megolm.v1.aes-sha2"}
# Events a room walk pages through at a time (bot/erasure.py).
WALK_PAGE = 100
# Memberships a removal applies to; anything else means the user is out already.
PRESENT = ("invite", "join", "knock")
# The state a client may set in a room. `state_default` already puts every state event at
# the bot's level; naming them also covers those the spec gives a level of their own.
STATE_EVENTS = (
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.power_levels",
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.encryption",
    "m.room.server_acl",
    "m.room.tombstone",
    "m.room.pinned_events",
    DOSSIER_STATE,
)


@dataclass(frozen=True)
class Done:
    """The row took effect; `ref` is what to record as sent: an event ID or a room ID."""

    ref: str


Outcome: TypeAlias = Done | ErrorResponse


def invite_txn_id(create_txn_id: str, index: int) -> str:
    """Derived from the creation row like the welcome: recorded once, sent once."""
    return f"{create_txn_id}/invite/{index}"


def welcome_txn_id(create_txn_id: str) -> str:
    """Derived from the creation row, so recording the room twice cannot queue two welcomes
    (the outbox's txn_id is unique) and a resend is de-duplicated by the homeserver."""
    return f"{create_txn_id}/welcome"


async def send(client: AsyncClient, message: outbox.PendingMessage) -> Outcome:
    response = await client.room_send(
        message.room_id,
        message.event_type,
        message.content,
        tx_id=message.txn_id,
        ignore_unverified_devices=True,
    )
    if isinstance(response, RoomSendResponse):
        return Done(response.event_id)
    return response


async def upload(client: AsyncClient, message: outbox.PendingMessage) -> Outcome:
    """Uploads the file (encrypted in an encrypted room), then posts it as `m.file`.

    The file message carries the row's transaction ID, so a retry after a crash never posts
    it twice. The upload itself has no such key: a retry uploads again, and the earlier
    upload stays on the media repository as an orphan nobody links to."""
    request: dict[str, Any] = message.content
    data = base64.b64decode(request["data"])
    encrypted = client.rooms[message.room_id].encrypted
    uploaded, keys = await client.upload(
        lambda _got_429, _got_timeouts: data,
        content_type=request["mimetype"],
        filename=request["filename"],
        encrypt=encrypted,
        filesize=len(data),
    )
    if not isinstance(uploaded, UploadResponse):
        return uploaded
    content: dict[str, Any] = {
        "msgtype": "m.file",
        "body": request["filename"],
        "info": {"mimetype": request["mimetype"], "size": len(data)},
    }
    if request.get("in_reply_to"):
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": request["in_reply_to"]}}
    if request.get("thread_root"):
        # In the thread the command was typed in, like its answer.
        content["m.relates_to"] = {
            "rel_type": "m.thread",
            "event_id": request["thread_root"],
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": request.get("in_reply_to") or request["thread_root"]},
        }
    if keys is not None:
        # The spec's EncryptedFile: where the ciphertext is, and the key, IV and hash.
        content["file"] = {"url": uploaded.content_uri, **keys}
    else:
        content["url"] = uploaded.content_uri
    file_message = outbox.PendingMessage(
        message.id, message.txn_id, message.room_id, MESSAGE, content
    )
    return await send(client, file_message)


async def create_room(
    client: AsyncClient, db: Database, clock: Clock, message: outbox.PendingMessage
) -> Outcome:
    """The dossier's room, created exactly once even if we die between the homeserver
    creating it and our database recording it: the room names its dossier in a state event,
    so a retry finds and adopts it instead of creating a second one.

    Nobody is invited at creation: the room ID is committed first, together with the invites
    and the welcome as outbox rows of their own, so nobody is ever in a dossier room that
    the database does not know as one (and the membership guard does not watch)."""
    request: dict[str, Any] = message.content
    ref: str = request["dossier_ref"]
    async with db.transaction() as session:
        dossier = await dossiers.get(session, ref)
    if dossier is None:
        log.error("room requested for an unknown dossier %s; nothing created", ref)
        return Done("")
    if dossier.room_id:
        # Recorded by an earlier attempt, or by an earlier request for the same dossier.
        return Done(dossier.room_id)
    found = await find_dossier_room(client, ref, request["name"])
    if isinstance(found, ErrorResponse):
        return found
    room_id = found
    if room_id is None:
        created = await client.room_create(
            name=request["name"],
            topic=request["topic"],
            initial_state=dossier_room_state(ref),
            preset=RoomPreset.private_chat,
            power_level_override=dossier_power_levels(),
        )
        if not isinstance(created, RoomCreateResponse):
            return created
        room_id = created.room_id
    else:
        log.info("adopting the room a previous attempt created", extra={"room_id": room_id})
    async with db.transaction() as session:
        await dossiers.update_fields(session, ref, {"room_id": room_id})
        now = clock.now()
        # Invites before the welcome: it is encrypted for the members the bot knows of.
        for index, user in enumerate(request["invite"]):
            await outbox.enqueue(
                session,
                txn_id=invite_txn_id(message.txn_id, index),
                room_id=room_id,
                event_type=INVITE,
                content=membership_request(user),
                now=now,
            )
        await outbox.enqueue(
            session,
            txn_id=welcome_txn_id(message.txn_id),
            room_id=room_id,
            event_type=MESSAGE,
            content=request["welcome"],
            now=now,
        )
    return Done(room_id)


def dossier_power_levels() -> dict[str, Any]:
    """Only the bot invites, removes, bans, redacts others' messages or changes the room;
    members talk, react and redact their own messages. The bot holds its power as the
    room's creator: the homeserver gives it 100 (before room version 12) or more (from 12
    on, where naming a creator in `users` is an error), and nobody else is named."""
    return {
        "users_default": 0,
        "events_default": 0,
        "state_default": 100,
        "invite": 100,
        "kick": 100,
        "ban": 100,
        "redact": 100,
        "events": {event_type: 100 for event_type in STATE_EVENTS},
        "notifications": {"room": 100},
    }


def dossier_room_state(ref: str) -> list[dict[str, Any]]:
    """Encrypted from its first event, labelled with the dossier it belongs to, closed to
    anyone the bot did not invite, and readable by an invitee from their invite on (so they
    read the welcome) but not before."""
    return [
        {"type": "m.room.encryption", "state_key": "", "content": MEGOLM},
        {"type": DOSSIER_STATE, "state_key": "", "content": {"dossier": ref}},
        {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "invite"}},
        {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}},
        {
            "type": "m.room.history_visibility",
            "state_key": "",
            "content": {"history_visibility": "invited"},
        },
    ]


async def find_dossier_room(client: AsyncClient, ref: str, name: str) -> str | ErrorResponse | None:
    """A joined room the bot created and labelled with this dossier, or None.

    Asks the homeserver for the joined rooms: after a restart nio only knows rooms that
    changed since the stored sync token. Rooms nio does know under another name are skipped,
    so only the candidates cost a request. A label in a room someone else created proves
    nothing (its creator set it): such a room is never adopted."""
    joined = await client.joined_rooms()
    if not isinstance(joined, JoinedRoomsResponse):
        return joined
    for room_id in joined.rooms:
        known = client.rooms.get(room_id)
        if known is not None and known.name != name:
            continue
        state = await client.room_get_state_event(room_id, DOSSIER_STATE, "")
        if isinstance(state, RoomGetStateEventResponse):
            if state.content.get("dossier") != ref:
                continue
            own = await created_by_bot(client, room_id)
            if isinstance(own, ErrorResponse):
                return own
            if own:
                return str(room_id)
            log.warning("a room labelled as a dossier's that the bot did not create: not adopted")
        elif state.status_code != "M_NOT_FOUND":
            return state
    return None


async def created_by_bot(client: AsyncClient, room_id: str) -> bool | ErrorResponse:
    """The sender of `m.room.create` is the room's creator in every room version."""
    state = await client.room_get_state(room_id)
    if not isinstance(state, RoomGetStateResponse):
        return state
    return any(
        event.get("type") == "m.room.create" and event.get("sender") == client.user_id
        for event in state.events
    )


async def membership(client: AsyncClient, room_id: str, user_id: str) -> str | ErrorResponse:
    """The user's membership as the homeserver has it now; "" if never a member."""
    state = await client.room_get_state_event(room_id, "m.room.member", user_id)
    if isinstance(state, RoomGetStateEventResponse):
        return str(state.content.get("membership", ""))
    if state.status_code == "M_NOT_FOUND":
        return ""
    return state


async def invite(client: AsyncClient, message: outbox.PendingMessage) -> Outcome:
    """Invites once: a retry after a lost answer finds the user invited (or joined already)."""
    user: str = message.content["user_id"]
    current = await membership(client, message.room_id, user)
    if isinstance(current, ErrorResponse):
        return current
    if current in ("invite", "join"):
        return Done("")
    response = await client.room_invite(message.room_id, user)
    return Done("") if isinstance(response, RoomInviteResponse) else response


async def kick(client: AsyncClient, message: outbox.PendingMessage) -> Outcome:
    """Removes the user (a pending invite is withdrawn the same way); a user who is out
    already, by a retry of this row or by leaving, is left alone."""
    user: str = message.content["user_id"]
    current = await membership(client, message.room_id, user)
    if isinstance(current, ErrorResponse):
        return current
    if current not in PRESENT:
        return Done("")
    response = await client.room_kick(message.room_id, user, message.content.get("reason") or None)
    return Done("") if isinstance(response, RoomKickResponse) else response


async def leave(client: AsyncClient, message: outbox.PendingMessage) -> Outcome:
    """The bot leaves the row's room (a direct chat it turned away); safe to repeat."""
    response = await client.room_leave(message.room_id)
    return Done("") if isinstance(response, RoomLeaveResponse) else response


async def redact(client: AsyncClient, message: outbox.PendingMessage) -> Outcome:
    """One of the bot's own events, for a purge; the row's transaction ID makes a resend
    after a lost answer the same redaction."""
    response = await client.room_redact(
        message.room_id,
        message.content["event_id"],
        message.content.get("reason"),
        tx_id=message.txn_id,
    )
    return Done(response.event_id) if isinstance(response, RoomRedactResponse) else response


async def redact_room(client: AsyncClient, message: outbox.PendingMessage) -> Outcome:
    """Every event of a purged dossier's room, the members' as well as the bot's, newest
    first: the bot created the room and holds the power to redact. State (names, members,
    encryption) stays: the room keeps its shape. An event already redacted, by an earlier
    attempt of this row or by anyone, is skipped, so a repeated walk only finishes the job."""
    token: str | None = None
    while True:
        page = await client.room_messages(message.room_id, start=token, limit=WALK_PAGE)
        if not isinstance(page, RoomMessagesResponse):
            return page
        for event in page.chunk:
            source = event.source
            if "state_key" in source or source.get("type") == "m.room.redaction":
                continue
            if (source.get("unsigned") or {}).get("redacted_because"):
                continue
            event_id = str(source["event_id"])
            response = await client.room_redact(
                message.room_id,
                event_id,
                message.content.get("reason"),
                tx_id=event_txn_id(message.txn_id, event_id),
            )
            if not isinstance(response, RoomRedactResponse):
                return response
        if not page.chunk or not page.end or page.end == token:
            return Done("")
        token = page.end
