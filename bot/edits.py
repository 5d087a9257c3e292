"""Edited commands: what an edit of a command that ended so may do, and what it is told."""

from __future__ import annotations

from commands.dispatcher import Outcome
from commands.replies import Reply, Severity
from storage import runtime


def settled(outcome: Outcome) -> str:
    """What an edit of a command that ended so may do: only a usage error stays open."""
    if outcome is Outcome.USAGE_ERROR:
        return runtime.OPEN
    return runtime.DONE if outcome is Outcome.OK else runtime.ANSWERED


def already(state: str, prefix: str) -> Reply:
    """The answer to an edit of a command that was handled for good."""
    what = "Already done" if state == runtime.DONE else "Already answered"
    return Reply(
        f"{what}; send a new command",
        Severity.WARNING,
        lines=(f"An edited {prefix}command is run only if the original could not be read.",),
    )
