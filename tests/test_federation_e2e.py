"""Issue 11's inter-agency setting, for real: two homeservers federating on loopback.

The bot and the agency users live on server A. A partner on server B sits in the encrypted
coordination and approvals rooms, and B is not in `allowed_servers`: whatever the partner
does (commands, votes, redactions, invites) is refused or ignored, and audited; while they
are in a room, dossier content is withheld there. Once B is allowed and the partner holds a
role, they work like anyone else.

Nothing here waits on timing. What the bot did is read from its replies and its audit
trail; what it did NOT do is checked after a barrier: a command sent after the event by
the same user in the same room, so it follows that event on server A's timeline, which
the bot handles in order (its reply comes after the event's effects committed)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nio
import pytest
from sqlalchemy import text

from storage.db import Database
from tests.conftest import users_on
from tests.support.bot_runner import InProcessBot
from tests.support.homeserver import Federation
from tests.support.matrix_user import MatrixUser, content
from tests.support.world import World, build_world
from tests.test_measures_e2e import WAIT, open_dossier, prompt_of, propose, start_bot

pytestmark = pytest.mark.homeserver

TITLE = "Visit of the Minister of Z"  # what open_dossier names the dossier
NO_ROLE = "you have no role in Aegis"
WITHHELD = "Withheld: not everyone in this room may read this"

AuditRow = dict[str, Any]


class AuditTrail:
    """The bot's audit log, read the way an auditor would, while the bot writes it."""

    def __init__(self, database_url: str) -> None:
        self.db = Database(database_url)

    async def rows(self) -> list[AuditRow]:
        async with self.db.snapshot() as session:
            found = await session.execute(
                text("SELECT actor, action, target, event_id, detail FROM audit_log ORDER BY seq")
            )
            return [{**r._mapping, "detail": json.loads(r.detail or "{}")} for r in found]

    async def entry(self, **expected: str) -> AuditRow:
        """The first entry with these column values, once the bot has written it."""
        deadline = asyncio.get_running_loop().time() + WAIT
        while True:
            found = [
                row
                for row in await self.rows()
                if all(row[column] == value for column, value in expected.items())
            ]
            if found:
                return found[0]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no audit entry with {expected} within {WAIT}s")
            await asyncio.sleep(0.1)

    async def by(self, actor: str) -> list[AuditRow]:
        return [row for row in await self.rows() if row["actor"] == actor]


@dataclass
class Setting:
    """Agency users and the bot on server A (`world`), a partner on server B."""

    world: World
    partner: MatrixUser
    trail: AuditTrail
    federated: Federation

    @property
    def approvals(self) -> str:
        return self.world.setup.rooms["approvals"]

    async def allow_partner(self, bot: InProcessBot, roles: list[str]) -> InProcessBot:
        """The operator adds B to allowed_servers and seeds the partner's roles: a restart."""
        await bot.stop()
        setup = self.world.setup
        setup.allowed_servers = [self.federated.a.server_name, self.federated.b.server_name]
        setup.roles[self.partner.user_id] = roles
        return await start_bot(self.world, setup.write_config())


@pytest.fixture
async def setting(
    federated: Federation,
    database_url: str,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Setting]:
    async with (
        users_on(federated.a, tmp_path_factory) as on_a,
        users_on(federated.b, tmp_path_factory) as on_b,
    ):
        world = await build_world(federated.a, on_a, database_url, tmp_path)
        partner = await on_b("partner")
        assert partner.user_id.endswith(":" + federated.b.server_name)
        trail = AuditTrail(database_url)
        try:
            yield Setting(world, partner, trail, federated)
        finally:
            await trail.db.close()


def ignored_or_refused(row: AuditRow) -> bool:
    """An audit entry that records an attempt without effect (`refused:…`, `….ignored`)."""
    action = str(row["action"])
    return action.startswith("refused:") or action.endswith("ignored")


async def answer(user: MatrixUser, room: str, command: str) -> tuple[str, str]:
    """(command event ID, plain body of the bot's reply to it)."""
    event_id = await user.say(room, command)
    reply = await user.reply_to(room, event_id, timeout=WAIT)
    return event_id, str(content(reply).get("body", ""))


async def ask(user: MatrixUser, room: str, command: str) -> str:
    return (await answer(user, room, command))[1]


async def scroll_back_to(user: MatrixUser, room: str, event_id: str) -> None:
    """Pages back through the room's history (as a client does) until `event_id` shows.

    A server that joined a room late has only what came after the join; paging back makes
    it fetch older events from the other server (backfill). Until then it refuses to
    relate anything to them ("Can't send relation to unknown event")."""
    start: str | None = None
    while True:
        page = await user.client.room_messages(room, start=start, limit=100)
        assert isinstance(page, nio.RoomMessagesResponse), page
        if any(getattr(e, "event_id", None) == event_id for e in page.chunk):
            return
        assert page.chunk and page.end, f"{event_id} is not in the history {user.user_id} sees"
        start = page.end


def not_cleared(reply: str) -> set[str]:
    """The user IDs a withheld reply names (a line, or a field, of the reply)."""
    found = re.search(r"^(?:• )?Not cleared: (.*)$", reply, re.MULTILINE)
    return set(found.group(1).split(", ")) if found else set()


async def redact(user: MatrixUser, room: str, event_id: str) -> str:
    """The redaction's own event ID, to find it in the audit trail."""
    response = await user.client.room_redact(room, event_id)
    assert isinstance(response, nio.RoomRedactResponse), response
    return str(response.event_id)


async def make_moderator(world: World, room: str, user: MatrixUser) -> None:
    """The room's creator gives `user` power level 50 (may redact others' events), and
    waits until `user`'s own server has the new power levels."""
    admin = world.admin.client
    state = await admin.room_get_state_event(room, "m.room.power_levels")
    assert isinstance(state, nio.RoomGetStateEventResponse), state
    levels = dict(state.content)
    levels["users"] = {**levels.get("users", {}), user.user_id: 50}
    put = await admin.room_put_state(room, "m.room.power_levels", levels)
    assert isinstance(put, nio.RoomPutStateResponse), put
    await user.wait_for(
        room,
        lambda e: (
            isinstance(e, nio.PowerLevelsEvent) and e.power_levels.users.get(user.user_id) == 50
        ),
        timeout=WAIT,
    )


# ---------------------------------------------------------------------------- refused, then allowed


async def test_foreign_partner_is_refused_and_audited_until_allowed(setting: Setting) -> None:
    world, partner, trail = setting.world, setting.partner, setting.trail
    coordination, approvals = world.coordination, setting.approvals
    bot = await start_bot(world, world.setup.write_config())
    try:
        # Before the partner is in any room: a dossier and a measure awaiting approval.
        dossier = await open_dossier(world, TITLE)
        proposal, _ = await propose(
            world.alice, coordination, f"!measure propose {dossier} patrol night rounds"
        )
        prompt = await prompt_of(world, world.admin, proposal)
        await world.seat(partner, "coordination", "approvals")

        # Commands: refused, naming no content, and audited with the command's event.
        for command in ("!ping", f"!dossier show {dossier}"):
            event_id, reply = await answer(partner, coordination, command)
            assert NO_ROLE in reply and TITLE not in reply, reply
            refused = await trail.entry(actor=partner.user_id, event_id=event_id)
            assert refused["action"].startswith("refused:"), refused

        # A vote (Element-style, encrypted) does not count, and that is audited.
        await scroll_back_to(partner, approvals, prompt.event_id)
        vote = await partner.react(approvals, prompt.event_id, "✅", encrypted=True)
        ignored = await trail.entry(actor=partner.user_id, event_id=vote)
        assert (ignored["action"], ignored["target"]) == ("vote.ignored", proposal), ignored
        # Its redaction changes nothing: there was no vote to withdraw.
        await redact(partner, approvals, vote)
        _, barrier = await answer(partner, approvals, "!ping")  # after the redaction on A
        assert NO_ROLE in barrier, barrier
        rows = await trail.rows()
        decided = {"vote.approve", "vote.withdrawn", "proposal.approved", "proposal.rejected"}
        assert not [r for r in rows if r["target"] == proposal and r["action"] in decided], rows

        # An invite into a room on B: declined, and audited.
        theirs = await partner.create_room("partner agency", invite=[world.setup.user_id])
        declined = await trail.entry(actor=partner.user_id, target=theirs)
        assert declined["action"] == "refused:invite", declined
        assert "server is not allowed" in declined["detail"]["reason"], declined
        # The bot answers an invite (leaves) before its next sync: once a later command is
        # answered, it has, and it did not join. (Server B is not asked: when the bot's
        # rejection reaches B before B stored its own invite, B refuses it and server A
        # rejects locally, so B may show the bot as invited for good.)
        _, barrier = await answer(partner, coordination, "!ping")
        assert NO_ROLE in barrier, barrier
        joined = await bot.app.client.joined_rooms()
        assert isinstance(joined, nio.JoinedRoomsResponse), joined
        assert theirs not in joined.rooms and coordination in joined.rooms, joined.rooms

        # Nothing the partner did took effect: every entry under their name is a refusal
        # or something ignored.
        for row in await trail.by(partner.user_id):
            assert ignored_or_refused(row), row

        # B allowed, the partner a liaison: they work like anyone else.
        bot = await setting.allow_partner(bot, ["liaison"])
        pong = await ask(partner, coordination, "!ping")
        assert pong.startswith("pong"), pong
        shown = await ask(partner, coordination, f"!dossier show {dossier}")
        assert TITLE in shown and dossier in shown and WITHHELD not in shown, shown
    finally:
        await bot.stop()


# ---------------------------------------------------------------------------- redactions


async def test_foreign_moderator_cannot_withdraw_an_approvers_vote(
    setting: Setting, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Even with the power to redact in the approvals room (a partner agency's moderator),
    a redaction of someone else's ✅ leaves the vote counted, and is audited."""
    world, partner, trail = setting.world, setting.partner, setting.trail
    approvals = setting.approvals
    approvers = []
    async with users_on(setting.federated.a, tmp_path_factory) as on_a:
        for name in ("ap1", "ap2"):
            approver = await on_a(name)
            world.setup.roles[approver.user_id] = ["approver"]
            await world.admin.invite(approvals, approver.user_id)
            await approver.join(approvals)
            approvers.append(approver)
        ap1, ap2 = approvers
        bot = await start_bot(world, world.setup.write_config(approval={"quorum": 2}))
        try:
            dossier = await open_dossier(world, TITLE)
            proposal, _ = await propose(
                world.alice, world.coordination, f"!measure propose {dossier} patrol at the gate"
            )
            prompt = await prompt_of(world, ap1, proposal)
            await world.seat(partner, "approvals")
            await make_moderator(world, approvals, partner)

            vote = await ap1.react(approvals, prompt.event_id, "✅", encrypted=True)
            await trail.entry(actor=ap1.user_id, action="vote.approve", event_id=vote)
            await partner.wait_for(approvals, lambda e: e.event_id == vote, timeout=WAIT)
            redaction = await redact(partner, approvals, vote)
            _, barrier = await answer(partner, approvals, "!ping")  # after the redaction on A
            assert NO_ROLE in barrier, barrier
            rows = await trail.rows()
            assert not [r for r in rows if r["action"] == "vote.withdrawn"], rows
            audited = [
                r for r in rows if r["actor"] == partner.user_id and r["event_id"] == redaction
            ]
            assert audited, f"the partner's redaction of ap1's vote is not audited: {rows}"
            assert all(ignored_or_refused(r) for r in audited), audited

            # ap1's vote still counts: with ap2's, the quorum of two is reached.
            await ap2.wait_for(approvals, lambda e: e.event_id == redaction, timeout=WAIT)
            await ap2.react(approvals, prompt.event_id, "✅")
            approved = await trail.entry(action="proposal.approved", target=proposal)
            assert ap1.user_id in approved["detail"]["by"], approved
            assert ap2.user_id in approved["detail"]["by"], approved
        finally:
            await bot.stop()


# ---------------------------------------------------------------------------- audience


async def test_dossier_content_is_withheld_while_a_foreign_user_is_in_the_room(
    setting: Setting,
) -> None:
    world, partner = setting.world, setting.partner
    coordination = world.coordination
    bot = await start_bot(world, world.setup.write_config())
    try:
        dossier = await open_dossier(world, TITLE)
        await world.seat(partner, "coordination")

        # The partner's join is on A's timeline before this command: the bot knows.
        withheld = await ask(world.alice, coordination, f"!dossier show {dossier}")
        assert WITHHELD in withheld, withheld
        assert not_cleared(withheld) == {partner.user_id}, withheld
        assert TITLE not in withheld, withheld

        # B allowed and the partner a liaison: the same command answers in full, to both.
        bot = await setting.allow_partner(bot, ["liaison"])
        for user in (world.alice, partner):
            shown = await ask(user, coordination, f"!dossier show {dossier}")
            assert TITLE in shown and WITHHELD not in shown, shown
    finally:
        await bot.stop()
