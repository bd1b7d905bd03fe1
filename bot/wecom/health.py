"""What /healthz and /metrics report: inbox and outbox backlog, failed sends, each job's last run, refusals."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.storage.db import transaction
from bot.storage.models import InboxMessage, JobRun, OutboxMessage, SendingPause


@dataclass(frozen=True)
class JobLastRun:
    job_id: str
    period: str
    status: str  # running | done | failed
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class HealthSnapshot:
    inbox_pending: int
    outbox_backlog: int  # pending + sending: written, not yet delivered
    outbox_failed: int
    oldest_backlog_at: datetime | None
    jobs: dict[str, JobLastRun | None]
    refused: dict[str, int]
    pause: SendingPause | None = None  # WeCom said the app is misconfigured: nothing is being sent


    def as_json(self) -> dict[str, Any]:
        def moment(value: datetime | None) -> str | None:
            return None if value is None else _aware(value).isoformat()

        paused = None if self.pause is None else {
            "reason": self.pause.reason, "since": moment(self.pause.since),
            "next_attempt_at": moment(self.pause.next_attempt_at)}
        return {
            "status": "ok" if paused is None else "sending_paused",
            "sending_paused": paused,
            "inbox_pending": self.inbox_pending,
            "outbox_pending": self.outbox_backlog,  # the name /healthz has always used
            "outbox_backlog": self.outbox_backlog,
            "outbox_failed": self.outbox_failed,
            "outbox_oldest_backlog_at": moment(self.oldest_backlog_at),
            "jobs": {job_id: None if run is None else {
                "period": run.period, "status": run.status, "started_at": moment(run.started_at),
                "finished_at": moment(run.finished_at)} for job_id, run in self.jobs.items()},
            "requests_refused": self.refused,
        }


def _aware(value: datetime) -> datetime:
    # SQLite hands timestamps back without their zone; they are stored in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def take_snapshot(session: Session, job_ids: list[str], refused: dict[str, int]) -> HealthSnapshot:
    """A handful of aggregate queries, cheap enough for a scrape every few seconds."""
    inbox_pending = session.scalar(select(func.count()).where(InboxMessage.status == "pending")) or 0
    backlog_filter = OutboxMessage.status.in_(("pending", "sending"))
    backlog, oldest = session.execute(select(func.count(), func.min(OutboxMessage.created_at))
                                      .where(backlog_filter)).one()
    failed = session.scalar(select(func.count()).where(OutboxMessage.status == "failed")) or 0
    latest = (select(JobRun.job_id, func.max(JobRun.started_at).label("started_at"))
              .group_by(JobRun.job_id).subquery())
    rows = session.execute(select(JobRun).join(latest, (JobRun.job_id == latest.c.job_id)
                                               & (JobRun.started_at == latest.c.started_at))).scalars().all()
    last: dict[str, JobLastRun | None] = {job_id: None for job_id in job_ids}
    for row in rows:
        last[row.job_id] = JobLastRun(row.job_id, row.period, row.status, row.started_at, row.finished_at)
    pause = session.scalars(select(SendingPause).limit(1)).first()
    return HealthSnapshot(int(inbox_pending), int(backlog or 0), int(failed), oldest, last, dict(refused), pause)


class _SnapshotCollector(Collector):
    """Reads a fresh snapshot on every scrape, so the figures are the database's, not one process's."""

    def __init__(self, snapshot: Callable[[], HealthSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        yield GaugeMetricFamily("kpibot_inbox_pending", "Stored callbacks not yet handled", value=snap.inbox_pending)
        yield GaugeMetricFamily("kpibot_outbox_backlog", "Messages written but not yet delivered (pending or sending)",
                                value=snap.outbox_backlog)
        yield GaugeMetricFamily("kpibot_outbox_failed", "Messages that failed for good (kpibot outbox --retry)",
                                value=snap.outbox_failed)
        yield GaugeMetricFamily("kpibot_sending_paused", "1 while sending is paused by a configuration error "
                                "(kpibot outbox names it)", value=0 if snap.pause is None else 1)
        age = GaugeMetricFamily("kpibot_outbox_oldest_backlog_timestamp_seconds",
                                "When the oldest undelivered message was written")
        if snap.oldest_backlog_at is not None:
            age.add_metric([], _aware(snap.oldest_backlog_at).timestamp())
        yield age
        started = GaugeMetricFamily("kpibot_job_last_run_started_timestamp_seconds",
                                    "When each job's latest run started", labels=["job"])
        finished = GaugeMetricFamily("kpibot_job_last_run_finished_timestamp_seconds",
                                     "When each job's latest run finished", labels=["job"])
        ok = GaugeMetricFamily("kpibot_job_last_run_ok", "1 if each job's latest run finished, 0 if it failed "
                               "or is still running", labels=["job", "status"])
        for job_id, run in sorted(snap.jobs.items()):
            if run is None:
                continue
            started.add_metric([job_id], _aware(run.started_at).timestamp())
            if run.finished_at is not None:
                finished.add_metric([job_id], _aware(run.finished_at).timestamp())
            ok.add_metric([job_id, run.status], 1.0 if run.status == "done" else 0.0)
        yield started
        yield finished
        yield ok
        refused = CounterMetricFamily("kpibot_requests_refused", "Requests the edge or the callback refused",
                                      labels=["reason"])
        for reason, count in sorted(snap.refused.items()):
            refused.add_metric([reason], count)
        yield refused


def snapshot_source(sessions: sessionmaker[Session], job_ids: list[str],
                    refused: Callable[[], dict[str, int]]) -> Callable[[], HealthSnapshot]:
    def snapshot() -> HealthSnapshot:
        with transaction(sessions) as session:
            return take_snapshot(session, job_ids, refused())
    return snapshot


def metrics_registry(snapshot: Callable[[], HealthSnapshot]) -> CollectorRegistry:
    """One registry per bot (not the library's global one), so several bots in one process do not clash."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return registry
