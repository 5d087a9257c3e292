"""After a restart, the votes on every pending prompt are read back from the homeserver
(the relations API), so the count matches the room even if an event slipped past the
pipeline. The pipeline's handled-event marks make a second sighting a no-op."""

from __future__ import annotations

import logging

from nio import AsyncClient, MegolmEvent, ReactionEvent
from nio.api import RelationshipType

from bot.pipeline import Pipeline

log = logging.getLogger(__name__)


async def reconcile_prompts(client: AsyncClient, pipeline: Pipeline) -> int:
    """Counts reactions found and passes each to the pipeline; votes whose reaction is gone
    from the room (redacted while the bot was down) are withdrawn."""
    async with pipeline.db.transaction() as session:
        prompts = await pipeline.workflow(session).approvals.open_prompts()
    seen = 0
    for proposal_id, room_id, event_id in prompts:
        present: set[str] = set()
        async for event in client.room_get_event_relations(
            room_id, event_id, rel_type=RelationshipType.annotation
        ):
            if isinstance(event, MegolmEvent):
                event = client.decrypt_event(event)
            if isinstance(event, ReactionEvent):
                present.add(event.event_id)
                await pipeline.handle(room_id, event)
                seen += 1
        async with pipeline.db.transaction() as session:
            await pipeline.workflow(session).approvals.forget_missing(proposal_id, present)
    log.info("reconciled %d pending prompts, %d reactions", len(prompts), seen)
    return seen
