"""The one error a sender can cause while their arguments are read."""

from __future__ import annotations

_SHOWN_LENGTH = 60


class ArgumentError(ValueError):
    """Raised by argument parsers; its message goes to the sender as-is, so it must say what
    was wrong in their words (quote their input with `shown`)."""


def shown(text: str) -> str:
    """The sender's input, quoted and cut short, with control characters made visible."""
    if len(text) > _SHOWN_LENGTH:
        text = text[: _SHOWN_LENGTH - 1] + "…"
    return repr(text)
