"""Issue 11's acceptance 4 against the real homeserver, on SQLite and PostgreSQL: self-grants
are refused, an `approver` grant waits for a second admin's ✅ on its prompt (the grantee's
✅ on a measure counts only after), a config admin cannot be revoked from chat, and
`aegis role` on the host restores a role while the bot runs.

A "barrier" is a command sent in the same room after a reaction: the bot handles a room's
events in order, so once the barrier's answer is in, the reaction was handled."""

from __future__ import annotations

import getpass

import nio

from tests.conftest import UserFactory
from tests.support.bot_runner import run_aegis
from tests.support.matrix_user import MatrixUser
from tests.support.world import World
from tests.test_measures_e2e import (
    WAIT,
    actions,
    ask,
    audit,
    body,
    bot_events,
    cast,
    decided,
    field,
    from_bot,
    open_dossier,
    preset_prompt,
    prompt_of,
    propose,
    show,
    start_bot,
    title,
)


async def grant_prompt(world: World, user: MatrixUser, request: str) -> nio.Event:
    """The prompt for role request `request`, once both of the bot's own reactions are on it."""
    return await preset_prompt(world, user, f"Second admin needed: {request} —")


async def announced(world: World, user: MatrixUser, change: str) -> None:
    """`Role change: <change>` from the bot, in coordination and in approvals."""
    for key in ("coordination", "approvals"):
        await user.wait_for(
            world.setup.rooms[key],
            from_bot(world, lambda e: title(e).startswith(f"Role change: {change}")),
            WAIT,
        )


async def test_self_grant_refused_and_an_approver_grant_waits_for_a_second_admin(
    world: World, user_factory: UserFactory
) -> None:
    admin2 = await cast(world, user_factory, "admin2", ["admin"])
    # Cleared to read what the rooms carry, but neither an approver nor an admin.
    eve = await cast(world, user_factory, "eve", ["analyst"])
    bot = await start_bot(world, world.setup.write_config())
    try:
        admin, approvals = world.admin, world.setup.rooms["approvals"]
        refused = await ask(admin, world.coordination, f"!role grant {admin.user_id} approver")
        assert "no one grants a role to themselves" in refused, refused

        dossier = await open_dossier(world)
        p1, m1 = await propose(
            world.alice, world.coordination, f"!measure propose {dossier} patrol night rounds"
        )
        measure_prompt = await prompt_of(world, admin2, p1)

        requested = await ask(admin, world.coordination, f"!role grant {eve.user_id} approver")
        assert f"R-1: approver for {eve.user_id} waits for a second admin" in requested
        prompt = await grant_prompt(world, admin2, "R-1")
        assert eve.user_id in title(prompt) and f"Requested by: {admin.user_id}" in body(prompt)

        # Before the confirmation, the grantee's ✅ on a measure does not count; neither the
        # requester's nor the grantee's ✅ confirms the grant.
        await eve.react(approvals, measure_prompt.event_id, "✅")
        await admin.react(approvals, prompt.event_id, "✅", encrypted=True)
        await eve.react(approvals, prompt.event_id, "✅")
        listed = await ask(admin2, approvals, "!role list")
        assert f"R-1 waiting: approver for {eve.user_id}" in listed, listed
        assert field(await show(world, m1), "State") == "proposed"

        await admin2.react(approvals, prompt.event_id, "✅", encrypted=True)
        outcome = await decided(world, admin2, prompt)
        assert f"CONFIRMED by {admin2.user_id}" in outcome, outcome
        await announced(world, admin2, f"{eve.user_id} now holds approver")

        # Now the same user's approval counts.
        await eve.react(approvals, measure_prompt.event_id, "👍")
        assert "APPROVED" in await decided(world, admin2, measure_prompt)
        assert field(await show(world, m1), "State") == "active"

        rows = await audit(world)
        [self_grant] = actions(rows, "refused:role grant")
        assert self_grant["actor"] == admin.user_id
        [requested_row] = actions(rows, "role.requested", eve.user_id)
        assert requested_row["actor"] == admin.user_id
        assert requested_row["detail"] == {"role": "approver", "request": "R-1"}
        [granted] = actions(rows, "role.grant", eve.user_id)
        assert granted["actor"] == admin2.user_id
        assert granted["detail"]["requested_by"] == admin.user_id
        ignored = {(r["actor"], r["detail"]["reason"]) for r in actions(rows, "vote.ignored")}
        assert (eve.user_id, "not an approver") in ignored
        assert (admin.user_id, "four eyes: the requester's confirmation never counts") in ignored
        assert (eve.user_id, "not an admin") in ignored
        assert [r["actor"] for r in actions(rows, "vote.approve", p1)] == [eve.user_id]
        assert rows.index(granted) < rows.index(actions(rows, "vote.approve", p1)[0])
    finally:
        await bot.stop()


async def test_config_admin_stays_and_aegis_role_restores_a_role(
    world: World, user_factory: UserFactory
) -> None:
    admin2 = await cast(world, user_factory, "admin2", ["admin"])
    eve = await cast(world, user_factory, "eve", ["analyst"])
    config = world.setup.write_config()
    bot = await start_bot(world, config)
    try:
        admin, coordination = world.admin, world.coordination
        refused = await ask(admin, coordination, f"!role revoke {admin2.user_id} admin")
        assert "holds admin from the config file" in refused, refused
        assert "users hold a role" in await ask(admin2, coordination, "!role list")

        # A role granted in chat and taken away again, then restored from the host while
        # the bot runs: in force for the next command, announced in both rooms.
        await ask(admin, coordination, f"!role grant {eve.user_id} liaison")
        await ask(admin, coordination, f"!role revoke {eve.user_id} liaison")
        refused = await ask(eve, coordination, '!dossier open event "Forum"')
        assert "you need role liaison" in refused, refused
        code, out, err = await run_aegis("role", "grant", eve.user_id, "liaison", "-c", str(config))
        assert code == 0, err
        assert f"{eve.user_id} now holds liaison" in out
        assert "Opened D-" in await ask(eve, coordination, '!dossier open event "Forum"')
        await announced(world, admin2, f"{eve.user_id} now holds liaison")

        # The host may not take a config role either.
        code, _, err = await run_aegis("role", "revoke", admin2.user_id, "admin", "-c", str(config))
        assert code == 1 and "config file" in err, err

        operator = f"cli:{getpass.getuser()}"
        rows = await audit(world)
        revokes = actions(rows, "refused:role revoke", admin2.user_id)
        assert [r["actor"] for r in revokes] == [admin.user_id, operator]
        grants = actions(rows, "role.grant", eve.user_id)
        assert [r["actor"] for r in grants] == [admin.user_id, operator]
        cli_notices = [
            e
            for e in bot_events(world, admin2, coordination, lambda e: "Role change:" in title(e))
            if f"By: {operator}" in body(e)
        ]
        assert len(cli_notices) == 1
    finally:
        await bot.stop()
