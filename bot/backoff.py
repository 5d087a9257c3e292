"""Waiting well: bounded exponential backoff with jitter (never a hot loop, never an
unbounded wait), and waits that end the moment the process is asked to stop."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class Backoff:
    def __init__(self, first: float = 1.0, cap: float = 30.0) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.first * 2.0**self.failures)
        self.failures += 1
        return float(delay * random.uniform(0.8, 1.0))

    def reset(self) -> None:
        self.failures = 0

    async def wait(self, stop: asyncio.Event) -> None:
        await sleep_unless_stopped(self.next_delay(), stop)


async def sleep_unless_stopped(seconds: float, stop: asyncio.Event) -> None:
    """Sleeps, but returns at once when the process is asked to stop."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """Runs `work`, but abandons it (cancelled, returning None) as soon as `stop` is set, so
    a 30-second long-poll never delays a shutdown."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None
