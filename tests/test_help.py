"""`!help` on the real commands: headings and nested lists in the reply model and in HTML,
the allowed values of each argument taken from its type, and only the commands the sender's
roles can run."""

from __future__ import annotations

from bot.render import to_html, to_plain
from commands import Dispatcher, Reply, registry
from commands.dispatcher import Outcome
from commands.help import may_use
from commands.replies import Item, Section
from config import Role
from tests.commands_fakes import make_context
from workflow.model import CATEGORIES, DossierKind, MeasureType


async def ask(body: str, *roles: Role) -> Reply:
    ctx, _ = make_context(*roles)
    return await Dispatcher(registry, "!", 4096).dispatch(body, ctx)


def allowed(reply: Reply) -> dict[str, list[str]]:
    """The `Allowed values` section: argument -> the values, as typed."""
    section = next(s for s in reply.sections if s.heading == "Allowed values")
    return {item.text: [sub.split(" — ")[0] for sub in item.sub] for item in section.items}


async def test_a_command_lists_the_values_its_arguments_allow() -> None:
    propose = await ask("!help measure propose", Role.LIAISON)
    assert allowed(propose)["type"] == [t.value for t in MeasureType]
    assert len(allowed(propose)["type"]) == 7
    assert f"close-protection — {MeasureType.CLOSE_PROTECTION.description}" in to_plain(propose)
    opened = allowed(await ask("!help dossier open", Role.LIAISON))
    assert opened["kind"] == [k.value for k in DossierKind]
    assert set(opened["category"]) == {c for valid in CATEGORIES.values() for c in valid}
    assert opened["basis"] == ["status", "threat", "both"]
    threat = allowed(await ask("!help threat log", Role.ANALYST))
    assert threat["level"] == ["1", "2", "3", "4"]


async def test_the_overview_shows_values_the_usage_line_does_not() -> None:
    reply = await ask("!help", Role.LIAISON)
    measure = next(s for s in reply.sections if s.heading == "Measure")
    propose = next(i for i in measure.items if (i.code or "").startswith("!measure propose"))
    assert propose.sub == (f"type: {', '.join(t.value for t in MeasureType)}",)
    listing = next(i for i in measure.items if (i.code or "").startswith("!measure list"))
    assert listing.sub == ()  # `status=<proposed|active|ended|all>` says it already


async def test_help_shows_only_what_the_roles_can_run() -> None:
    for roles in ({Role.POLICE}, {Role.LIAISON}, {Role.ANALYST}, {Role.ADMIN}, set(Role)):
        reply = await ask("!help", *roles)
        shown = {item.code for section in reply.sections for item in section.items}
        expected = {c for c in registry if may_use(c, frozenset(roles))}
        assert len(shown) == len(expected), roles
        for each in expected:
            assert any(code and code.startswith(f"!{each.name}") for code in shown), each.name
    police = to_plain(await ask("!help", Role.POLICE))
    assert "!measure ack" in police and "!dossier open" not in police


async def test_a_bare_group_is_its_help() -> None:
    ctx, _ = make_context(Role.LIAISON)
    ran = await Dispatcher(registry, "!", 4096).run("!dossier", ctx)
    assert ran.outcome is Outcome.OK
    assert ran.reply == await ask("!help dossier", Role.LIAISON)
    assert ran.reply.title == "Dossier commands"
    for group in ("!measure", "!meeting", "!agenda"):
        assert (await ask(group, Role.LIAISON)).sections, group


async def test_help_is_html_headings_and_nested_lists() -> None:
    html = to_html(await ask("!help", Role.LIAISON))
    assert "<h4>Dossier</h4><ul><li><code>!dossier open &lt;kind&gt;" in html
    assert "<ul><li>type: contact-247, priority-calls," in html
    assert "<li> " not in html and "&nbsp;" not in html


def test_sections_are_escaped() -> None:
    reply = Reply("t", sections=(Section("<h1>", (Item("<b>x</b>", code="<i>", sub=("a & b",)),)),))
    html = to_html(reply)
    assert "<h4>&lt;h1&gt;</h4>" in html
    assert (
        "<li><code>&lt;i&gt;</code> — &lt;b&gt;x&lt;/b&gt;<ul><li>a &amp; b</li></ul></li>" in html
    )
    assert to_plain(reply).endswith("\n<h1>\n• <i> — <b>x</b>\n    ◦ a & b")
