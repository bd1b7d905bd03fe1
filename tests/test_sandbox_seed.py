"""The sandbox's seeded history: three published months, reports, reviews and data, there at once, seeded once."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.sandbox import demo_history
from bot.storage.db import transaction
from bot.storage.models import DataEntry, Idp, OutboxMessage, PeriodResult, ResultPeriod, SelfReview, WeeklyReport
from bot.sandbox.running import Sandbox
from bot.sandbox.server import start_sandbox
from bot.sandbox.seed import SEED_STEPS
from tests.sandbox_harness import START, Api, ask

HISTORY = ("2026-08", "2026-09", "2026-10")  # the months before START's


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("seeded") / "data"


@pytest.fixture(scope="module")
def sandbox(data_dir: Path) -> Iterator[Sandbox]:
    running = start_sandbox(port=0, data_dir=data_dir, start_at=START)
    yield running
    running.stop()


@pytest.fixture
def api(sandbox: Sandbox) -> Api:
    return Api(sandbox)


def published(sandbox: Sandbox, userid: str) -> dict[str, str]:
    with transaction(sandbox.bot.sessions) as session:
        rows = session.scalars(select(PeriodResult).where(PeriodResult.userid == userid,
                                                          PeriodResult.status == "published")).all()
    return {row.period: row.total for row in rows}


def counts(sandbox: Sandbox) -> dict[str, int]:
    with transaction(sandbox.bot.sessions) as session:
        return {model.__name__: session.scalar(select(func.count()).select_from(model)) for model in
                (WeeklyReport, SelfReview, DataEntry, PeriodResult, OutboxMessage, Idp)}


# ---------------------------------------------------------------- what a person sees at once


def test_three_history_months_are_published_with_complete_results(sandbox: Sandbox) -> None:
    with transaction(sandbox.bot.sessions) as session:
        states = {row.period: row.state for row in session.scalars(select(ResultPeriod))}
        rows = session.scalars(select(PeriodResult).where(PeriodResult.period.in_(HISTORY))).all()
    assert {month: states.get(month) for month in HISTORY} == dict.fromkeys(HISTORY, "published")
    assert states.get("2026-Q3") == "published"  # September closes the quarter: its July data is seeded too
    assert len(rows) == 3 * 11 and all(row.status == "published" and row.complete for row in rows)
    assert "2026-11" not in states  # the current month closes when the user moves time on


def test_result_shows_a_members_three_months_with_totals(sandbox: Sandbox, api: Api) -> None:
    totals = published(sandbox, "zhangwei")
    assert set(HISTORY) <= set(totals)
    answer = ask(api, "zhangwei", "/result", totals["2026-10"])
    assert "张伟" in answer
    for month in HISTORY:
        assert totals[month] in answer, f"{month} ({totals[month]}) missing from /result:\n{answer}"


def test_team_shows_lina_her_team_table(sandbox: Sandbox, api: Api) -> None:
    answer = ask(api, "lina", "/team", "张伟")
    for name in ("张伟", "刘洋", "陈静", "杨帆"):
        assert name in answer
    assert published(sandbox, "yangfan")["2026-10"] in answer
    assert "赵磊" not in answer  # 王强's team


def test_score_status_for_lina_shows_her_team_rated_this_month(api: Api) -> None:
    answer = ask(api, "lina", "/score", "评分进度")
    assert "已评 4/4 人 · 数据齐全 4 人" in answer  # this month's ratings and data are seeded too
    for name in ("张伟", "刘洋", "陈静", "杨帆"):
        assert f"{name}：已评 · 数据齐全" in answer


def test_seeded_weekly_reports_are_in_report_history(sandbox: Sandbox, api: Api) -> None:
    with transaction(sandbox.bot.sessions) as session:
        latest = session.scalars(select(WeeklyReport).where(WeeklyReport.userid == "chenjing")
                                 .order_by(WeeklyReport.week.desc())).first()
    assert latest is not None and latest.status == "submitted"
    snippet = latest.answers["key_actions"][:12]
    answer = ask(api, "chenjing", "/report history", snippet)
    assert "陈静" in answer


def test_the_history_sent_nobody_anything(sandbox: Sandbox) -> None:
    with transaction(sandbox.bot.sessions) as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.idempotency_key.like("publish:%"))).all()
    assert rows and all(row.status == "sent" for row in rows)
    assert {row.sent_at.astimezone(START.tzinfo).date().month for row in rows} == {9, 10, 11}  # when published
    pushes = {row.payload.get("content") for row in rows if row.touser == "zhangwei"}
    assert len(pushes) == 4  # August, September, the third quarter, October
    assert not pushes & {message.content for message in sandbox.fake.delivered("zhangwei")}


def test_the_stories_hold(sandbox: Sandbox) -> None:
    with transaction(sandbox.bot.sessions) as session:
        idps = [(idp.userid, idp.opened_for) for idp in session.scalars(select(Idp))]
        zhaolei = session.scalar(select(PeriodResult).where(PeriodResult.userid == "zhaolei",
                                                            PeriodResult.period == "2026-10"))
    assert idps == [("wuhao", "2026-10")]  # last of 王强's team in September and October
    [growth] = [i for i in zhaolei.data["result"]["indicators"] if i["key"] == "net_follower_growth_rate"]
    assert growth["deductions"], "赵磊's zombie groups cost him guardrail points"
    assert min(map(Decimal, published(sandbox, "yangfan").values())) > max(
        map(Decimal, published(sandbox, "zhangwei").values()))


# ---------------------------------------------------------------- once, and the same every time


def test_seeding_runs_once_and_is_the_same_every_time(sandbox: Sandbox, tmp_path: Path) -> None:
    other = start_sandbox(port=0, data_dir=tmp_path / "data", start_at=START)
    try:
        assert {step.name for step in SEED_STEPS if not step.every_start} <= set(other.state.seeded)
        for userid in ("zhangwei", "wuhao", "lina"):
            assert published(other, userid) == published(sandbox, userid)
        before = counts(other)
    finally:
        other.stop()
    restarted = start_sandbox(port=0, data_dir=tmp_path / "data")
    try:
        assert counts(restarted) == before
    finally:
        restarted.stop()


def test_the_generator_is_pure_and_seeded() -> None:
    weeks = [demo_history.ReportWeek("2026-W47", START - timedelta(days=7), START - timedelta(days=4))]
    reports = demo_history.weekly_reports(["zhangwei", "wuhao"], weeks)
    assert reports == demo_history.weekly_reports(["zhangwei", "wuhao"], weeks)
    assert all(report.answers["key_actions"] and report.answers["next_week"] for report in reports)
    needs = [demo_history.Need("lina", "community_sales", "2026-Q3"),
             demo_history.Need("zhaolei", "event_participation_rate", "2026-10")]
    assert demo_history.kpi_values(needs, "2026-11") == demo_history.kpi_values(needs, "2026-11")
    assert demo_history.data_months(START.date(), HISTORY) == ["2026-07", *HISTORY, "2026-11"]
