"""After a restart, the votes on every pending prompt are read back from the homeserver
(the relations API), so the count matches the room even if an event slipped past the
pipeline. The pipeline's handled-event marks make a second sighting a no-op.

A counted reaction the relations API no longer returns was redacted; whether that withdraws
the vote depends on who redacted it, so the redaction itself is fetched (the redacted
event's `unsigned.redacted_because`) and handed to the pipeline like one seen in a sync:
the same rule decides on both paths, and the same handled-event mark keeps it to once."""

from __future__ import annotations

import logging
from typing import Any

from nio import (
    AsyncClient,
    EncryptionError,
    Event,
    MegolmEvent,
    ReactionEvent,
    RedactionEvent,
    RoomGetEventResponse,
)
from nio.api import RelationshipType

from bot.pipeline import Pipeline

log = logging.getLogger(__name__)


async def reconcile_prompts(client: AsyncClient, pipeline: Pipeline) -> int:
    """Counts reactions found and passes each to the pipeline, then the redactions of
    counted reactions that are gone from the room (redacted while the bot was down).

    A safety net, never a reason not to start: a prompt that cannot be read back is logged
    and left as it is (the sync loop still sees every new reaction)."""
    async with pipeline.db.transaction() as session:
        prompts = await pipeline.workflow(session).approvals.open_prompts()
    seen = 0
    for ref, room_id, event_id in prompts:
        try:
            seen += await _reconcile_prompt(client, pipeline, ref, room_id, event_id)
        except Exception:
            log.exception(
                "could not reconcile a prompt; its votes stay as they are",
                extra={"room_id": room_id, "event_id": event_id},
            )
    log.info("reconciled %d pending prompts, %d reactions", len(prompts), seen)
    return seen


async def _reconcile_prompt(
    client: AsyncClient, pipeline: Pipeline, ref: str, room_id: str, event_id: str
) -> int:
    present: set[str] = set()
    reactions: list[Event] = []
    async for event in client.room_get_event_relations(
        room_id, event_id, rel_type=RelationshipType.annotation
    ):
        # Returned by the relations API: the reaction exists and is not redacted, whether
        # or not this device can read it, so its vote (if any) must not be withdrawn.
        present.add(event.event_id)
        if isinstance(event, MegolmEvent):
            try:
                event = client.decrypt_event(event)
            except EncryptionError as exc:
                log.warning(
                    "cannot decrypt a reaction on a prompt: %s",
                    exc,
                    extra={"room_id": room_id, "event_id": event.event_id},
                )
                continue
        if isinstance(event, ReactionEvent):
            reactions.append(event)
    for reaction in reactions:
        await pipeline.handle(room_id, reaction)
    async with pipeline.db.transaction() as session:
        missing = await pipeline.workflow(session).approvals.missing_votes(ref, present)
    for reaction_id in missing:
        redaction = await redaction_of(client, room_id, reaction_id)
        if redaction is None:
            # Not redacted, or not readable now: the vote stays as it is, never withdrawn
            # on a guess; the sync loop still delivers a redaction that comes later.
            log.warning(
                "a counted reaction is missing from the relations and shows no redaction",
                extra={"room_id": room_id, "event_id": reaction_id},
            )
            continue
        await pipeline.handle(room_id, redaction)
    return len(reactions)


async def redaction_of(client: AsyncClient, room_id: str, event_id: str) -> Event | None:
    """The redaction that removed `event_id`, as the homeserver recorded it."""
    response = await client.room_get_event(room_id, event_id)
    if not isinstance(response, RoomGetEventResponse):
        return None
    because: dict[str, Any] = response.event.source.get("unsigned", {}).get("redacted_because")
    if not because:
        return None
    # Room versions 11 and later keep `redacts` in the content only.
    redacts = because.get("redacts") or because.get("content", {}).get("redacts")
    redaction = RedactionEvent.from_dict({**because, "redacts": redacts})
    return redaction if isinstance(redaction, RedactionEvent) else None
