"""The harness itself: if these fail, every end-to-end test would fail for the wrong reason."""

from __future__ import annotations

import nio
import pytest

from tests.conftest import UserFactory, users_on
from tests.support.homeserver import Federation, Homeserver
from tests.support.matrix_user import content

pytestmark = pytest.mark.homeserver


async def test_encrypted_message_reaction_and_redaction(user_factory: UserFactory) -> None:
    alice = await user_factory("alice")
    bob = await user_factory("bob")
    room = await alice.create_room("harness", invite=[bob.user_id])
    await bob.join(room)
    await alice.wait_for_member(room, bob.user_id)

    event_id = await alice.say(room, "hello bob")
    message = await bob.wait_for(room, lambda e: getattr(e, "event_id", None) == event_id)
    assert isinstance(message, nio.RoomMessageText)
    assert message.decrypted
    assert content(message)["body"] == "hello bob"

    plain = await bob.react(room, event_id, "👍")
    crypted = await bob.react(room, event_id, "✅", encrypted=True)
    for reaction_id, key, was_encrypted in ((plain, "👍", False), (crypted, "✅", True)):
        reaction = await alice.wait_for(room, lambda e, r=reaction_id: e.event_id == r)
        assert isinstance(reaction, nio.ReactionEvent)
        assert reaction.decrypted is was_encrypted
        assert (reaction.reacts_to, reaction.key) == (event_id, key)

    await alice.redact(room, event_id)
    redaction = await bob.wait_for(room, lambda e: isinstance(e, nio.RedactionEvent))
    assert redaction.redacts == event_id  # type: ignore[attr-defined]


async def test_two_encrypted_reactions_from_one_device_both_arrive(
    user_factory: UserFactory,
) -> None:
    """Each raw encrypted send needs its own transaction ID: with a repeated one (such as
    the string "None"), Synapse answers the second send with the first event's ID and never
    delivers it, so a vote after a first vote from the same device would silently vanish."""
    alice = await user_factory("alice")
    bob = await user_factory("bob")
    room = await alice.create_room("two-reactions", invite=[bob.user_id])
    await bob.join(room)
    await alice.wait_for_member(room, bob.user_id)
    first_message = await alice.say(room, "first")
    second_message = await alice.say(room, "second")
    await bob.wait_for(room, lambda e: e.event_id == second_message)

    sent = [
        (await bob.react(room, first_message, "✅", encrypted=True), first_message, "✅"),
        (await bob.react(room, second_message, "❌", encrypted=True), second_message, "❌"),
    ]
    assert sent[0][0] != sent[1][0]
    for reaction_id, target, key in sent:
        reaction = await alice.wait_for(room, lambda e, r=reaction_id: e.event_id == r)
        assert isinstance(reaction, nio.ReactionEvent)
        assert reaction.decrypted
        assert (reaction.sender, reaction.reacts_to, reaction.key) == (bob.user_id, target, key)


async def test_reply_helpers(user_factory: UserFactory) -> None:
    alice = await user_factory("alice")
    bob = await user_factory("bob")
    room = await alice.create_room("replies", invite=[bob.user_id])
    await bob.join(room)
    await bob.wait_for_member(room, alice.user_id)
    command = await alice.say(room, "!ping")
    await bob.wait_for(room, lambda e: e.event_id == command)
    reply = {
        "msgtype": "m.notice",
        "body": "pong",
        "m.relates_to": {"m.in_reply_to": {"event_id": command}},
    }
    await bob._send(room, "m.room.message", reply)
    notice = await alice.reply_to(room, command)
    assert content(notice)["body"] == "pong"
    assert [e.event_id for e in alice.replies(room, sender=bob.user_id)] == [notice.event_id]


async def test_sync_survives_homeserver_restart(
    homeserver: Homeserver, user_factory: UserFactory
) -> None:
    alice = await user_factory("alice")
    bob = await user_factory("bob")
    room = await alice.create_room("restart", invite=[bob.user_id])
    await bob.join(room)
    await alice.wait_for_member(room, bob.user_id)

    homeserver.stop()
    homeserver.start()

    event_id = await alice.say(room, "still there?")
    message = await bob.wait_for(room, lambda e: e.event_id == event_id, timeout=60)
    assert content(message)["body"] == "still there?"


async def test_two_homeservers_federate_with_encryption(
    federated: Federation, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A room on A, a member on B: invite and join cross, encrypted messages go both ways."""
    assert federated.a.server_name != federated.b.server_name
    async with (
        users_on(federated.a, tmp_path_factory) as on_a,
        users_on(federated.b, tmp_path_factory) as on_b,
    ):
        alice, bob = await on_a("alice"), await on_b("bob")
        assert bob.user_id.endswith(":" + federated.b.server_name)
        room = await alice.create_room("federated", invite=[bob.user_id])
        await bob.join(room)
        await alice.wait_for_member(room, bob.user_id)

        there = await alice.say(room, "hello from A")
        message = await bob.wait_for(room, lambda e: e.event_id == there)
        assert message.decrypted and content(message)["body"] == "hello from A"
        back = await bob.say(room, "hello from B")
        answer = await alice.wait_for(room, lambda e: e.event_id == back)
        assert answer.decrypted and content(answer)["body"] == "hello from B"
