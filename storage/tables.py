"""Table definitions. Migrations in storage/migrations are the source of truth for the schema;
these declarations must match them (a test compares the two)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class SyncState(Base):
    """Named cursors, chiefly the sync token, written only after a sync's events committed."""

    __tablename__ = "sync_state"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class HandledEvent(Base):
    """One row per Matrix event already processed: the unique key makes a replay a no-op."""

    __tablename__ = "handled_events"
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    room_id: Mapped[str] = mapped_column(String(255))
    handled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CommandEventRow(Base):
    """A command the bot answered, and whether an edit of it may still run (`open`: it
    failed to parse) or is answered "already done" (`done`) or "already answered"."""

    __tablename__ = "command_events"
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    room_id: Mapped[str] = mapped_column(String(255))
    sender: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(8))
    thread_root: Mapped[str | None] = mapped_column(String(255), nullable=True)
    handled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class RoomJoin(Base):
    """Where the bot's presence in a room begins; anything older is history, never executed."""

    __tablename__ = "room_joins"
    room_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    joined_ts: Mapped[int] = mapped_column(BigInteger)


class OutboxMessage(Base):
    """Replies waiting to be sent. Written in the same transaction as the effect that caused
    them; the transaction ID is derived from the cause, so a resend is de-duplicated."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    txn_id: Mapped[str] = mapped_column(String(128), unique=True)
    room_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_event_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A name for messages referred to later: a prompt that reactions vote on, an order.
    ref: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # For personal data: what the sender checks again just before sending, and the brief
    # form it falls back to (storage/outbox.py PendingMessage.audience). Cleared once sent.
    # `content` itself is dropped a grace window after the row is closed (sent, withheld or
    # failed): only txn_id, ref, room_id and sent_event_id stay, for de-duplication and for
    # finding a prompt or order again.
    audience: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index("ix_outbox_pending", "sent_at", "id"),
        Index("ix_outbox_sent_event", "sent_event_id"),
    )


class OutboxDossierRow(Base):
    """The dossiers an outbox message names, written with it: a purge finds the messages
    about a dossier by this (to redact them, or withdraw them unsent) long after their
    content was dropped. IDs only."""

    __tablename__ = "outbox_dossiers"
    message_id: Mapped[int] = mapped_column(
        ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    dossier_ref: Mapped[str] = mapped_column(String(16), primary_key=True)

    __table_args__ = (Index("ix_outbox_dossiers_dossier", "dossier_ref", "message_id"),)


class AuditEntry(Base):
    """Append-only, hash-chained: each row's hash covers its fields and the previous hash."""

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255))
    event_id: Mapped[str] = mapped_column(String(255))
    detail: Mapped[str] = mapped_column(Text)
    # The hash covers this digest, not the detail: retention may tombstone the detail.
    detail_digest: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_audit_target", "target"),)


class AuditRead(Base):
    """The dossiers a `dossier.read` entry displayed, one row each: "who read D-x" is then an
    indexed lookup, also for reads that listed many dossiers, instead of a scan of details.
    It holds IDs only, so a purge leaves it as it is; `aegis audit verify` checks it against
    the entries it files."""

    __tablename__ = "audit_reads"
    seq: Mapped[int] = mapped_column(
        ForeignKey("audit_log.seq"), primary_key=True, autoincrement=False
    )
    dossier_ref: Mapped[str] = mapped_column(String(16), primary_key=True)

    __table_args__ = (Index("ix_audit_reads_dossier", "dossier_ref", "seq"),)


class AuditSalt(Base):
    """The random salt that keys an entry's detail digest. A purge deletes it with the
    detail, so the digest left in the chain can no longer confirm a guessed name."""

    __tablename__ = "audit_salts"
    seq: Mapped[int] = mapped_column(
        ForeignKey("audit_log.seq"), primary_key=True, autoincrement=False
    )
    salt: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """Chain heads queued for posting in Matrix (the anchors `aegis audit verify` reads
    back); here only so the bot knows when the next one is due."""

    __tablename__ = "audit_checkpoints"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DossierCounter(Base):
    """One row per year; incremented inside the opening transaction, so IDs have no gaps."""

    __tablename__ = "dossier_counters"
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer)


class DossierRow(Base):
    __tablename__ = "dossiers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(16), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(8))
    basis: Mapped[str | None] = mapped_column(String(8), nullable=True)
    external_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lead: Mapped[str | None] = mapped_column(String(255), nullable=True)
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    room_id: Mapped[str | None] = mapped_column(String(255), nullable=True, unique=True)
    # When `!dossier room` was asked: a second request is refused before the room exists.
    room_requested_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    level: Mapped[int | None] = mapped_column(Integer, nullable=True)
    level_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Set by `aegis purge`: personal data removed, the row kept as a tombstone.
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        Index("ix_dossiers_activity", "status", "updated_at"),
        Index("ix_dossiers_kind", "kind", "updated_at"),
        Index("ix_dossiers_lead", "lead"),
        Index("ix_dossiers_level", "level"),
        Index("ix_dossiers_recent", "updated_at", "id"),
    )


class PersonRow(Base):
    """A person a dossier covers: one dossier can protect a whole family. `number` is the
    person's short reference inside the dossier (`D-2026-0007/2`), never reused: a removed
    person keeps the row (and the number), since ended measures and old assessments name it,
    and the yearly count of persons covered must not change afterwards."""

    __tablename__ = "dossier_persons"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"))
    number: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (Index("ix_dossier_persons_number", "dossier_id", "number", unique=True),)


class NoteRow(Base):
    __tablename__ = "dossier_notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"), index=True)
    author: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event_id: Mapped[str] = mapped_column(String(255))


# Terms compare in code point order on both backends (SQLite's default BINARY does), so
# `term >= w AND term < after_prefix(w)` is exactly "starts with w" and a btree range scan.
SEARCH_TERM = String(64).with_variant(String(64, collation="C"), "postgresql")


class DossierTermRow(Base):
    """The search index of `!dossier find`: each dossier's folded words (case and accents
    removed, workflow/search.py), with the field each was found in. Rebuilt by
    storage/search.py `refresh_terms` on every write to a searched field; a purge empties it."""

    __tablename__ = "dossier_terms"
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"), primary_key=True)
    field: Mapped[str] = mapped_column(String(16), primary_key=True)
    term: Mapped[str] = mapped_column(SEARCH_TERM, primary_key=True)

    __table_args__ = (Index("ix_dossier_terms_term", "term", "dossier_id"),)


class AssessmentRow(Base):
    __tablename__ = "threat_assessments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"))
    level: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    external_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)
    review_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    assessed_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event_id: Mapped[str] = mapped_column(String(255))
    # The person assessed; None: the dossier as a whole.
    person_id: Mapped[int | None] = mapped_column(ForeignKey("dossier_persons.id"), nullable=True)

    __table_args__ = (Index("ix_assessments_dossier", "dossier_id", "id"),)


class TimelineRow(Base):
    """Every change to a dossier, in order: who, when, what, and from which Matrix event."""

    __tablename__ = "dossier_timeline"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(String(255))

    __table_args__ = (Index("ix_timeline_dossier", "dossier_id", "id"),)


class RoleGrant(Base):
    """Grants and revocations made in chat or with `aegis role`. The config file's roles are
    the seed under them: a revocation here never takes a seeded role away."""

    __tablename__ = "role_grants"
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    granted: Mapped[bool] = mapped_column(Boolean)
    changed_by: Mapped[str] = mapped_column(String(255))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RoleRequestRow(Base):
    """A grant of approver, warning_approver or admin waiting for a second admin's ✅: only
    its confirmation writes the grant to role_grants."""

    __tablename__ = "role_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(255))
    origin_room: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(12), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(255), nullable=True)


class MeasureRow(Base):
    __tablename__ = "measures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"), index=True)
    type: Mapped[str] = mapped_column(String(24))
    details: Mapped[str] = mapped_column(Text)
    executor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    review_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    state: Mapped[str] = mapped_column(String(12), index=True)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The person protected; None: the dossier as a whole (a patrol at the family's home).
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("dossier_persons.id"), nullable=True, index=True
    )


class ProposalRow(Base):
    """A request for the minister's decision: a new measure, or a change to one in force."""

    __tablename__ = "proposals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    measure_id: Mapped[int] = mapped_column(ForeignKey("measures.id"), index=True)
    action: Mapped[str] = mapped_column(String(12))
    changes: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    proposer: Mapped[str] = mapped_column(String(255))
    origin_room: Mapped[str] = mapped_column(String(255))
    urgent: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(12), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(Text, nullable=True)
    rationale: Mapped[str | None] = mapped_column(Text, nullable=True)
    rationale_by: Mapped[str | None] = mapped_column(String(255), nullable=True)


class VoteRow(Base):
    """One row per reaction that counted; a redaction withdraws it while the vote is open."""

    __tablename__ = "votes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    voter: Mapped[str] = mapped_column(String(255))
    choice: Mapped[str] = mapped_column(String(8))
    reaction_event_id: Mapped[str] = mapped_column(String(255), unique=True)
    cast_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class VoteFeedbackRow(Base):
    """Who was told that a vote of theirs on a named prompt does not count: once each."""

    __tablename__ = "vote_feedback"
    ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    told_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FiredRow(Base):
    """What the scheduler already did: the unique key makes each nudge, warning or expiry
    happen once, across restarts and even with two processes started by mistake."""

    __tablename__ = "fired"
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    fired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MeetingChangeRow(Base):
    """One occurrence of a configured meeting skipped or moved; a later change replaces it."""

    __tablename__ = "meeting_changes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    meeting: Mapped[str] = mapped_column(String(32))
    occurrence: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    action: Mapped[str] = mapped_column(String(8))
    moved_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(255))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_meeting_changes_occurrence", "meeting", "occurrence", unique=True),)


class PartnerRow(Base):
    """A company in the early-warning network. Only a hash of its API token is kept; the
    webhook secret is kept in clear because signing needs it."""

    __tablename__ = "ew_partners"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    sector: Mapped[str] = mapped_column(String(16), index=True)
    webhook_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    webhook_secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ReportRow(Base):
    __tablename__ = "ew_reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("ew_partners.id"))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    location: Mapped[str] = mapped_column(String(300))
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    category: Mapped[str] = mapped_column(String(12))
    description: Mapped[str] = mapped_column(Text)
    vehicle_plate: Mapped[str | None] = mapped_column(String(32), nullable=True)
    plate_key: Mapped[str] = mapped_column(String(32), index=True)
    site_key: Mapped[str] = mapped_column(String(300), index=True)
    contact: Mapped[str | None] = mapped_column(String(300), nullable=True)
    attachments: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), index=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    assessed_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    closed_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    dossier_ref: Mapped[str | None] = mapped_column(String(32), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    idempotency_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    announced: Mapped[bool] = mapped_column(Boolean, index=True)
    # Set by `aegis purge`: what the company wrote is blanked, the row stays.
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        Index("ix_ew_reports_partner_key", "partner_id", "idempotency_key", unique=True),
        Index("ix_ew_reports_partner_received", "partner_id", "received_at"),
    )


class WarningRow(Base):
    """A warning to a sector's companies, sent only once approved by reaction."""

    __tablename__ = "ew_warnings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sector: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    from_report: Mapped[int | None] = mapped_column(ForeignKey("ew_reports.id"), nullable=True)
    drafted_by: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(12), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(Text, nullable=True)
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WarningVoteRow(Base):
    __tablename__ = "ew_warning_votes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    warning_id: Mapped[int] = mapped_column(ForeignKey("ew_warnings.id"), index=True)
    voter: Mapped[str] = mapped_column(String(255))
    choice: Mapped[str] = mapped_column(String(8))
    reaction_event_id: Mapped[str] = mapped_column(String(255), unique=True)
    cast_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebhookRow(Base):
    """A signed POST owed to a partner; retried with backoff until delivered or given up."""

    __tablename__ = "ew_webhooks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("ew_partners.id"))
    kind: Mapped[str] = mapped_column(String(24))
    subject: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, index=True
    )
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DeliveryRow(Base):
    """Who an approved warning was meant for, and how each received it."""

    __tablename__ = "ew_deliveries"
    warning_id: Mapped[int] = mapped_column(ForeignKey("ew_warnings.id"), primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("ew_partners.id"), primary_key=True)
    webhook_id: Mapped[int | None] = mapped_column(ForeignKey("ew_webhooks.id"), nullable=True)
    fetched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ReminderRow(Base):
    """A personal reminder (`!remind`). Posted in the room it was set in; its firing is keyed
    in `fired` (kind `remind`) with the outbox row, so it is posted once across restarts.
    `due_at` holds the next time of a timed one; one tied to a dossier's start or a proposal's
    decision is due when that happens, read from them at each pass, so it follows a change."""

    __tablename__ = "reminders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_by: Mapped[str] = mapped_column(String(255))
    # Who is mentioned: the setter (`me`), another user, or nobody (`room`).
    target: Mapped[str | None] = mapped_column(String(255), nullable=True)
    room_id: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    trigger: Mapped[str] = mapped_column(String(12))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    rrule: Mapped[str | None] = mapped_column(String(128), nullable=True)
    proposal_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The dossier it is about (its start, or the proposal's dossier): a purge removes it.
    dossier_ref: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    offset_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event_id: Mapped[str] = mapped_column(String(255))
    last_fired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (Index("ix_reminders_state", "state", "due_at"),)
