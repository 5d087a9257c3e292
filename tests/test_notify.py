"""Who a post mentions and where its links go, without a homeserver: the pipeline resolves a
post's occasion into the role holders in the room (config and granted roles), and its linked
IDs into matrix.to links to the messages already sent under their refs."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.app import policy as policy_of
from bot.pipeline import Pipeline
from bot.render import notice, permalink, to_html
from commands import Announcement, Reply
from commands.agenda_views import PART_BYTES, Document, Section, parts
from commands.replies import Link, Notify, RoomKey
from config import Occasion, Role, Settings
from storage import outbox
from storage.db import Database
from tests.support.pipeline import pipeline_for
from tests.support.rooms import rooms_with
from workflow import AccessPolicy, Policy

BOT = "@aegis:aegis.test"
MINA, MARC, OTTO = "@mina:aegis.test", "@marc:aegis.test", "@otto:aegis.test"
PAUL, ADMIN = "@paul:aegis.test", "@admin:aegis.test"
FAR = "@far:aegis.test"  # an approver who is not in the approvals room
NEW = "@new:aegis.test"  # invited to the approvals room, not joined yet
GRANTED = "@granted:aegis.test"  # approver by a grant in chat, not by the config
CAUSES = itertools.count()
ROOMS = {key: f"!{key.value}" for key in RoomKey}
SEEDED = {
    MINA: frozenset({Role.APPROVER}),
    MARC: frozenset({Role.APPROVER}),
    OTTO: frozenset({Role.APPROVER, Role.LIAISON}),
    FAR: frozenset({Role.APPROVER}),
    NEW: frozenset({Role.APPROVER}),
    PAUL: frozenset({Role.POLICE}),
    ADMIN: frozenset({Role.ADMIN}),
}


@pytest.fixture
def pipeline(database: Database) -> Pipeline:
    access = AccessPolicy(SEEDED, frozenset(), "aegis.test")
    state = rooms_with(ROOMS.values(), MINA, MARC, OTTO, PAUL, ADMIN, GRANTED, BOT)
    approvals = state[ROOMS[RoomKey.APPROVALS]]
    approvals.invite(NEW)
    approvals.names[MINA] = "Mina <Minister>"
    return pipeline_for(database, __name__, access, ROOMS, state, BOT)


async def posted(pipeline: Pipeline, *announcements: Announcement) -> list[dict[str, Any]]:
    async with pipeline.db.transaction() as session:
        await pipeline.enqueue_announcements(session, f"$cause{next(CAUSES)}", announcements)
    async with pipeline.db.transaction() as session:
        rows = await outbox.pending(session)
        for row in rows:
            await outbox.mark_sent(session, row.id, f"$sent{row.id}", datetime.now(UTC))
    return [row.content for row in rows]


def prompt(notify: Notify | None) -> Announcement:
    return Announcement(RoomKey.APPROVALS, Reply("Approval needed: P-1"), notify=notify)


async def test_a_prompt_mentions_the_approvers_in_the_room_by_name_with_pills(
    pipeline: Pipeline,
) -> None:
    async with pipeline.db.transaction() as session:
        await pipeline.workflow(session).store.set_role(
            GRANTED, Role.APPROVER.value, True, ADMIN, datetime.now(UTC)
        )
    [content] = await posted(pipeline, prompt(Notify(Occasion.APPROVAL, besides=(MARC,))))
    # Config and granted approvers who are joined; not the proposer, not those who would
    # not see it (not in the room, only invited), not the police or the admin.
    assert content["m.mentions"] == {"user_ids": [GRANTED, MINA, OTTO]}
    assert content["msgtype"] == "m.notice"
    assert content["body"].splitlines()[-1] == f"{GRANTED}, Mina <Minister>, {OTTO}"
    html = content["formatted_body"]
    assert '<a href="https://matrix.to/#/%40mina%3Aaegis.test">Mina &lt;Minister&gt;</a>' in html
    assert "<Minister>" not in html and FAR not in html and "new" not in html


async def test_who_is_mentioned_for_what_is_the_configs_choice(pipeline: Pipeline) -> None:
    mentions = {**Policy().mentions, Occasion.APPROVAL: frozenset({Role.ADMIN})}
    pipeline = dataclasses.replace(pipeline, policy=Policy(mentions=mentions))
    order = Announcement(
        RoomKey.OPERATIONS, Reply("EXECUTION ORDER M-1"), notify=Notify(Occasion.ORDER)
    )
    nobody = {**mentions, Occasion.THREAT_LEVEL_4: frozenset()}
    first, second = await posted(pipeline, prompt(Notify(Occasion.APPROVAL)), order)
    assert first["m.mentions"] == {"user_ids": [ADMIN]}
    assert second["m.mentions"] == {"user_ids": [PAUL]}
    quiet = dataclasses.replace(pipeline, policy=Policy(mentions=nobody))
    [level] = await posted(
        quiet,
        Announcement(
            RoomKey.COORDINATION, Reply("THREAT LEVEL 4"), notify=Notify(Occasion.THREAT_LEVEL_4)
        ),
    )
    assert level["m.mentions"] == {} and "<a " not in level["formatted_body"]


async def test_an_edit_mentions_nobody_again(pipeline: Pipeline) -> None:
    announced = dataclasses.replace(prompt(Notify(Occasion.APPROVAL)), ref="prompt:P-1")
    edited = Announcement(RoomKey.APPROVALS, Reply("APPROVED: P-1"), replaces="prompt:P-1")
    _, edit = await posted(pipeline, announced, edited)
    assert edit["m.mentions"] == {} and edit["m.new_content"]["m.mentions"] == {}


async def test_linked_ids_lead_to_the_messages_sent_under_their_refs(pipeline: Pipeline) -> None:
    [_] = await posted(
        pipeline, Announcement(RoomKey.APPROVALS, Reply("Approval needed: P-1"), ref="prompt:P-1")
    )
    listing = Reply(
        "2 proposals waiting",
        lines=("P-1 · <b>bold</b> · P-12 too", "P-12 · not sent yet"),
        links=(Link("P-1", "prompt:P-1"), Link("P-12", "prompt:P-12")),
    )
    [content] = await posted(pipeline, Announcement(RoomKey.COORDINATION, listing))
    url = permalink(ROOMS[RoomKey.APPROVALS], "$sent1")
    assert url == "https://matrix.to/#/%21approvals/%24sent1"
    assert content["formatted_body"] == (
        "<p><strong>2 proposals waiting</strong></p><ul>"
        f'<li><a href="{url}">P-1</a> · &lt;b&gt;bold&lt;/b&gt; · P-12 too</li>'
        "<li>P-12 · not sent yet</li></ul>"
    )
    assert "matrix.to" not in content["body"]


def test_links_are_escaped_and_only_whole_ids() -> None:
    reply = Reply(
        'M-1 "x" M-10 xM-1 M-1.',
        fields=(("Order", "M-1"),),
        links=(Link("M-1", "order:M-1"),),
    )
    html = to_html(reply, {"order:M-1": ("!r:s", '$e"<')})
    link = '<a href="https://matrix.to/#/%21r%3As/%24e%22%3C">M-1</a>'
    assert html == (
        f"<p><strong>{link} &quot;x&quot; M-10 xM-1 {link}.</strong></p><p><b>Order</b>: {link}</p>"
    )
    assert to_html(reply) == to_html(dataclasses.replace(reply, links=()))


def test_the_mentions_section_maps_each_occasion_to_roles() -> None:
    base: dict[str, Any] = {
        "matrix": {
            "homeserver": "https://m.example.org",
            "user_id": "@a:example.org",
            "password": "x",
        },
        "rooms": {k.value: f"!{k.value}:example.org" for k in RoomKey},
    }
    default = policy_of(Settings(**base)).mentions
    assert default == {
        Occasion.APPROVAL: {Role.APPROVER},
        Occasion.SECTOR_WARNING: {Role.WARNING_APPROVER, Role.APPROVER},
        Occasion.ORDER: {Role.POLICE},
        Occasion.THREAT_LEVEL_4: {Role.LIAISON},
    }
    assert default == Policy().mentions
    chosen = Settings(**base, mentions={"order": ["police", "admin"], "threat_level_4": []})
    assert policy_of(chosen).mentions[Occasion.ORDER] == {Role.POLICE, Role.ADMIN}
    assert policy_of(chosen).mentions[Occasion.THREAT_LEVEL_4] == frozenset()
    for wrong in ({"orders": ["police"]}, {"order": ["sheriff"]}):
        with pytest.raises(ValueError):
            Settings(**base, mentions=wrong)


def test_agenda_parts_carry_the_links_of_their_own_ids_and_stay_under_the_limit() -> None:
    count = 400
    items = tuple(f"M-{n} close-protection [active], D-2026-0001" for n in range(1, count))
    links = tuple(Link(f"M-{n}", f"order:M-{n}") for n in range(1, count))
    doc = Document("Ambassades review", (), (Section("Persons", items),), {}, links)
    replies = parts(doc)
    assert len(replies) > 1
    targets = {link.ref: ("!" + "r" * 40 + ":aegis.test", "$" + "e" * 43) for link in links}
    for reply in replies:
        shown = {word for line in reply.lines for word in re.findall(r"M-\d+", line)}
        assert {link.text for link in reply.links} == shown
        html = notice(reply, targets=targets)["formatted_body"]
        assert html.count('<a href="https://matrix.to/#/') == len(shown)
        assert len(json.dumps(notice(reply, targets=targets))) < PART_BYTES + 500
