"""The cast of an end-to-end test: a bot account with its rooms, an admin, a liaison and a
stranger without any role.

The stranger sits in no room until a test seats him: a member without a role in a room
freezes every post of personal data there (need to know), which only the tests about that
should meet."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.bot_runner import BotSetup, InProcessBot
from tests.support.homeserver import Homeserver
from tests.support.matrix_user import MatrixUser, in_reply_to


@dataclass
class World:
    setup: BotSetup
    admin: MatrixUser
    alice: MatrixUser
    stranger: MatrixUser

    @property
    def coordination(self) -> str:
        return self.setup.rooms["coordination"]

    @asynccontextmanager
    async def running_bot(self) -> AsyncIterator[InProcessBot]:
        """The bot in-process on this world's config, joined and answering."""
        bot = InProcessBot(self.setup.write_config())
        await bot.start()
        try:
            await bot.ready()
            await self.admin.wait_for_member(self.coordination, self.setup.user_id)
            yield bot
        finally:
            await bot.stop()

    async def seat(self, user: MatrixUser, *keys: str) -> None:
        """Invites `user` into the configured rooms named by `keys` and joins them."""
        for key in keys:
            room_id = self.setup.rooms[key]
            await self.admin.invite(room_id, user.user_id)
            await user.join(room_id)

    def answered(self, room_id: str) -> list[str | None]:
        """The command event IDs the bot's notices reply to, in timeline order."""
        return [in_reply_to(e) for e in self.alice.replies(room_id, self.setup.user_id)]


async def build_world(
    homeserver: Homeserver,
    make_user: Callable[[str], Awaitable[MatrixUser]],
    database_url: str,
    workdir: Path,
    encrypted: bool = True,
) -> World:
    setup = BotSetup(homeserver, workdir, database_url)
    # Independent accounts, made side by side.
    _, admin, alice, stranger = await asyncio.gather(
        setup.register_bot(), make_user("admin"), make_user("alice"), make_user("stranger")
    )
    setup.roles = {admin.user_id: ["admin", "liaison"], alice.user_id: ["liaison"]}
    await setup.create_rooms(admin, [alice], encrypted=encrypted)
    return World(setup, admin, alice, stranger)
