"""When the audit chain's head is due to be anchored in Matrix.

A checkpoint proves, outside the database, that the chain reached a given entry with a
given hash: a later truncation or a rewrite under a leaked key then shows. Posting one per
entry would flood the room; too few would leave a long tail unanchored. So a checkpoint is
due once `every` entries were added since the last, or once `period` passed since the last
while anything was added; the bot also posts one at shutdown."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class AnchorPolicy:
    every: int
    period: timedelta


@dataclass(frozen=True)
class Anchored:
    """The last checkpoint queued: its entry and when."""

    seq: int
    at: datetime


def checkpoint_due(
    policy: AnchorPolicy, head: int, last: Anchored, now: datetime, *, closing: bool = False
) -> bool:
    """Whether entry `head` is to be anchored now; `closing` (shutdown) anchors any new one.
    With no checkpoint yet, `last` is entry 0 at the bot's start."""
    if head <= last.seq:
        return False
    return closing or head - last.seq >= policy.every or now - last.at >= policy.period


def next_checkpoint(policy: AnchorPolicy, head: int, last: Anchored) -> datetime | None:
    """When the period makes the next checkpoint due; None while every entry is anchored."""
    return last.at + policy.period if head > last.seq else None
