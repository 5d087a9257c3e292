"""Dispatching: size limit, lookup and did-you-mean, authorization, generated help, core."""

from __future__ import annotations

from datetime import timedelta

import pytest

from commands import Dispatcher, Reply, Severity, registry
from commands.core import uptime
from commands.dispatcher import Outcome
from config import Role
from tests.commands_fakes import calls, make_context, test_registry


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    calls.clear()


def dispatcher(max_bytes: int = 4096) -> Dispatcher:
    return Dispatcher(test_registry, "!", max_bytes)


@pytest.mark.parametrize(
    ("body", "expected"),
    [("!ping", True), ("  !help me", True), ("!", False), ("! ping", False), ("hello", False)],
)
def test_is_command(body: str, expected: bool) -> None:
    assert dispatcher().is_command(body) is expected


async def test_oversized_text_is_refused_before_anything_else() -> None:
    ctx, sink = make_context()
    body = "!threat log " + "é" * 3000
    reply = await dispatcher().dispatch(body, ctx)
    size = len(body.encode())
    assert reply == Reply(
        f"refused: command text is {size} bytes; the limit is 4096", Severity.ERROR
    )
    assert sink.rows == [] and calls == []


async def test_unknown_command_suggests() -> None:
    ctx, _ = make_context(Role.ANALYST)
    reply = await dispatcher().dispatch("!thraet log x", ctx)
    assert reply.severity is Severity.ERROR
    assert reply.title == "Unknown command !thraet log"
    assert reply.lines == ("Did you mean !threat log?", "Send !help for the list of commands.")


async def test_unknown_single_word_suggests() -> None:
    ctx, _ = make_context(Role.ANALYST)
    reply = await dispatcher().dispatch("!pnig", ctx)
    assert reply.title == "Unknown command !pnig"
    assert reply.lines[0] == "Did you mean !ping?"


async def test_longest_name_wins_and_case_is_ignored() -> None:
    ctx, _ = make_context(Role.ANALYST)
    assert (await dispatcher().dispatch("!THREAT List D-2026-0002", ctx)).title == "listed"
    assert calls == [{"dossier": "D-2026-0002"}]


@pytest.mark.parametrize("body", ["!ping", "!help", "!threat log x", "!nonsense"])
async def test_sender_without_role_is_refused_and_audited(body: str) -> None:
    ctx, sink = make_context()
    reply = await dispatcher().dispatch(body, ctx)
    assert reply == Reply("you have no role in Aegis; ask an admin", Severity.ERROR)
    name = {"!ping": "ping", "!help": "help", "!threat log x": "threat log"}.get(body, "nonsense")
    assert [(r["action"], r["target"], r["event_id"], r["actor"]) for r in sink.rows] == [
        (f"refused:{name}", f"command:{name}", "$event", "@alice:example.org")
    ]
    assert sink.rows[0]["detail"] == {"reason": "you have no role in Aegis; ask an admin"}


async def test_missing_role_is_refused_before_parsing() -> None:
    ctx, sink = make_context(Role.LIAISON)
    reply = await dispatcher().dispatch('!threat log "garbled', ctx)
    assert reply == Reply("you need role analyst for !threat log", Severity.ERROR)
    assert [(r["action"], r["target"]) for r in sink.rows] == [
        ("refused:threat log", "command:threat log")
    ]
    assert calls == []


async def test_admin_does_not_imply_other_roles_but_is_needed_for_admin_commands() -> None:
    admin, _ = make_context(Role.ADMIN)
    analyst, sink = make_context(Role.ANALYST)
    refused = await dispatcher().dispatch("!tl level=1 source=open x", admin)
    assert refused.title == "you need role analyst for !threat log"
    refused = await dispatcher().dispatch("!grant @bob:example.org police", analyst)
    assert refused.title == "you need role admin for !grant"
    assert sink.rows[0]["action"] == "refused:grant"
    assert (await dispatcher().dispatch("!grant @bob:example.org police", admin)).title == (
        "granted"
    )


async def test_handler_exceptions_are_not_caught() -> None:
    ctx, _ = make_context(Role.LIAISON)
    with pytest.raises(RuntimeError, match="handler bug"):
        await dispatcher().dispatch("!crash", ctx)


def entries(reply: Reply, heading: str) -> list[str]:
    """A help section's entries as `usage — help`, the way the plain-text body shows them."""
    section = next(s for s in reply.sections if s.heading == heading)
    return [" — ".join(filter(None, [item.code, item.text])) for item in section.items]


async def test_help_lists_only_usable_commands_grouped() -> None:
    ctx, _ = make_context(Role.LIAISON)
    reply = await dispatcher().dispatch("!help", ctx)
    assert reply.title == "Aegis commands"
    assert [section.heading for section in reply.sections] == ["General"]
    ping = "!ping [<text…>] — Check that the bot is alive; answers with its version and uptime."
    assert ping in entries(reply, "General")
    assert "!count <amount> [<unit>] — Count something." in entries(reply, "General")
    assert not any("threat" in line or "grant" in line for line in entries(reply, "General"))


async def test_help_for_analyst_shows_threat_group() -> None:
    ctx, _ = make_context(Role.ANALYST)
    reply = await dispatcher().dispatch("!help", ctx)
    assert (
        "!threat log [<dossier>] level=<1|2|3> source=<OCAD|police|open> [review=<when>] "
        "<summary…> — Log a threat assessment on a dossier."
    ) in entries(reply, "Threat")


@pytest.mark.parametrize("topic", ["threat log", "tl", "!threat log", "THREAT LOG"])
async def test_help_on_a_command_comes_from_its_declaration(topic: str) -> None:
    ctx, _ = make_context(Role.ANALYST)
    reply = await dispatcher().dispatch(f"!help {topic}", ctx)
    assert reply.title == "!threat log"
    assert reply.code == (
        "!threat log [<dossier>] level=<1|2|3> source=<OCAD|police|open> [review=<when>] <summary…>"
    )
    assert reply.lines == (
        "Log a threat assessment on a dossier.",
        "Example: !threat log D-2026-0007 level=3 source=OCAD online threats",
    )
    assert reply.fields == (("Role", "analyst"), ("Aliases", "!tl"))


async def test_help_on_a_command_the_sender_may_not_run_names_the_role_only() -> None:
    ctx, _ = make_context(Role.LIAISON)
    reply = await dispatcher().dispatch("!help threat log", ctx)
    assert reply.severity is Severity.ERROR and reply.code is None and not reply.sections
    assert reply.title == "!threat log needs role analyst, which you do not have"


async def test_help_uses_the_configured_prefix() -> None:
    ctx, _ = make_context(Role.ADMIN, prefix="?")
    reply = await Dispatcher(test_registry, "?", 4096).dispatch("?help grant", ctx)
    assert reply.code == "?grant <user> <role> [notify=<yes|no>]"
    assert reply.lines[-1] == "Example: ?grant @bob:x analyst"


async def test_help_on_a_group() -> None:
    ctx, _ = make_context(Role.ANALYST)
    reply = await dispatcher().dispatch("!help threat", ctx)
    assert reply.title == "Threat commands"
    assert [line.split(" [")[0] for line in entries(reply, "Commands you may use")] == [
        "!threat log",
        "!threat list",
    ]


@pytest.mark.parametrize("body", ["!threat", "  !THREAT  "])
async def test_a_bare_group_shows_its_help(body: str) -> None:
    ctx, _ = make_context(Role.ANALYST)
    ran = await dispatcher().run(body, ctx)
    assert ran.outcome is Outcome.OK and ran.command == "help"
    assert ran.reply == await dispatcher().dispatch("!help threat", ctx)
    liaison, _ = make_context(Role.LIAISON)
    none = await dispatcher().dispatch(body, liaison)
    assert none.title == "Threat commands" and none.sections == ()
    assert none.lines == ("None of them is open to your roles.",)


async def test_help_unknown_topic_suggests() -> None:
    ctx, _ = make_context(Role.ANALYST)
    reply = await dispatcher().dispatch("!help thret", ctx)
    assert reply.severity is Severity.ERROR
    assert reply.title == "No help on 'thret'"
    assert reply.lines == ("Did you mean !threat?", "Send !help for the list of commands.")


async def test_ping_reports_version_and_uptime() -> None:
    ctx, _ = make_context(Role.POLICE)
    reply = await Dispatcher(registry, "!", 4096).dispatch("!ping  from   ops", ctx)
    assert reply.title == "pong from   ops"
    assert reply.fields == (("Version", "0.1.0"), ("Uptime", "2h 03m"))
    assert (await Dispatcher(registry, "!", 4096).dispatch("!ping", ctx)).title == "pong"


@pytest.mark.parametrize(
    ("elapsed", "shown"),
    [
        (timedelta(minutes=5), "0h 05m"),
        (timedelta(hours=2, minutes=3, seconds=59), "2h 03m"),
        (timedelta(days=3, hours=2, minutes=3), "3d 02h 03m"),
        (timedelta(seconds=-5), "0h 00m"),
    ],
)
def test_uptime_format(elapsed: timedelta, shown: str) -> None:
    assert uptime(elapsed) == shown


def test_real_registry_holds_every_family() -> None:
    names = {c.name for c in registry}
    assert {"help", "ping", "dossier open", "threat log", "role grant", "export"} <= names
