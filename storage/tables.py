"""Table definitions. Migrations in storage/migrations are the source of truth for the schema;
these declarations must match them (a test compares the two)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text
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

    __table_args__ = (Index("ix_outbox_pending", "sent_at", "id"),)


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
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_audit_target", "target"),)
