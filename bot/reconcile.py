"""After a restart, the votes on every pending prompt are read back from the homeserver
(the relations API), so the count matches the room even if an event slipped past the
pipeline. The pipeline's handled-event marks make a second sighting a no-op."""

from __future__ import annotations

import logging

from nio import AsyncClient, EncryptionError, Event, MegolmEvent, ReactionEvent
from nio.api import RelationshipType

from bot.pipeline import Pipeline

log = logging.getLogger(__name__)


async def reconcile_prompts(client: AsyncClient, pipeline: Pipeline) -> int:
    """Counts reactions found and passes each to the pipeline; votes whose reaction is gone
    from the room (redacted while the bot was down) are withdrawn.

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
        await pipeline.workflow(session).approvals.forget_missing(ref, present)
    return len(reactions)
