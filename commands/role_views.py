"""What role changes post: the prompt a second admin confirms a grant on, its decided form,
and the notice of every change in coordination and approvals. IDs and role names only, so
every member of those rooms may read them."""

from __future__ import annotations

from commands.replies import Announcement, Reply, RoomKey, Severity
from workflow.role_model import RequestDecision, RequestState, RoleChange, RoleRequest, grant_ref

APPROVE, REJECT = "✅", "❌"
_TOLD = (RoomKey.COORDINATION, RoomKey.APPROVALS)


def changed(change: RoleChange) -> tuple[Announcement, ...]:
    """A role now in force or taken away, told in coordination and approvals."""
    if change.granted:
        title = f"Role change: {change.user_id} now holds {change.role}"
    else:
        title = f"Role change: {change.user_id} no longer holds {change.role}"
    if change.request is None:
        fields: tuple[tuple[str, str], ...] = (("By", change.by),)
    else:
        fields = (
            ("Request", change.request.ref),
            ("Requested by", change.request.requested_by),
            ("Confirmed by", change.by),
        )
    reply = Reply(title, Severity.INFO, fields=fields)
    return tuple(Announcement(room, reply) for room in _TOLD)


def prompt(request: RoleRequest) -> Announcement:
    """Posted in the approvals room with the bot's own ✅ and ❌, so an admin only taps."""
    return Announcement(
        RoomKey.APPROVALS,
        Reply(
            f"Second admin needed: {request.ref} — {request.role} for {request.user_id}",
            Severity.WARNING,
            fields=(
                ("Role", str(request.role)),
                ("For", request.user_id),
                ("Requested by", request.requested_by),
            ),
            lines=(
                f"An admin other than {request.requested_by} and {request.user_id} taps "
                f"{APPROVE} to confirm; any admin's {REJECT} rejects.",
            ),
        ),
        ref=grant_ref(request.id),
        reactions=(APPROVE, REJECT),
    )


def requested(request: RoleRequest) -> Reply:
    """The requester's answer; the prompt goes to approvals and coordination is told."""
    waiting = Reply(
        f"{request.ref}: {request.requested_by} asks that {request.user_id} get {request.role}",
        Severity.INFO,
        lines=(f"In force once a second admin confirms it with {APPROVE} in the approvals room.",),
    )
    return Reply(
        f"{request.ref}: {request.role} for {request.user_id} waits for a second admin",
        Severity.SUCCESS,
        lines=(
            f"An admin other than you and {request.user_id} confirms it with {APPROVE} on the "
            "prompt in the approvals room.",
        ),
        also=(prompt(request), Announcement(RoomKey.COORDINATION, waiting)),
    )


def decided(decision: RequestDecision) -> tuple[Announcement, ...]:
    """The prompt edited to its outcome; the change (or its refusal) told in coordination,
    approvals and the requester's room."""
    request, outcome = decision.request, decision.outcome
    word = {
        RequestState.CONFIRMED: "CONFIRMED",
        RequestState.REJECTED: "REJECTED",
        RequestState.EXPIRED: "EXPIRED",
    }[outcome]
    severity = Severity.SUCCESS if outcome is RequestState.CONFIRMED else Severity.WARNING
    edited = Announcement(
        RoomKey.APPROVALS,
        Reply(
            f"{word}: {request.ref} — {request.role} for {request.user_id}",
            severity,
            fields=(
                ("Decided", f"{word} by {decision.by}"),
                ("Requested by", request.requested_by),
            ),
        ),
        replaces=grant_ref(request.id),
    )
    if outcome is RequestState.CONFIRMED:
        told = changed(RoleChange(request.user_id, request.role, True, decision.by, request))
    else:
        notice = Reply(
            f"{request.ref} {outcome}: {request.user_id} does not get {request.role}",
            Severity.WARNING,
            fields=(("Decided", f"{word} by {decision.by}"),),
        )
        told = tuple(Announcement(room, notice) for room in _TOLD)
    return (edited, *told, Announcement(request.origin_room, told[0].reply))
