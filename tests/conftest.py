"""Shared fixtures. The homeserver ones start a real Synapse (see tests/support/homeserver.py)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.support.homeserver import Federation, Homeserver, federation
from tests.support.matrix_user import MatrixUser
from tests.support.world import World, build_world

pytest_plugins = ["tests.support.databases"]

UserFactory = Callable[[str], Awaitable[MatrixUser]]

# Fixtures that start or talk to a homeserver: their tests are few, but each takes seconds
# to minutes, while the other tests take a fraction of a second.
HOMESERVER_FIXTURES = frozenset(
    {"homeserver", "homeserver_default_limits", "federated", "user_factory", "world"}
)
# Tests on a homeserver of their own kind, started once per xdist worker that needs it:
# grouped (`--dist loadgroup`), only one worker starts it.
OWN_HOMESERVERS = {"federated": "federation", "homeserver_default_limits": "default-limits"}


def on_a_homeserver(item: pytest.Item) -> bool:
    names = set(getattr(item, "fixturenames", ()))
    return bool(names & HOMESERVER_FIXTURES) or item.get_closest_marker("homeserver") is not None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The homeserver tests first, the rest in their order after them: the many short tests
    then fill both workers up to the end, instead of one worker finishing a long test alone
    while the other waits. (Before xdist reads the groups, hence tryfirst.)"""
    items.sort(key=lambda item: not on_a_homeserver(item))
    for item in items:
        for fixture, group in OWN_HOMESERVERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def homeserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homeserver]:
    """Relaxed rate limits, so tests measure the bot rather than Synapse's throttling."""
    hs = Homeserver(tmp_path_factory.mktemp("synapse"))
    hs.start()
    yield hs
    hs.stop()


@pytest.fixture(scope="session")
def homeserver_default_limits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homeserver]:
    """Stock rate limits, for tests that need real 429 responses."""
    hs = Homeserver(tmp_path_factory.mktemp("synapse-default-limits"), default_rate_limits=True)
    hs.start()
    yield hs
    hs.stop()


@pytest.fixture(scope="session")
def federated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """Two federating homeservers, started once per session (per xdist worker) on demand."""
    with federation(tmp_path_factory.mktemp("federation")) as pair:
        yield pair


@pytest.fixture
async def user_factory(
    homeserver: Homeserver, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[UserFactory]:
    """Unique localparts keep tests independent on the shared session homeserver."""
    async with users_on(homeserver, tmp_path_factory) as create:
        yield create


@contextlib.asynccontextmanager
async def users_on(
    homeserver: Homeserver, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[UserFactory]:
    users: list[MatrixUser] = []

    async def create(name: str) -> MatrixUser:
        localpart = f"{name}-{secrets.token_hex(4)}"
        user = await MatrixUser.create(
            homeserver, localpart, tmp_path_factory.mktemp(f"store-{localpart}")
        )
        users.append(user)
        return user

    yield create
    for user in users:
        await user.close()


@pytest.fixture
async def world(
    homeserver: Homeserver, user_factory: UserFactory, database_url: str, tmp_path: Path
) -> World:
    """A fresh bot account, its four encrypted rooms and three users, on a fresh database."""
    return await build_world(homeserver, user_factory, database_url, tmp_path)
