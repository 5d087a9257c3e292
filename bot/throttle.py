"""At most one automatic answer per sender and window: a client that keeps sending what the
bot cannot read (a lost megolm session, a misbehaving device) must not make it flood a room
with the same notice, once per message."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

# Past this many senders remembered, those whose window is over are forgotten: memory stays
# bounded by the senders of one window.
_PRUNE_AT = 1000


@dataclass
class PerSender:
    window: timedelta = timedelta(minutes=10)
    _last: dict[str, datetime] = field(default_factory=dict)

    def may_answer(self, sender: str, now: datetime) -> bool:
        last = self._last.get(sender)
        return last is None or not timedelta(0) <= now - last < self.window

    def answered(self, sender: str, now: datetime) -> None:
        if len(self._last) >= _PRUNE_AT:
            self._last = {s: t for s, t in self._last.items() if not self.may_answer(s, now)}
        self._last[sender] = now
