"""Personal reminders (`!remind`): "<when> <text>" read in English, Dutch and French, with the
longest leading time phrase as the time; recurrence on the local clock; exactly once, late
posts marked late; list and cancel; reminders when a proposal is decided and before a
dossier starts (following a moved start); purge. Through the real dispatcher, workflow and
database (SQLite and PostgreSQL), at a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from bot.render import notice
from commands import ArgumentError, Reply, Severity
from commands.recurrence import describe as recurrence
from commands.remind_parse import parse_request
from commands.reminder_views import reminder_announcements
from config import Role
from storage.db import Database
from tests.commands_fakes import make_context
from tests.support.chat import BRUSSELS, START, Chat, text_of
from workflow import Policy
from workflow.access import Data
from workflow.reminder_model import PersonalReminder, ReminderFired, ReminderState, Trigger

LIAISON = "@lia:aegis.test"
ANALYST = "@ana:aegis.test"
MINA = "@mina:aegis.test"
STRANGER = "@nobody:aegis.test"
ROOM = "!coordination"
ROLES = {LIAISON: {Role.LIAISON}, ANALYST: {Role.ANALYST}, MINA: {Role.APPROVER}}


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# --- "<who> <when> <text>", without a homeserver or a database -----------------------------
# make_context's now is Wednesday 2026-03-04 11:30 in Brussels (10:30 UTC).


@pytest.mark.parametrize(
    ("source", "at", "words"),
    [
        ("me in 1 minute call back", utc(2026, 3, 4, 10, 31), "call back"),
        ("me tomorrow 9:00 brief", utc(2026, 3, 5, 8, 0), "brief"),
        ("me morgen 9u brief", utc(2026, 3, 5, 8, 0), "brief"),
        ("me demain 9h30 appeler le SPF", utc(2026, 3, 5, 8, 30), "appeler le SPF"),
        ("me volgende vrijdag 14u bel de ambassade", utc(2026, 3, 6, 13, 0), "bel de ambassade"),
        ("me next friday 14:00 meet the prefect", utc(2026, 3, 6, 13, 0), "meet the prefect"),
        # A day-sized span names a day, and a day without a time starts at 00:00 local.
        ("me over 3 dagen rapport nakijken", utc(2026, 3, 6, 23, 0), "rapport nakijken"),
        ("me dans 2 heures relire la note", utc(2026, 3, 4, 12, 30), "relire la note"),
        ("me 2026-12-03 10:00 summit brief", utc(2026, 12, 3, 9, 0), "summit brief"),
        ("me in 3 hours from the embassy", utc(2026, 3, 4, 13, 30), "from the embassy"),
        ("me in 2 hours second shift", utc(2026, 3, 4, 12, 30), "second shift"),
        ('me "tomorrow 9:00" brief', utc(2026, 3, 5, 8, 0), "brief"),
        ("room in 2 hours check the door", utc(2026, 3, 4, 12, 30), "check the door"),
    ],
)
def test_the_longest_leading_time_phrase_is_the_time_and_the_rest_the_text(
    source: str, at: datetime, words: str
) -> None:
    ctx, _ = make_context()
    request = parse_request(source, ctx)
    assert (request.at, request.text, request.trigger) == (at, words, Trigger.AT)
    assert request.target == (None if source.startswith("room") else ctx.actor)
    assert request.room_id == ctx.room_id


@pytest.mark.parametrize(
    ("source", "rule", "words"),
    [
        ("every monday 9:00", "WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0", "threat review"),
        ("elke maandag 9u", "WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0", "dreigingsbeeld"),
        ("chaque lundi 9h", "WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0", "revue"),
        ("every day at 18:30", "DAILY;BYHOUR=18;BYMINUTE=30", "log off"),
        ("every weekday 8:15", "WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=8;BYMINUTE=15", "digest"),
        (
            "elke dinsdag en donderdag om 14 uur",
            "WEEKLY;BYDAY=TU,TH;BYHOUR=14;BYMINUTE=0",
            "overleg",
        ),
        ("tous les vendredis 7h45", "WEEKLY;BYDAY=FR;BYHOUR=7;BYMINUTE=45", "rapport"),
        ("every friday 5pm", "WEEKLY;BYDAY=FR;BYHOUR=17;BYMINUTE=0", "wrap up"),
    ],
)
def test_recurrences_in_three_languages(source: str, rule: str, words: str) -> None:
    ctx, _ = make_context()
    request = parse_request(f"me {source} {words}", ctx)
    assert request.rrule == f"FREQ={rule};BYSECOND=0"
    assert request.text == words and request.at is None


def test_recurrences_read_in_words() -> None:
    assert recurrence("FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0;BYSECOND=0") == (
        "every Monday at 09:00"
    )
    assert recurrence("FREQ=WEEKLY;BYDAY=TU,TH;BYHOUR=14;BYMINUTE=5") == (
        "every Tuesday and Thursday at 14:05"
    )
    assert recurrence("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=8") == (
        "every weekday (Monday to Friday) at 08:00"
    )
    assert recurrence("FREQ=DAILY;BYHOUR=18;BYMINUTE=30") == "every day at 18:30"


@pytest.mark.parametrize(
    ("source", "proposal"),
    [
        ("me when P-5 is decided", 5),
        ("me wanneer P-12 beslist is", 12),
        ("me quand P-3 est décidé", 3),
    ],
)
def test_when_a_proposal_is_decided(source: str, proposal: int) -> None:
    ctx, _ = make_context()
    request = parse_request(source, ctx)
    assert (request.trigger, request.proposal_id, request.text) == (
        Trigger.DECIDED,
        proposal,
        "",
    )


@pytest.mark.parametrize(
    ("source", "offset", "words"),
    [
        ("1 day before D-2026-0001 starts", timedelta(days=1), ""),
        ("2 hours before d-2026-1 starts: check the route", timedelta(hours=2), "check the route"),
        ("1 dag voor D-2026-0001 begint route nakijken", timedelta(days=1), "route nakijken"),
        ("30 minutes avant D-2026-0001 commence", timedelta(minutes=30), ""),
        ("1 week before D-2026-0001 starts", timedelta(weeks=1), ""),
    ],
)
def test_before_a_dossier_starts(source: str, offset: timedelta, words: str) -> None:
    ctx, _ = make_context()
    request = parse_request(f"me {source}", ctx)
    assert (request.trigger, request.dossier_ref, request.offset, request.text) == (
        Trigger.START,
        "D-2026-0001",
        offset,
        words,
    )


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("", "say who, when and what"),
        ("me", "say when"),
        ("everyone in 1 hour x", "say who to remind: me, @user:server or room"),
        ("@bad in 1 hour x", "is not a Matrix user ID"),
        ("me banana split", "no time at the start of 'banana split'"),
        ("me tomorrow 9:00", "say what to remind of"),
        ("me every monday brief", "say at what time"),
        ("me every monday 25:00 brief", "is not a time of day"),
        ("me 3 parsecs before D-2026-0001 starts", "is not a unit"),
        ("me in 1 hour " + "x" * 501, "at most 500"),
    ],
)
def test_malformed_requests_say_what_is_wrong(source: str, says: str) -> None:
    ctx, _ = make_context()
    with pytest.raises(ArgumentError) as wrong:
        parse_request(source, ctx)
    assert says in str(wrong.value)


# --- through the dispatcher, the workflow and the database --------------------------------


@pytest.fixture
def chat(database: Database) -> Chat:
    return Chat(database, ROLES, policy=Policy(timezone=BRUSSELS))


async def run_reminders(chat: Chat) -> list[ReminderFired]:
    """One scheduler pass over the reminder steps, as bot/scheduler.py runs them."""
    async with chat.workflow() as workflow:
        due = await workflow.reminders.due()
    done = []
    for step in due:
        async with chat.workflow() as workflow:
            outcome = await workflow.reminders.run(step)
        if outcome is not None:
            done.append(outcome)
    return done


async def next_due(chat: Chat) -> datetime | None:
    async with chat.workflow() as workflow:
        return await workflow.reminders.next_due()


def posted(fired: ReminderFired) -> tuple[str, str, tuple[str, ...]]:
    [announcement] = reminder_announcements(fired, BRUSSELS)
    return announcement.room, text_of(announcement.reply), announcement.mentions


def ok(reply: Reply) -> Reply:
    assert reply.severity is Severity.SUCCESS, text_of(reply)
    return reply


async def test_me_is_posted_once_in_the_room_it_was_set_in_mentioning_the_sender(
    chat: Chat,
) -> None:
    # START is Wed 25 Nov 2026 10:00 in Brussels.
    reply = ok(await chat.say(LIAISON, "!remind me in 10 minutes call the embassy back", "!ops"))
    assert reply.title == "Reminder RM-1 set for you"
    assert dict(reply.fields) == {"When": "Wed 25 Nov 2026 10:10", "Text": "call the embassy back"}
    assert reply.carries is None
    assert await next_due(chat) == START + timedelta(minutes=10)
    chat.advance(minutes=9)
    assert await run_reminders(chat) == []
    chat.advance(minutes=1)
    [fired] = await run_reminders(chat)
    assert not fired.late
    room, said, mentions = posted(fired)
    assert (room, mentions) == ("!ops", (LIAISON,))
    assert said.startswith("Reminder: call the embassy back")
    assert "late" not in said.lower()
    content = notice(
        reminder_announcements(fired, BRUSSELS)[0].reply, mentions={u: u for u in mentions}
    )
    assert content["m.mentions"] == {"user_ids": [LIAISON]}
    assert 'href="https://matrix.to/#/%40lia%3Aaegis.test"' in content["formatted_body"]
    chat.advance(minutes=5)
    assert await run_reminders(chat) == []
    assert await next_due(chat) is None
    assert text_of(await chat.say(LIAISON, "!remind list", "!ops")) == (
        "You have no pending reminders in this room"
    )


async def test_a_reminder_missed_while_down_is_posted_late_and_says_so(chat: Chat) -> None:
    ok(await chat.say(LIAISON, "!remind me morgen 9u brief de liaison"))
    chat.now = utc(2026, 11, 26, 11, 30)  # the bot was down from before 9:00 until 12:30
    [fired] = await run_reminders(chat)
    assert fired.late
    _, said, _ = posted(fired)
    assert said.startswith("LATE — Reminder: brief de liaison")
    assert "Was due Thu 26 Nov 2026 09:00, posted late." in said
    assert "(in " not in said
    assert await run_reminders(chat) == []


async def test_a_crash_between_the_pass_and_the_commit_posts_once(database: Database) -> None:
    """The fired key and the reminder's state commit with the message or not at all: a
    second process (or a rerun after a crash) finds it done."""
    first = Chat(database, ROLES, policy=Policy(timezone=BRUSSELS))
    ok(await first.say(LIAISON, "!remind me in 1 minute x"))
    first.advance(minutes=1)
    async with first.workflow() as workflow:
        [step] = await workflow.reminders.due()
    async with first.workflow() as workflow:
        assert await workflow.reminders.run(step) is not None
    async with first.workflow() as workflow:
        assert await workflow.reminders.run(step) is None


async def test_a_recurring_reminder_fires_each_week_at_local_time_across_daylight_saving(
    database: Database,
) -> None:
    # The clocks go back on Sunday 25 October 2026: 9:00 is 07:00 UTC on the Monday before,
    # 08:00 UTC on the Monday after.
    chat = Chat(database, ROLES, now=utc(2026, 10, 15, 12, 0), policy=Policy(timezone=BRUSSELS))
    reply = ok(await chat.say(LIAISON, "!remind room elke maandag 9u weekoverzicht"))
    assert dict(reply.fields)["When"] == "every Monday at 09:00, next Mon 19 Oct 2026 09:00"
    fired_at = []
    for _ in range(12 * 24):  # hourly for 12 days
        for fired in await run_reminders(chat):
            assert not fired.late
            room, said, mentions = posted(fired)
            assert (room, mentions) == (ROOM, ())
            fired_at.append(chat.now)
            assert "Next: Mon " in said and "(every Monday at 09:00)" in said
        chat.advance(hours=1)
    assert fired_at == [utc(2026, 10, 19, 7, 0), utc(2026, 10, 26, 8, 0)]
    assert [m.astimezone(BRUSSELS).hour for m in fired_at] == [9, 9]


async def test_a_recurring_reminder_after_downtime_posts_once_late_then_resumes(
    chat: Chat,
) -> None:
    ok(await chat.say(LIAISON, "!remind me every day 8:00 digest"))
    chat.now = utc(2026, 11, 29, 7, 30)  # down from Wednesday to Sunday 8:30
    [fired] = await run_reminders(chat)
    assert fired.late and fired.due_at == utc(2026, 11, 26, 7, 0)
    assert fired.next_at == utc(2026, 11, 30, 7, 0)
    assert await run_reminders(chat) == []
    chat.now = utc(2026, 11, 30, 7, 0)
    [fired] = await run_reminders(chat)
    assert not fired.late


async def test_list_shows_this_rooms_reminders_by_or_for_the_user(chat: Chat) -> None:
    ok(await chat.say(LIAISON, "!remind me in 2 hours second"))
    ok(await chat.say(LIAISON, "!remind me in 1 hour first"))
    ok(await chat.say(ANALYST, f"!remind {LIAISON} in 3 hours from ana"))
    ok(await chat.say(ANALYST, "!remind me in 3 hours ana's own"))
    ok(await chat.say(LIAISON, "!remind me in 1 hour elsewhere", "!ops"))
    listing = await chat.say(LIAISON, "!remind list")
    assert listing.title == "3 pending reminders in this room"
    assert listing.lines == (
        "RM-2 · Wed 25 Nov 2026 11:00 · for you · first",
        "RM-1 · Wed 25 Nov 2026 12:00 · for you · second",
        "RM-3 · Wed 25 Nov 2026 13:00 · for you · from ana",
    )


async def test_cancel_by_setter_or_target_only_and_audited(chat: Chat) -> None:
    ok(await chat.say(ANALYST, f"!remind {LIAISON} in 1 hour call"))
    refused = await chat.say(MINA, "!remind cancel RM-1")
    assert refused.severity is Severity.ERROR and "you have no reminder RM-1" in text_of(refused)
    assert (await chat.say(LIAISON, "!remind cancel rm-1")).title == "Cancelled reminder RM-1"
    again = await chat.say(ANALYST, "!remind cancel RM-1")
    assert "RM-1 is cancelled already" in text_of(again)
    chat.advance(hours=2)
    assert await run_reminders(chat) == []
    async with chat.db.transaction() as session:
        rows = await session.execute(
            text("SELECT actor, action, target FROM audit_log WHERE target = 'RM-1' ORDER BY seq")
        )
        assert [tuple(r) for r in rows.all()] == [
            (ANALYST, "reminder.set", "RM-1"),
            (LIAISON, "reminder.cancel", "RM-1"),
        ]


async def test_user_reminders_only_for_users_with_a_role(chat: Chat) -> None:
    refused = await chat.say(LIAISON, f"!remind {STRANGER} in 1 hour x")
    assert "has no role in Aegis" in text_of(refused)
    ok(await chat.say(LIAISON, f"!remind {ANALYST} in 1 hour read the OCAD note"))
    chat.advance(hours=1)
    [fired] = await run_reminders(chat)
    room, said, mentions = posted(fired)
    assert (room, mentions) == (ROOM, (ANALYST,))
    assert f"Set by: {LIAISON}" in said
    assert "Reminder: read the OCAD note" in said


async def test_a_user_without_a_role_cannot_set_reminders(chat: Chat) -> None:
    reply = await chat.say(STRANGER, "!remind me in 1 hour x")
    assert reply.severity is Severity.ERROR
    async with chat.workflow() as workflow:
        assert await workflow.reminders.next_due() is None


async def test_times_in_the_past_are_refused(chat: Chat) -> None:
    reply = await chat.say(LIAISON, "!remind me 2026-11-24 10:00 too late")
    assert "that time has passed" in text_of(reply)


async def dossier(chat: Chat, start: str) -> str:
    reply = ok(await chat.say(LIAISON, f'!dossier open person "Visit" start="{start}"'))
    return reply.title.removeprefix("Opened ")


async def proposal(chat: Chat, ref: str) -> str:
    reply = ok(await chat.say(LIAISON, f"!measure propose {ref} patrol visit programme"))
    number = reply.title.split()[1].rstrip(":")
    await chat.posted(f"prompt:{number}", f"$prompt-{number}")
    return number


async def test_when_a_proposal_is_decided_it_fires_once_with_the_outcome(chat: Chat) -> None:
    ref = await dossier(chat, "2026-12-10 10:00")
    p = await proposal(chat, ref)
    reply = ok(await chat.say(ANALYST, f"!remind me when {p} is decided brief the team"))
    assert dict(reply.fields)["When"] == f"when {p} is decided"
    assert reply.carries is Data.DOSSIER
    assert await run_reminders(chat) == []
    assert await next_due(chat) is None  # not known until decided
    chat.advance(minutes=5)
    await chat.react(MINA, f"$prompt-{p}")
    [fired] = await run_reminders(chat)
    assert not fired.late
    room, said, mentions = posted(fired)
    assert (room, mentions) == (ROOM, (ANALYST,))
    assert said.startswith("Reminder: brief the team")
    assert f"Decision: {p} approved" in said
    assert await run_reminders(chat) == []
    decided = await chat.say(ANALYST, f"!remind me when {p} is decided")
    assert f"{p} is approved already" in text_of(decided)


async def test_before_a_dossier_starts_follows_a_moved_start(chat: Chat) -> None:
    ref = await dossier(chat, "2026-12-10 10:00")
    reply = ok(await chat.say(LIAISON, f"!remind me 1 day before {ref} starts check the route"))
    assert dict(reply.fields)["When"] == f"1 day before {ref} starts: Wed 09 Dec 2026 10:00"
    ok(await chat.say(LIAISON, f'!dossier edit {ref} start="2026-12-12 14:00"'))
    assert await next_due(chat) == utc(2026, 12, 11, 13, 0)
    chat.now = utc(2026, 12, 9, 9, 30)
    assert await run_reminders(chat) == []
    chat.now = utc(2026, 12, 11, 13, 0)
    [fired] = await run_reminders(chat)
    room, said, mentions = posted(fired)
    assert (room, mentions) == (ROOM, (LIAISON,))
    assert said.startswith("Reminder: check the route")
    assert f"Dossier: {ref} starts Sat 12 Dec 2026 14:00" in said
    # Done once: a later move does not bring it back.
    ok(await chat.say(LIAISON, f'!dossier edit {ref} start="2026-12-20 14:00"'))
    chat.now = utc(2026, 12, 19, 13, 0)
    assert await run_reminders(chat) == []


async def test_a_dossier_reminder_is_withheld_where_not_all_may_read_it(chat: Chat) -> None:
    ref = await dossier(chat, "2026-12-10 10:00")
    ok(await chat.say(LIAISON, f"!remind me 1 hour before {ref} starts"))
    chat.now = utc(2026, 12, 10, 8, 0)
    [fired] = await run_reminders(chat)
    [announcement] = reminder_announcements(fired, BRUSSELS)
    assert announcement.reply.carries is Data.DOSSIER
    assert announcement.brief is not None
    assert announcement.brief.title == "Reminder RM-1"
    assert announcement.reply.title == f"Reminder: {ref} starts in 1 hour"


async def test_a_purge_removes_the_reminders_about_the_dossier(chat: Chat) -> None:
    ref = await dossier(chat, "2026-12-10 10:00")
    ok(await chat.say(LIAISON, f"!remind me 1 day before {ref} starts secret plan"))
    ok(await chat.say(LIAISON, "!remind me in 1 hour unrelated"))
    ok(await chat.say(LIAISON, f"!dossier close {ref} done"))
    async with chat.workflow() as workflow:
        before = await workflow.privacy.personal_data(ref)
        assert before.reminders == 1
        removed = await workflow.privacy.purge("aegis", ref, 0)
    assert removed is not None and removed.reminders == 1
    async with chat.db.transaction() as session:
        texts = (await session.execute(text("SELECT text FROM reminders"))).scalars().all()
    assert texts == ["unrelated"]


def test_the_reminder_text_is_escaped_in_html() -> None:
    reminder = PersonalReminder(
        id=7,
        created_by=LIAISON,
        target=LIAISON,
        room_id=ROOM,
        text='<a href="https://evil.example">click</a> & <b>now</b>',
        trigger=Trigger.AT,
        due_at=START,
        rrule=None,
        proposal_id=None,
        dossier_ref=None,
        offset=None,
        state=ReminderState.PENDING,
        created_at=START,
        last_fired_at=None,
    )
    [announcement] = reminder_announcements(ReminderFired(reminder, START, False), BRUSSELS)
    html = notice(announcement.reply, mentions={u: u for u in announcement.mentions})[
        "formatted_body"
    ]
    assert 'evil.example">' not in html and "<b>now</b>" not in html
    assert "&lt;a href=&quot;https://evil.example&quot;&gt;click&lt;/a&gt; &amp;" in html


async def test_a_reminder_before_a_start_already_too_close_is_refused(chat: Chat) -> None:
    ref = await dossier(chat, "2026-11-25 18:00")
    reply = await chat.say(LIAISON, f"!remind me 1 day before {ref} starts")
    assert f"that time has passed: {ref} starts sooner than that" in text_of(reply)
