"""Persons in a dossier: one dossier can protect a whole family, and the crisis centre draws
up measures "for each dossier and each person concerned". A person has a number inside the
dossier (`D-2026-0007/2`) that is never reused; assessments and measures may name one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from workflow.errors import Refused
from workflow.model import Dossier, Person
from workflow.privacy import LIVE_MEASURES

if TYPE_CHECKING:
    from workflow.core import Workflow

MAX_NAME = 200


@dataclass(frozen=True)
class PersonPick:
    """A person as the sender named them: `D-2026-0007/2`, or `2` inside a dossier that the
    command already names."""

    number: int
    dossier_ref: str | None = None


@dataclass(frozen=True)
class Coverage:
    """The public figure: "75 new dossiers covered 124 persons"."""

    year: int
    dossiers: int
    persons: int


def check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise Refused("name: must not be empty")
    if len(name) > MAX_NAME:
        raise Refused(f"name: at most {MAX_NAME} characters")
    return name


def pick_in(dossier: Dossier, pick: PersonPick) -> Person:
    """The covered person of `dossier` the pick names. Refusals name numbers only: a
    refusal may be read where the dossier's content may not."""
    if pick.dossier_ref is not None and pick.dossier_ref != dossier.ref:
        raise Refused(f"{pick.dossier_ref}/{pick.number} is not a person of {dossier.ref}")
    person = next((p for p in dossier.persons if p.number == pick.number), None)
    if person is None or person.removed_at is not None:
        covered = ", ".join(p.ref for p in dossier.covered) or "none"
        gone = " (removed)" if person is not None else ""
        raise Refused(f"no person {dossier.ref}/{pick.number}{gone}; its persons: {covered}")
    return person


class PersonRules:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow
        self.store = workflow.store

    async def _record(
        self, actor: str, event_id: str, person: Person, action: str, text: str, name: str
    ) -> None:
        await self.store.add_timeline(
            person.dossier_ref,
            at=self.wf.now,
            actor=actor,
            kind="person",
            text=text,
            event_id=event_id,
        )
        await self.wf.audit(
            actor,
            f"dossier.person_{action}",
            person.dossier_ref,
            event_id,
            {"person": person.ref, "name": name},
        )

    async def resolve(self, ref: str, pick: PersonPick | None) -> Person | None:
        """The person an assessment or measure names; None: the dossier as a whole."""
        if pick is None:
            return None
        return pick_in(await self.wf.dossiers.require(ref), pick)

    async def add(self, actor: str, event_id: str, ref: str, name: str) -> Person:
        await self.wf.dossiers.require_open(ref)
        name = check_name(name)
        person = await self.store.add_person(ref, name, self.wf.now)
        text = f"person {person.ref} added: {name}"
        await self._record(actor, event_id, person, "add", text, name)
        return person

    async def rename(self, actor: str, event_id: str, pick: PersonPick, name: str) -> Person:
        ref = self._dossier_of(pick)
        person = pick_in(await self.wf.dossiers.require_open(ref), pick)
        name = check_name(name)
        if name == person.name:
            raise Refused(f"{person.ref} is named so already")
        await self.store.rename_person(person.id, name)
        await self._record(
            actor, event_id, person, "rename", f"person {person.ref} renamed: {name}", name
        )
        return Person(person.id, person.dossier_ref, person.number, name)

    async def remove(self, actor: str, event_id: str, pick: PersonPick) -> Person:
        """Refused while a measure of the person's own is in force or pending: it would
        protect nobody on record."""
        ref = self._dossier_of(pick)
        person = pick_in(await self.wf.dossiers.require_open(ref), pick)
        live = [
            m
            for m in await self.store.measures.listing(ref, LIVE_MEASURES)
            if m.person_id == person.id
        ]
        if live:
            named = ", ".join(f"{m.ref} ({m.state})" for m in sorted(live, key=lambda m: m.id))
            raise Refused(
                f"{person.ref} has measures in force or pending: {named}; end them "
                f"(!measure end M-n <reason>) or withdraw their proposals first"
            )
        await self.store.remove_person(person.id, self.wf.now)
        await self._record(
            actor, event_id, person, "remove", f"person {person.ref} removed", person.name
        )
        return person

    @staticmethod
    def _dossier_of(pick: PersonPick) -> str:
        if pick.dossier_ref is None:
            raise Refused("name the person with the dossier, like D-2026-0007/2")
        return pick.dossier_ref

    async def coverage(self, year: int) -> Coverage:
        """Dossiers opened in `year` and the distinct persons they cover, counted exactly."""
        dossiers, persons = await self.store.coverage(year)
        return Coverage(year, dossiers, persons)
