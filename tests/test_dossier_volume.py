"""At 10,000 dossiers and 50,000 assessments, list, filter, find and show still answer right.
(Handling times are measured by bench/dossier_volume.py, not asserted here.)"""

from __future__ import annotations

from sqlalchemy import text

from commands import Severity
from config import Role
from storage.db import Database
from storage.dossiers import WALK_FROM
from tests.support.chat import Chat
from tests.support.seed import seed_dossiers

READER = "@reader:aegis.test"


async def test_list_and_find_answer_at_volume(database: Database) -> None:
    await seed_dossiers(database, dossiers=10_000, assessments=50_000)
    chat = Chat(database, {READER: {Role.POLICE}, "@lia:aegis.test": {Role.LIAISON}})
    listing = await chat.say(READER, "!dossier list")
    assert listing.severity is Severity.INFO and len(listing.lines) == 20
    assert "in all)" in listing.title
    serious = await chat.say(READER, "!dossier list status=all level>=4 kind=event")
    assert serious.lines and all("4 VERY SERIOUS" in line for line in serious.lines)
    found = await chat.say(READER, "!dossier find EXT/4242")
    assert [line.split(" ")[0] for line in found.lines] == ["D-2025-4242"]
    by_note = await chat.say(READER, "!dossier find note 777 about")
    assert by_note.lines
    # A common word (thousands of matches) takes the walk by activity: the same page and
    # count as sorting every match would give.
    async with database.snapshot() as s:
        matches = "SELECT dossier_id FROM dossier_terms WHERE term >= 'summit' AND term < 'summiu'"
        expected = list(
            await s.scalars(
                text(
                    f"SELECT ref FROM dossiers WHERE id IN ({matches}) "
                    "ORDER BY updated_at DESC, id DESC LIMIT 20"
                )
            )
        )
        total = await s.scalar(text(f"SELECT count(DISTINCT dossier_id) FROM ({matches}) m"))
    assert total > WALK_FROM
    common = await chat.say(READER, "!dossier find summit")
    assert [line.split(" ")[0] for line in common.lines] == expected
    assert common.title == f"{total} found for “summit”, the 20 most recently active shown"
    shown = await chat.say(READER, "!dossier show D-2025-0042")
    assert shown.title.startswith("D-2025-0042")
    opened = await chat.say("@lia:aegis.test", '!dossier open event "After the seed"')
    assert opened.title == "Opened D-2026-0001"
