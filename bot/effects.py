"""Outbox rows that are more than one `room_send`: a file upload, and a dossier's room.

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
    RoomPreset,
    RoomSendResponse,
    UploadResponse,
)

from bot.render import MESSAGE
from storage import dossiers, outbox
from storage.db import Database
from workflow.clock import Clock

log = logging.getLogger(__name__)

# Marks a room as a dossier's; the key to finding it again when our database missed it.
DOSSIER_STATE = "org.aegis.dossier"
MEGOLM = {"algorithm": "m.megolm.v1.aes-sha2"}


@dataclass(frozen=True)
class Done:
    """The row took effect; `ref` is what to record as sent: an event ID or a room ID."""

    ref: str


Outcome: TypeAlias = Done | ErrorResponse


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
    so a retry finds and adopts it instead of creating a second one."""
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
            invite=request["invite"],
            initial_state=dossier_room_state(ref),
            preset=RoomPreset.private_chat,
        )
        if not isinstance(created, RoomCreateResponse):
            return created
        room_id = created.room_id
    else:
        log.info("adopting the room a previous attempt created", extra={"room_id": room_id})
    async with db.transaction() as session:
        await dossiers.update_fields(session, ref, {"room_id": room_id})
        await outbox.enqueue(
            session,
            txn_id=welcome_txn_id(message.txn_id),
            room_id=room_id,
            event_type=MESSAGE,
            content=request["welcome"],
            now=clock.now(),
        )
    return Done(room_id)


def dossier_room_state(ref: str) -> list[dict[str, Any]]:
    """Encrypted from its first event, and labelled with the dossier it belongs to."""
    return [
        {"type": "m.room.encryption", "state_key": "", "content": MEGOLM},
        {"type": DOSSIER_STATE, "state_key": "", "content": {"dossier": ref}},
    ]


async def find_dossier_room(client: AsyncClient, ref: str, name: str) -> str | ErrorResponse | None:
    """A joined room labelled with this dossier, or None.

    Asks the homeserver for the joined rooms: after a restart nio only knows rooms that
    changed since the stored sync token. Rooms nio does know under another name are skipped,
    so only the candidates cost a request."""
    joined = await client.joined_rooms()
    if not isinstance(joined, JoinedRoomsResponse):
        return joined
    for room_id in joined.rooms:
        known = client.rooms.get(room_id)
        if known is not None and known.name != name:
            continue
        state = await client.room_get_state_event(room_id, DOSSIER_STATE, "")
        if isinstance(state, RoomGetStateEventResponse):
            if state.content.get("dossier") == ref:
                return str(room_id)
        elif state.status_code != "M_NOT_FOUND":
            return state
    return None
