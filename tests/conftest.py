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
