"""The first sync of an install must not be answered from Synapse's sync cache."""

from __future__ import annotations

from bot.sync_loop import SYNC_FILTER, first_sync_filter


def test_each_initial_sync_request_is_unique_but_asks_for_the_same_rooms() -> None:
    """Synapse keys its cached sync answers on the whole request; two installs of the same
    account starting within minutes must not share one (the earlier one's snapshot would put
    the later one's join point before commands it must not run)."""
    first, second = first_sync_filter(), first_sync_filter()
    assert first != second
    assert first["room"] == second["room"] == SYNC_FILTER["room"]
    assert first["presence"] == SYNC_FILTER["presence"]
