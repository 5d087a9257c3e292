"""How a dossier's persons, levels and measures read: one group per person, the dossier as a
whole first, each measure with its ID, type, period and state."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from commands.formatting import age, when
from commands.replies import Group
from workflow.dossiers import Scope
from workflow.model import Assessment, Dossier, Measure, MeasureState


def measure_state(measure: Measure, now: datetime, tz: ZoneInfo) -> str:
    """The state word, and when an approved measure only starts later, that it does:
    `active` is said of a measure actually in force."""
    starts = measure.starts_at
    if measure.state.in_force and starts is not None and starts > now:
        word = "approved" if measure.state is MeasureState.ACTIVE else str(measure.state)
        return f"{word}, starts {when(starts, tz)}"
    if measure.state is MeasureState.PROPOSED:
        return "proposed, awaiting decision"
    return str(measure.state)


def measure_line(measure: Measure, now: datetime, tz: ZoneInfo) -> str:
    """`M-3 · close-protection · Tue 08 Dec 2026 12:00 → … · approved, starts …`."""
    period = f"{when(measure.starts_at, tz)} → {when(measure.ends_at, tz)}"
    return f"{measure.ref} · {measure.type} · {period} · {measure_state(measure, now, tz)}"


def assessment_line(assessment: Assessment, now: datetime, tz: ZoneInfo) -> str:
    return (
        f"level {assessment.level.label}, {age(assessment.created_at, now)} old "
        f"({assessment.source}), review {when(assessment.review_at, tz)}"
    )


def scope_heading(dossier: Dossier, scope: Scope) -> str:
    return scope.person.label if scope.person else f"{dossier.ref} as a whole"


def scope_groups(
    dossier: Dossier, scopes: tuple[Scope, ...], now: datetime, tz: ZoneInfo
) -> tuple[Group, ...]:
    """For `!dossier show`: per scope its current level and its measures in force,
    scheduled or pending."""
    groups = []
    for scope in scopes:
        levels = [assessment_line(a, now, tz) for a in scope.assessments[-1:]]
        measures = [measure_line(m, now, tz) for m in scope.measures]
        groups.append(
            Group(
                scope_heading(dossier, scope),
                (
                    *(levels or ["level: no assessment of its own"]),
                    *(measures or ["measures: none in force, scheduled or pending"]),
                ),
            )
        )
    return tuple(groups)
