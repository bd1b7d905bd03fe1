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
        Index("ix_outbox_touser_id", "touser", "id"),
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
    # Which of the member's messages this is (0..n, wrapping), fixed at its first claim: it makes each
    # row's request differ from every other row's, so WeCom's duplicate check only drops a resend.
    dup_seq: Mapped[int | None] = mapped_column(Integer)


class SendingPause(Base):
    """Sending stopped because WeCom says the app is misconfigured; shared by every process."""

    __tablename__ = "sending_pauses"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    since: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    retry_seconds: Mapped[int] = mapped_column(Integer)


class ApiCallCount(Base):
    """Calls to one WeCom API in one ten-second bucket, counted by every process, for the company-wide ceilings."""

    __tablename__ = "api_call_counts"

    api: Mapped[str] = mapped_column(String(64), primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0)


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
    status: Mapped[str] = mapped_column(String(16), default="running")  # planned | running | done | failed
    detail: Mapped[str | None] = mapped_column(Text)
    # When a planned run starts (fire time + jitter), written at the fire time so any process can start it.
    due_at: Mapped[datetime | None]
    # Who runs it and until when its claim holds (renewed by a heartbeat); past it, the run is taken over.
    holder: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None]
    takeovers: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class AuditEntry(Base):
    """Who changed what, when: every score-affecting change and every administrative action."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(USERID_LENGTH))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(KEY_LENGTH), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# -- weekly reports, self-reviews, leave --
from datetime import date  # noqa: E402 - kept with the models that use it (this section is appended)


class WeeklyReport(Base):
    """One member's report for one ISO week: answers by question key, a draft until submitted."""

    __tablename__ = "weekly_reports"
    __table_args__ = (UniqueConstraint("userid", "week", name="uq_weekly_reports_user_week"),
                      Index("ix_weekly_reports_week_status", "week", "status"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    userid: Mapped[str] = mapped_column(String(USERID_LENGTH))
    week: Mapped[str] = mapped_column(String(8))  # ISO week, "2026-W48"
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | submitted
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    submitted_at: Mapped[datetime | None]
    edited_at: Mapped[datetime | None]  # the last change after the first submission


class SelfReview(Base):
    """One member's self-review for one month: a 1-5 rating per behaviour indicator, achievements, improvements."""

    __tablename__ = "self_reviews"
    __table_args__ = (UniqueConstraint("userid", "month", name="uq_self_reviews_user_month"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    userid: Mapped[str] = mapped_column(String(USERID_LENGTH))
    month: Mapped[str] = mapped_column(String(7))  # "2026-11"
    scheme_key: Mapped[str] = mapped_column(String(128), default="")
    ratings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # indicator key → 1..5
    achievements: Mapped[str] = mapped_column(Text, default="")
    improvements: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    submitted_at: Mapped[datetime | None]


class Leave(Base):
    """A member's leave, both dates included; cancelled leaves are kept with cancelled_at set."""

    __tablename__ = "leaves"
    __table_args__ = (Index("ix_leaves_user_dates", "userid", "start_date", "end_date"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    userid: Mapped[str] = mapped_column(String(USERID_LENGTH))
    start_date: Mapped[date]
    end_date: Mapped[date]
    created_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]


# -- data sources: WeCom statistics, OKR, 360 --
from datetime import date  # noqa: E402,F811 - this appended section names its own imports
from decimal import Decimal  # noqa: E402

from sqlalchemy import Date, ForeignKey, Numeric  # noqa: E402


class WeComBehaviorDay(Base):
    """One member's customer-contact figures for one Asia/Shanghai day, as WeCom last reported them."""

    __tablename__ = "wecom_behavior_days"
    __table_args__ = (Index("ix_wecom_behavior_days_day", "day"),)

    userid: Mapped[str] = mapped_column(String(USERID_LENGTH), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    chat_cnt: Mapped[int] = mapped_column(Integer, default=0)
    message_cnt: Mapped[int] = mapped_column(Integer, default=0)
    reply_percentage: Mapped[Decimal | None] = mapped_column(Numeric(7, 2))  # absent on days without chats
    avg_reply_time: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))  # minutes; absent without chats
    negative_feedback_cnt: Mapped[int] = mapped_column(Integer, default=0)
    new_apply_cnt: Mapped[int] = mapped_column(Integer, default=0)
    new_contact_cnt: Mapped[int] = mapped_column(Integer, default=0)
    fetched_at: Mapped[datetime]


class WeComGroupDay(Base):
    """One owner's customer-group figures for one Asia/Shanghai day."""

    __tablename__ = "wecom_group_days"
    __table_args__ = (Index("ix_wecom_group_days_day", "day"),)

    owner: Mapped[str] = mapped_column(String(USERID_LENGTH), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    new_chat_cnt: Mapped[int] = mapped_column(Integer, default=0)
    chat_total: Mapped[int] = mapped_column(Integer, default=0)
    chat_has_msg: Mapped[int] = mapped_column(Integer, default=0)
    new_member_cnt: Mapped[int] = mapped_column(Integer, default=0)
    member_total: Mapped[int] = mapped_column(Integer, default=0)
    member_has_msg: Mapped[int] = mapped_column(Integer, default=0)
    msg_total: Mapped[int] = mapped_column(Integer, default=0)
    fetched_at: Mapped[datetime]


class WeComCustomerCount(Base):
    """How many customers (external contacts) a member had at the end of one day."""

    __tablename__ = "wecom_customer_counts"

    userid: Mapped[str] = mapped_column(String(USERID_LENGTH), primary_key=True)
    as_of: Mapped[date] = mapped_column(Date, primary_key=True)
    customers: Mapped[int] = mapped_column(Integer)
    fetched_at: Mapped[datetime]


class WeComStatsGap(Base):
    """A day of one member's figures WeCom would not give for a reason the data-quality check names (84074)."""

    __tablename__ = "wecom_stats_gaps"

    userid: Mapped[str] = mapped_column(String(USERID_LENGTH), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    errcode: Mapped[int] = mapped_column(Integer)
    noted_at: Mapped[datetime]


class OkrObjective(Base):
    """A department objective for one quarter."""

    __tablename__ = "okr_objectives"
    __table_args__ = (Index("ix_okr_objectives_quarter_department", "quarter", "department_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    quarter: Mapped[str] = mapped_column(String(8))  # "2026-Q4"
    department_id: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(255))
    created_by: Mapped[str] = mapped_column(String(USERID_LENGTH))
    created_at: Mapped[datetime]


class OkrKeyResult(Base):
    """A member's key result aligned to one objective: a target with a unit, progress, approval, score."""

    __tablename__ = "okr_key_results"
    __table_args__ = (Index("ix_okr_key_results_owner_quarter", "owner", "quarter"),
                      Index("ix_okr_key_results_objective", "objective_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    objective_id: Mapped[int] = mapped_column(Integer, ForeignKey("okr_objectives.id"))
    owner: Mapped[str] = mapped_column(String(USERID_LENGTH))
    quarter: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(255))
    target: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    unit: Mapped[str] = mapped_column(String(16), default="")
    current: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=0)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | approved | returned
    review_note: Mapped[str | None] = mapped_column(Text)
    reviewed_by: Mapped[str | None] = mapped_column(String(USERID_LENGTH))
    reviewed_at: Mapped[datetime | None]
    score: Mapped[Decimal | None] = mapped_column(Numeric(4, 2))  # 0-1.00, set at quarter end
    scored_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class OkrProgress(Base):
    """One progress report on a key result: the value reached so far."""

    __tablename__ = "okr_progress"
    __table_args__ = (Index("ix_okr_progress_kr", "kr_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kr_id: Mapped[int] = mapped_column(Integer, ForeignKey("okr_key_results.id"))
    value: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    note: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(16), default="command")  # command | weekly_report
    recorded_by: Mapped[str] = mapped_column(String(USERID_LENGTH))
    recorded_at: Mapped[datetime]


class Feedback360Round(Base):
    """A 360-degree feedback round for one appraisal period and one indicator."""

    __tablename__ = "feedback360_rounds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    period: Mapped[str] = mapped_column(String(16))  # the period the mean feeds: "2026", "2026-Q4"...
    indicator_key: Mapped[str] = mapped_column(String(64))
    indicator_name: Mapped[str] = mapped_column(String(128))
    anchors: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # "1".."5" → behaviour anchor text
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | closed
    deadline: Mapped[date] = mapped_column(Date)
    opened_by: Mapped[str] = mapped_column(String(USERID_LENGTH))
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class Feedback360Nomination(Base):
    """The raters proposed for one appraised member in one round, and whether the manager confirmed them."""

    __tablename__ = "feedback360_nominations"
    __table_args__ = (UniqueConstraint("round_id", "subject", name="uq_feedback360_nominations_round_subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    round_id: Mapped[int] = mapped_column(Integer, ForeignKey("feedback360_rounds.id"))
    subject: Mapped[str] = mapped_column(String(USERID_LENGTH))
    raters: Mapped[list[Any]] = mapped_column(JSON, default=list)
    proposed_by: Mapped[str] = mapped_column(String(16))  # member | bot | manager
    status: Mapped[str] = mapped_column(String(16), default="proposed")  # proposed | confirmed
    proposed_at: Mapped[datetime]
    confirmed_by: Mapped[str | None] = mapped_column(String(USERID_LENGTH))
    confirmed_at: Mapped[datetime | None]


class Feedback360Ask(Base):
    """That one rater owes one member a rating: kept only to remind and to refuse a second answer."""

    __tablename__ = "feedback360_asks"
    __table_args__ = (UniqueConstraint("round_id", "subject", "rater", name="uq_feedback360_asks_round_subject_rater"),
                      Index("ix_feedback360_asks_rater_status", "rater", "status"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    round_id: Mapped[int] = mapped_column(Integer, ForeignKey("feedback360_rounds.id"))
    subject: Mapped[str] = mapped_column(String(USERID_LENGTH))
    rater: Mapped[str] = mapped_column(String(USERID_LENGTH))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | answered | expired
    asked_at: Mapped[datetime]
    reminded_at: Mapped[datetime | None]


class Feedback360Rating(Base):
    """One anonymous rating: no rater, no time, a random id, so no row can be traced back to an ask."""

    __tablename__ = "feedback360_ratings"
    __table_args__ = (Index("ix_feedback360_ratings_round_subject", "round_id", "subject"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    round_id: Mapped[int] = mapped_column(Integer, ForeignKey("feedback360_rounds.id"))
    subject: Mapped[str] = mapped_column(String(USERID_LENGTH))
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)


# -- results: data entries, ratings, calibrations, results, IDPs --
from sqlalchemy import ForeignKey  # noqa: E402,F811 - this appended section names its own imports


class DataEntry(Base):
    """One value, waiver or target entered for a member's indicator (or companion metric) and period.

    Entries are never changed: the latest one per (userid, key, period, kind) counts, the others are the history."""

    __tablename__ = "data_entries"
    __table_args__ = (Index("ix_data_entries_period_user", "period", "userid"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    userid: Mapped[str] = mapped_column(String(USERID_LENGTH))
    key: Mapped[str] = mapped_column(String(64))  # indicator or companion metric key
    period: Mapped[str] = mapped_column(String(8))  # "2026-11", "2026-Q4", "2026"
    kind: Mapped[str] = mapped_column(String(8), default="value")  # value | target
    value: Mapped[str | None] = mapped_column(String(40))  # exact decimal text; None when waived
    waived: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(16))  # data | target | score | import
    entered_by: Mapped[str] = mapped_column(String(USERID_LENGTH))
    entered_at: Mapped[datetime]


class ResultCalibration(Base):
    """An adjusted total for one member and period, with its reason and author; the latest one counts."""

    __tablename__ = "result_calibrations"
    __table_args__ = (Index("ix_result_calibrations_period_user", "period", "userid"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    userid: Mapped[str] = mapped_column(String(USERID_LENGTH))
    period: Mapped[str] = mapped_column(String(8))
    adjusted_total: Mapped[str] = mapped_column(String(16))
    original_total: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(USERID_LENGTH))
    created_at: Mapped[datetime]


class ResultPeriod(Base):
    """Where one period stands: closed (drafts out, calibration open) or published (frozen)."""

    __tablename__ = "result_periods"

    period: Mapped[str] = mapped_column(String(8), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # closed | published
    closed_at: Mapped[datetime | None]
    published_at: Mapped[datetime | None]


class PeriodResult(Base):
    """One member's result for one period: a draft until published, then frozen (the engine's result as JSON)."""

    __tablename__ = "period_results"
    __table_args__ = (UniqueConstraint("userid", "period", name="uq_period_results_user_period"),
                      Index("ix_period_results_period_status", "period", "status"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    userid: Mapped[str] = mapped_column(String(USERID_LENGTH))
    period: Mapped[str] = mapped_column(String(8))
    scheme_key: Mapped[str] = mapped_column(String(128))
    team: Mapped[str | None] = mapped_column(String(USERID_LENGTH))  # the manager's userid when computed
    department: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | published
    total: Mapped[str] = mapped_column(String(16))
    grade: Mapped[str] = mapped_column(String(8))
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    computed_at: Mapped[datetime]
    published_at: Mapped[datetime | None]


class Idp(Base):
    """An individual development plan opened for a member by the results of consecutive months."""

    __tablename__ = "idps"
    __table_args__ = (UniqueConstraint("userid", "opened_for", name="uq_idps_user_period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    userid: Mapped[str] = mapped_column(String(USERID_LENGTH))
    manager_userid: Mapped[str | None] = mapped_column(String(USERID_LENGTH))
    opened_for: Mapped[str] = mapped_column(String(8))  # the published month that opened it
    periods: Mapped[list[Any]] = mapped_column(JSON, default=list)
    totals: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | closed
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class IdpItem(Base):
    """One item of an IDP (training, mentorship, a review...), rendered from its kind."""

    __tablename__ = "idp_items"
    __table_args__ = (Index("ix_idp_items_idp", "idp_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idp_id: Mapped[int] = mapped_column(Integer, ForeignKey("idps.id"))
    kind: Mapped[str] = mapped_column(String(32))
    indicator: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | done
    created_at: Mapped[datetime]
    done_at: Mapped[datetime | None]


# -- interactive cards and first visits --


class TemplateCard(Base):
    """Something sent to one person to act on (a button card, or its text form): what it is about, its actions,
    and once acted on, what happened; the outbox row that sent it holds its response_code."""

    __tablename__ = "template_cards"
    __table_args__ = (Index("ix_template_cards_subject_status", "subject", "status"),
                      Index("ix_template_cards_touser_status", "touser", "status"))

    task_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    subject: Mapped[str] = mapped_column(String(KEY_LENGTH))  # "okr:12", "360:5", "report:lina:2026-W48"
    touser: Mapped[str] = mapped_column(String(USERID_LENGTH))
    outbox_key: Mapped[str | None] = mapped_column(String(KEY_LENGTH))  # None: only its text form was sent
    actions: Mapped[list[Any]] = mapped_column(JSON, default=list)  # button keys, in order: reply 1 = the first
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | finished
    created_at: Mapped[datetime]
    finished_label: Mapped[str | None] = mapped_column(String(64))
    finished_by: Mapped[str | None] = mapped_column(String(USERID_LENGTH))
    finished_at: Mapped[datetime | None]


class MemberVisit(Base):
    """When a person last opened the app (enter_agent) and when they were last welcomed."""

    __tablename__ = "member_visits"

    userid: Mapped[str] = mapped_column(String(USERID_LENGTH), primary_key=True)
    last_entered_at: Mapped[datetime]
    welcomed_at: Mapped[datetime | None]
class QualityAcceptance(Base):
    """An admin's explicit acceptance of data-quality findings for a period (a kind, or all; one member, or all):
    the findings it covers stop holding results back. `released_at` marks that a published period's held results
    were re-published after it."""

    __tablename__ = "quality_acceptances"
    __table_args__ = (Index("ix_quality_acceptances_period", "period"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    period: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(32))  # a finding kind, or "*" for every kind
    userid: Mapped[str | None] = mapped_column(String(USERID_LENGTH))  # None: every member
    reason: Mapped[str] = mapped_column(Text)
    accepted_by: Mapped[str] = mapped_column(String(USERID_LENGTH))
    accepted_at: Mapped[datetime]
    released_at: Mapped[datetime | None]
