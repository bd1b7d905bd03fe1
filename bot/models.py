"""The database schema: typed SQLAlchemy 2.0 models. Models hold data only; business rules live elsewhere."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# MySQL's index prefix limit with utf8mb4 is 767 bytes, so indexed strings stay at 191 characters.
KEY_LENGTH = 191
USERID_LENGTH = 64


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC (SQLite and MySQL have no time zones), always hands back aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(128))
    parent_id: Mapped[int | None] = mapped_column(Integer)
    leaders: Mapped[list[Any]] = mapped_column(JSON, default=list)
    sort_order: Mapped[int] = mapped_column(BigInteger, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    synced_at: Mapped[datetime]


class Member(Base):
    __tablename__ = "members"

    userid: Mapped[str] = mapped_column(String(USERID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    department_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    main_department: Mapped[int | None] = mapped_column(Integer)
    position: Mapped[str] = mapped_column(String(128), default="")
    direct_leaders: Mapped[list[Any]] = mapped_column(JSON, default=list)
    manager_userid: Mapped[str | None] = mapped_column(String(USERID_LENGTH), index=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    wecom_status: Mapped[int] = mapped_column(Integer, default=1)
    synced_at: Mapped[datetime]
    deactivated_at: Mapped[datetime | None]


class InboxMessage(Base):
    """One acknowledged callback delivery; the dedupe key makes a retried delivery a no-op."""

    __tablename__ = "inbox"
    __table_args__ = (Index("ix_inbox_member_pending", "from_user", "status", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(KEY_LENGTH), unique=True)
    from_user: Mapped[str] = mapped_column(String(USERID_LENGTH))
    msg_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | done | failed
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class OutboxMessage(Base):
    """One message to one person, written before it is sent; the idempotency key makes re-enqueueing a no-op."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_id", "status", "id"),
        Index("ix_outbox_touser_sent", "touser", "sent_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(KEY_LENGTH), unique=True)
    touser: Mapped[str] = mapped_column(String(USERID_LENGTH))
    msgtype: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    wecom_msgid: Mapped[str | None] = mapped_column(String(128))
    response_code: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    last_error: Mapped[str | None] = mapped_column(Text)


class Conversation(Base):
    """The open conversation of one member: which flow, which state, what was collected so far."""

    __tablename__ = "conversations"

    userid: Mapped[str] = mapped_column(String(USERID_LENGTH), primary_key=True)
    flow: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class CachedToken(Base):
    """WeCom access tokens, shared by every process of one deployment."""

    __tablename__ = "cached_tokens"

    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None]


class Lease(Base):
    """A named lease held by one process until it expires (scheduler leadership, token refresh)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    expires_at: Mapped[datetime | None]


class JobRun(Base):
    """One run of a scheduled job for one period; the unique key is what makes a job act once per period."""

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job_id", "period", name="uq_job_runs_job_period"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(64))
    scheduled_for: Mapped[datetime]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done | failed
    detail: Mapped[str | None] = mapped_column(Text)


class AuditEntry(Base):
    """Who changed what, when: every score-affecting change and every administrative action."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(USERID_LENGTH))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(KEY_LENGTH), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
