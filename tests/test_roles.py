"""Roles with four eyes, through the real dispatcher, workflow and database (SQLite and
PostgreSQL): no self-grant, privileged grants wait for a second admin's ✅, seeded roles
always hold, every change is announced, and `aegis role` on the host (the real CLI in a
child process) is the audited recovery path. tests/test_roles_e2e.py proves the Matrix
wiring."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from commands import Reply, RoomKey, Severity
from commands.measure_views import reacted
from config import Role
from storage.db import Database
from tests.support.chat import BRUSSELS, Chat, text_of
from tests.support.databases import TEST_AUDIT_KEY
from workflow import Policy
from workflow.approvals import Ignored
from workflow.model import ProposalState
from workflow.role_model import RequestDecision, RequestState

ADMIN, ADMIN2, ADMIN3 = "@adm:aegis.test", "@adm2:aegis.test", "@adm3:aegis.test"
LIAISON = "@lia:aegis.test"
ANALYST = "@ana:aegis.test"
EVE = "@eve:aegis.test"  # no role at first
BOT = "@aegis:aegis.test"
REPO = Path(__file__).resolve().parents[1]


def make_chat(db: Database) -> Chat:
    roles: dict[str, set[Role]] = {
        ADMIN: {Role.ADMIN},
        ADMIN2: {Role.ADMIN},
        ADMIN3: {Role.ADMIN, Role.LIAISON},
        LIAISON: {Role.LIAISON},
        ANALYST: {Role.ANALYST},
    }
    return Chat(db, roles, policy=Policy(timezone=BRUSSELS, expire_after=timedelta(hours=72)))


@pytest.fixture
def chat(database: Database) -> Chat:
    return make_chat(database)


async def audit_rows(db: Database) -> list[tuple[str, str, str, dict[str, Any]]]:
    async with db.transaction() as s:
        rows = await s.execute(
            text("SELECT actor, action, target, detail FROM audit_log ORDER BY seq")
        )
        return [(a, b, c, json.loads(d)) for a, b, c, d in rows.all()]


async def roles_of(chat: Chat, user: str) -> frozenset[Role]:
    async with chat.workflow() as workflow:
        return await workflow.roles_of(user)


def told(reply: Reply) -> dict[str, list[str]]:
    """Titles of the announcements, by room."""
    rooms: dict[str, list[str]] = {}
    for announcement in reply.also:
        rooms.setdefault(str(announcement.room), []).append(announcement.reply.title)
    return rooms


async def request_approver(chat: Chat, by: str, user: str, role: str = "approver") -> Reply:
    reply = await chat.say(by, f"!role grant {user} {role}")
    assert reply.severity is Severity.SUCCESS, text_of(reply)
    ref = reply.title.split(":")[0]
    await chat.posted(f"grant:{ref}", f"$grant-{ref}")
    return reply


# ---------------------------------------------------------------------------- no self-grant


async def test_no_one_grants_a_role_to_themselves(chat: Chat, database: Database) -> None:
    for role in ("analyst", "approver", "admin"):
        refused = await chat.say(ADMIN, f"!role grant {ADMIN} {role}")
        assert refused.severity is Severity.ERROR and "themselves" in refused.title, role
        assert not refused.also
    assert await roles_of(chat, ADMIN) == {Role.ADMIN}
    assert "waiting" not in text_of(await chat.say(ADMIN2, "!role list"))
    refusals = [r for r in await audit_rows(database) if r[1] == "refused:role grant"]
    assert [(a, t) for a, _, t, _ in refusals] == [(ADMIN, ADMIN)] * 3
    assert all("themselves" in d["reason"] for *_, d in refusals)


# ---------------------------------------------------------------------------- at once


async def test_other_roles_are_granted_at_once_and_announced(
    chat: Chat, database: Database
) -> None:
    granted = await chat.say(ADMIN, f"!role grant {EVE} analyst")
    assert granted.severity is Severity.SUCCESS and granted.title == f"{EVE} now holds analyst"
    assert await roles_of(chat, EVE) == {Role.ANALYST}
    expected = [f"Role change: {EVE} now holds analyst"]
    assert told(granted) == {"coordination": expected, "approvals": expected}
    revoked = await chat.say(ADMIN, f"!role revoke {EVE} analyst")
    assert revoked.severity is Severity.SUCCESS and await roles_of(chat, EVE) == frozenset()
    expected = [f"Role change: {EVE} no longer holds analyst"]
    assert told(revoked) == {"coordination": expected, "approvals": expected}
    assert [dict(a.reply.fields) for a in revoked.also] == [{"By": ADMIN}] * 2
    actions = [(a, b, t) for a, b, t, _ in await audit_rows(database)]
    assert (ADMIN, "role.grant", EVE) in actions and (ADMIN, "role.revoke", EVE) in actions


# ---------------------------------------------------------------------------- four eyes


async def test_an_approver_grant_waits_for_a_second_admins_confirmation(
    chat: Chat, database: Database
) -> None:
    # A measure is waiting; the would-be approver's ✅ on it does not count yet.
    opened = await chat.say(LIAISON, '!dossier open person "Visit of the President"')
    dossier = opened.title.removeprefix("Opened ")
    await chat.say(LIAISON, f"!measure propose {dossier} patrol night rounds")
    await chat.posted("prompt:P-1", "$prompt-P-1")

    reply = await request_approver(chat, ADMIN, EVE)
    assert reply.title == f"R-1: approver for {EVE} waits for a second admin"
    prompt, notice = reply.also
    assert prompt.room is RoomKey.APPROVALS and prompt.ref == "grant:R-1"
    assert prompt.reactions == ("✅", "❌")
    assert dict(prompt.reply.fields) == {"Role": "approver", "For": EVE, "Requested by": ADMIN}
    assert notice.room is RoomKey.COORDINATION and notice.reply.title.startswith("R-1: ")
    assert Role.APPROVER not in await roles_of(chat, EVE)
    assert (await chat.react(EVE, "$prompt-P-1")).ignored is Ignored.NOT_APPROVER
    assert "R-1 waiting: approver for" in text_of(await chat.say(ADMIN3, "!role list"))
    again = await chat.say(ADMIN2, f"!role grant {EVE} approver")
    assert again.severity is Severity.ERROR and "R-1 already asks" in again.title

    grant = "$grant-R-1"
    assert (await chat.react(BOT, grant, own=True)).ignored is Ignored.OWN
    assert (await chat.react(ADMIN, grant)).ignored is Ignored.REQUESTER
    assert (await chat.react(EVE, grant)).ignored is Ignored.NOT_ADMIN
    assert (await chat.react(LIAISON, grant, "👍")).ignored is Ignored.NOT_ADMIN
    assert (await chat.react(ADMIN3, grant, "🎉")).ignored is Ignored.NOT_A_VOTE
    assert Role.APPROVER not in await roles_of(chat, EVE)
    async with chat.workflow() as workflow:
        before = await workflow.store.roles_version()

    confirmed = await chat.react(ADMIN2, grant, "✔️")
    assert confirmed.grant is not None and confirmed.grant.outcome is RequestState.CONFIRMED
    assert confirmed.grant.by == ADMIN2
    assert await roles_of(chat, EVE) == {Role.APPROVER}
    async with chat.workflow() as workflow:
        assert await workflow.store.roles_version() != before
    posts = reacted(confirmed, BRUSSELS)
    edit = posts[0]
    assert edit.replaces == "grant:R-1" and edit.reply.title.startswith("CONFIRMED: R-1")
    changes = [(str(a.room), a.reply.title) for a in posts[1:]]
    change = f"Role change: {EVE} now holds approver"
    # Coordination, approvals, and the requester's room (the pipeline posts a notice once
    # per room, so here, where that room is coordination, only twice).
    assert changes == [("coordination", change), ("approvals", change), ("!coordination", change)]
    fields = dict(posts[1].reply.fields)
    assert fields == {"Request": "R-1", "Requested by": ADMIN, "Confirmed by": ADMIN2}

    # Decided once; the new approver's ✅ now counts.
    assert (await chat.react(ADMIN3, grant, "❌")).ignored is Ignored.DECIDED
    assert Role.APPROVER in await roles_of(chat, EVE)
    approved = await chat.react(EVE, "$prompt-P-1")
    assert approved.decision is not None
    assert approved.decision.outcome is ProposalState.APPROVED

    rows = await audit_rows(database)
    assert (ADMIN, "role.requested", EVE, {"role": "approver", "request": "R-1"}) in rows
    [grant_row] = [r for r in rows if r[1] == "role.grant"]
    assert grant_row == (
        ADMIN2,
        "role.grant",
        EVE,
        {"role": "approver", "request": "R-1", "requested_by": ADMIN},
    )
    ignored = {(a, d["reason"]) for a, b, t, d in rows if b == "vote.ignored" and t == "R-1"}
    assert ignored == {
        (ADMIN, "four eyes: the requester's confirmation never counts"),
        (EVE, "not an admin"),
        (LIAISON, "not an admin"),
        (ADMIN3, "the proposal is decided already"),
    }


async def test_the_grantee_cannot_confirm_their_own_grant(chat: Chat) -> None:
    await request_approver(chat, ADMIN, ADMIN3)
    assert (await chat.react(ADMIN3, "$grant-R-1")).ignored is Ignored.GRANTEE
    assert Role.APPROVER not in await roles_of(chat, ADMIN3)
    confirmed = await chat.react(ADMIN2, "$grant-R-1")
    assert confirmed.grant is not None and Role.APPROVER in await roles_of(chat, ADMIN3)


@pytest.mark.parametrize("rejecter", [ADMIN, ADMIN2])
async def test_an_admins_cross_rejects_the_grant(
    chat: Chat, database: Database, rejecter: str
) -> None:
    await request_approver(chat, ADMIN, EVE, "warning_approver")
    assert (await chat.react(LIAISON, "$grant-R-1", "❌")).ignored is Ignored.NOT_ADMIN
    rejected = await chat.react(rejecter, "$grant-R-1", "❌")
    assert rejected.grant is not None and rejected.grant.outcome is RequestState.REJECTED
    assert await roles_of(chat, EVE) == frozenset()
    posts = reacted(rejected, BRUSSELS)
    assert posts[0].replaces == "grant:R-1" and posts[0].reply.title.startswith("REJECTED: R-1")
    assert {str(a.room) for a in posts[1:]} == {"coordination", "approvals", "!coordination"}
    assert all(
        a.reply.title == f"R-1 rejected: {EVE} does not get warning_approver" for a in posts[1:]
    )
    assert (await chat.react(ADMIN3, "$grant-R-1")).ignored is Ignored.DECIDED
    assert await roles_of(chat, EVE) == frozenset()
    rows = await audit_rows(database)
    assert (rejecter, "role.rejected", EVE, {"role": "warning_approver", "request": "R-1"}) in rows


async def test_an_unconfirmed_grant_expires_like_a_proposal(chat: Chat, database: Database) -> None:
    await request_approver(chat, ADMIN, EVE, "admin")
    chat.advance(hours=71)
    assert await chat.tick() == []
    chat.advance(hours=2)
    [expired] = await chat.tick()
    assert isinstance(expired, RequestDecision) and expired.outcome is RequestState.EXPIRED
    assert await chat.tick() == []
    assert (await chat.react(ADMIN2, "$grant-R-1")).ignored is Ignored.DECIDED
    assert await roles_of(chat, EVE) == frozenset()
    rows = await audit_rows(database)
    assert ("aegis", "role.expired", EVE, {"role": "admin", "request": "R-1"}) in rows


# ---------------------------------------------------------------------------- the seed holds


async def test_a_config_role_cannot_be_revoked_from_chat(chat: Chat, database: Database) -> None:
    refused = await chat.say(ADMIN, f"!role revoke {ADMIN2} admin")
    assert refused.severity is Severity.ERROR
    assert refused.title == (
        f"{ADMIN2} holds admin from the config file; only the config file can take it away"
    )
    assert not refused.also and Role.ADMIN in await roles_of(chat, ADMIN2)
    refusals = [r for r in await audit_rows(database) if r[1] == "refused:role revoke"]
    assert [(a, t) for a, _, t, _ in refusals] == [(ADMIN, ADMIN2)]
    assert "config file" in refusals[0][3]["reason"]


async def test_the_seed_holds_over_a_revocation_recorded_earlier(chat: Chat) -> None:
    """Before this issue a chat revocation of a seeded role was recorded and won; such rows
    must not take a role the config file gives."""
    async with chat.workflow() as workflow:
        await workflow.store.set_role(ADMIN2, "admin", False, ADMIN, chat.now)
        await workflow.store.set_role(ADMIN2, "analyst", True, ADMIN, chat.now)
    assert await roles_of(chat, ADMIN2) == {Role.ADMIN, Role.ANALYST}
    assert f"{ADMIN2}: admin (config), analyst" in text_of(await chat.say(ADMIN, "!role list"))


async def test_an_admin_still_cannot_revoke_their_own_admin_role(chat: Chat) -> None:
    await request_approver(chat, ADMIN, EVE, "admin")
    await chat.react(ADMIN2, "$grant-R-1")
    refused = await chat.say(EVE, f"!role revoke {EVE} admin")
    assert refused.severity is Severity.ERROR and "their own admin" in refused.title
    revoked = await chat.say(ADMIN, f"!role revoke {EVE} admin")
    assert revoked.severity is Severity.SUCCESS and await roles_of(chat, EVE) == frozenset()


# ---------------------------------------------------------------------------- aegis role


def write_config(path: Path, database_url: str) -> Path:
    config = {
        "matrix": {
            "homeserver": "http://127.0.0.1:9",
            "user_id": "@aegis:aegis.test",
            "password": "unused",
        },
        "database": {"url": database_url},
        "rooms": {
            "coordination": "!coordination:aegis.test",
            # An alias the homeserver (down here) cannot resolve: the change still holds.
            "approvals": "#approvals:aegis.test",
            "operations": "!operations:aegis.test",
            "early_warning": "!early:aegis.test",
        },
        "roles": {ADMIN: ["admin"], LIAISON: ["liaison"]},
        "audit": {"key": TEST_AUDIT_KEY},  # the key of the `database` fixture's trail
    }
    path.write_text(yaml.safe_dump(config))
    return path


def aegis(*args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process, as an operator runs it on the host."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


async def test_aegis_role_is_the_audited_recovery_path(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    config = str(write_config(tmp_path / "aegis.yaml", database_url))
    operator = f"cli:{getpass.getuser()}"

    # A grant of a privileged role from the host needs no second admin.
    granted = aegis("role", "grant", EVE, "admin", "-c", config)
    assert granted.returncode == 0, granted.stderr
    assert f"{EVE} now holds admin (audited as {operator})" in granted.stdout
    assert "not announced in #approvals:aegis.test: cannot resolve it" in granted.stderr
    listed = aegis("role", "list", "-c", config)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert f"{ADMIN}\tadmin (config)" in lines and f"{EVE}\tadmin" in lines

    revoked = aegis("role", "revoke", EVE, "admin", "-c", config)
    assert revoked.returncode == 0 and f"{EVE} no longer holds admin" in revoked.stdout
    # Seeded roles stay: the file is where they are changed.
    seeded = aegis("role", "revoke", ADMIN, "admin", "-c", config)
    assert seeded.returncode == 1 and "only the config file can take it away" in seeded.stderr
    bad = aegis("role", "grant", "eve", "admin", "-c", config)
    assert bad.returncode == 2 and "not a Matrix user ID" in bad.stderr
    helped = aegis("role", "grant", "--help")
    assert "no second admin" in helped.stdout and "recovery path" in helped.stdout

    rows = await audit_rows(database)
    assert (operator, "role.grant", EVE, {"role": "admin"}) in rows
    assert (operator, "role.revoke", EVE, {"role": "admin"}) in rows
    [refusal] = [r for r in rows if r[1] == "refused:role revoke"]
    assert refusal[0] == operator and refusal[2] == ADMIN
    async with database.transaction() as s:
        posted = (await s.execute(text("SELECT room_id, content FROM outbox ORDER BY id"))).all()
    bodies = [(room, json.loads(content)["body"]) for room, content in posted]
    assert bodies == [
        ("!coordination:aegis.test", f"Role change: {EVE} now holds admin\nBy: {operator}"),
        ("!coordination:aegis.test", f"Role change: {EVE} no longer holds admin\nBy: {operator}"),
    ]
