"""The data-quality gate end to end in the sandbox (fake WeCom, real job table): a sync outage caught at the close
and held back with one admin message until an admin accepts it; a played month that publishes sensibly, with the
overview's figures labelled and agreeing and the export's team, manager and scheme columns."""
from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.cli import main as cli
from bot.sandbox import demo_stats
from bot.cli.results import export_rows
from bot.appraisal.results.gate import period_quality, summary
from bot.appraisal.results.quality import Finding, finding_text
from bot.storage.db import transaction
from bot.sandbox.demo_org import DEMO_PEOPLE
from bot.storage.models import AuditEntry, OutboxMessage, PeriodResult, QualityAcceptance
from bot.sandbox.running import Sandbox
from bot.sandbox.server import start_sandbox
from bot.templates import render
from scoring import WAIVED, MemberData, Period
from tests.sandbox_harness import Api, ask

SHANGHAI = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parent.parent
GROUP_ZEROS = dict.fromkeys(("new_chat_cnt", "chat_total", "chat_has_msg", "new_member_cnt", "member_total",
                             "member_has_msg", "msg_total"), 0)
BEHAVIOR_ZEROS = dict.fromkeys(("chat_cnt", "message_cnt", "negative_feedback_cnt", "new_apply_cnt",
                                "new_contact_cnt"), 0)


def delivered(sandbox: Sandbox, userid: str, prefix: str) -> list[str]:
    return [m.payload.get("content", "") for m in sandbox.fake.delivered(userid)
            if m.payload.get("content", "").startswith(prefix)]


def published(sandbox: Sandbox, period: str) -> dict[str, PeriodResult]:
    with transaction(sandbox.bot.sessions) as session:
        return {row.userid: row for row in session.scalars(select(PeriodResult).where(
            PeriodResult.period == period, PeriodResult.status == "published"))}


def rates(row: PeriodResult) -> list[Decimal]:
    """Every derived rate the result's deductions read (a quit rate of 100.34% would show here)."""
    return [Decimal(d["actual"]) for item in row.data["result"]["indicators"] for d in item["deductions"]
            if d["metric"] in ("group_quit_rate", "group_speaking_rate")]


# ---------------------------------------------------------------- a sync outage


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A sandbox started on 27 November whose WeCom statistics are all zeros from its start on (what the fake gave
    before it went on producing figures), played to the day November is published."""
    start = datetime(2026, 11, 27, 9, 0, tzinfo=SHANGHAI)
    sandbox = start_sandbox(port=0, data_dir=tmp_path_factory.mktemp("outage") / "data", start_at=start)
    try:
        for person in DEMO_PEOPLE:
            for offset in range(4):  # 27-30 November
                day = date(2026, 11, 27) + timedelta(days=offset)
                sandbox.fake.set_behavior_data(person.userid, day, **BEHAVIOR_ZEROS)
                sandbox.fake.set_group_statistic(person.userid, day, **GROUP_ZEROS)
        sandbox.scheduler.jump_to(datetime(2026, 12, 9, 11, 0, tzinfo=SHANGHAI))  # closed 7th, published 9th
        yield sandbox
    finally:
        sandbox.stop()


def test_the_outage_is_caught_at_the_close_in_one_admin_message(outage: Sandbox) -> None:
    [close] = delivered(outage, "zhoumin", "2026年11月结账")
    assert "疑似同步中断" in close and "客户群统计全部为 0" in close
    assert "不可能的指标值" in close and "人的结果因此暂不发布" in close
    assert "/quality 2026-11" in close and "kpibot results quality --period 2026-11" in close
    with transaction(outage.bot.sessions) as session:
        pieces = session.scalars(select(OutboxMessage.idempotency_key).where(
            OutboxMessage.idempotency_key.like("close:2026-11:admin:zhoumin%"))).all()
    assert pieces == ["close:2026-11:admin:zhoumin"]  # one bubble, not a wall of them
    quality = period_quality(outage.bot.sessions, outage.bot.config, Period.parse("2026-11"), outage.now())
    kinds = {f.kind for f in quality.findings}
    assert {"source_outage", "impossible_metric"} <= kinds
    [impossible] = [f for f in quality.findings if f.kind == "impossible_metric" and f.userids == ("zhangwei",)]
    assert impossible.detail["value"] > 100  # the quit rate the bot scored everyone on


def test_the_doubtful_results_are_held_back_at_publication(outage: Sandbox) -> None:
    assert published(outage, "2026-11") == {}
    assert all(not delivered(outage, p.userid, "2026年11月考核结果") for p in DEMO_PEOPLE)
    [overview] = delivered(outage, "zhoumin", "2026年11月部门考核总览")
    assert "数据存疑暂不发布 11 人" in overview and "D 占 100.00%" not in overview
    [summary_text] = delivered(outage, "lina", "2026年11月团队考核结果")
    assert "数据存疑暂不发布" in summary_text


def test_only_an_admin_may_accept_and_the_acceptance_releases_the_results(outage: Sandbox) -> None:
    api = Api(outage)
    assert "仅限" in ask(api, "lina", "/quality 2026-11", "/quality")
    listing = ask(api, "zhoumin", "/quality 2026-11", "数据质量问题")
    assert "source_outage" in listing and "/quality accept 2026-11" in listing
    refused = ask(api, "zhoumin", "/quality accept 2026-11 outage 看过了", "没有")
    assert "source_outage" in refused  # the kinds there are
    assert "理由" in ask(api, "zhoumin", "/quality accept 2026-11 all", "理由")
    reply = ask(api, "zhoumin", "/quality accept 2026-11 all 已与企业微信核实，按现有数据发布", "已接受")
    assert "几分钟内发布" in reply
    outage.scheduler.advance(timedelta(minutes=15))  # the release job runs every ten minutes
    assert set(published(outage, "2026-11")) == {p.userid for p in DEMO_PEOPLE}
    assert delivered(outage, "zhangwei", "2026年11月考核结果")
    with transaction(outage.bot.sessions) as session:
        [row] = session.scalars(select(QualityAcceptance)).all()
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "quality.accept")).all()
    assert (row.kind, row.userid, row.accepted_by) == ("*", None, "zhoumin") and row.released_at is not None
    assert [(a.actor, a.detail["reason"]) for a in audit] == [("zhoumin", "已与企业微信核实，按现有数据发布")]


def test_the_cli_lists_every_finding_and_exports_them(outage: Sandbox, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KPIBOT_DATABASE_URL", outage.bot.config.database.url.reveal())
    config = str(ROOT / "config.example.toml")
    capsys.readouterr()
    assert cli.main(["--config", config, "results", "quality", "--period", "2026-11"]) == 0
    text = capsys.readouterr().out
    assert "[疑似同步中断 · source_outage · 暂不发布 · 已接受]" in text
    assert cli.main(["--config", config, "results", "quality", "--period", "2026-11", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "kind,severity,accepted,userids,names,keys,message"
    assert any(line.startswith("impossible_metric,hold,yes,zhangwei,张伟,") for line in lines)
    assert cli.main(["--config", config, "results", "accept", "--period", "2026-11", "--kind", "nonsense",
                     "--reason", "x"]) == 2
    assert "没有“nonsense”这类数据问题" in capsys.readouterr().err
    assert cli.main(["--config", config, "data", "wecom-metrics", "--period", "2026-11"]) == 0
    metrics = capsys.readouterr().out
    assert "企业微信数据问题（2026-11" in metrics and "疑似同步中断：2026-11-27 至 2026-11-30" in metrics
    assert "退群率（2026-11）算出" in metrics and "未发现" not in metrics


# ---------------------------------------------------------------- a played month


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The sandbox as a new user tries it: started 2 December, played through December's close and publication."""
    start = datetime(2026, 12, 2, 9, 0, tzinfo=SHANGHAI)
    sandbox = start_sandbox(port=0, data_dir=tmp_path_factory.mktemp("played") / "data", start_at=start)
    try:
        sandbox.scheduler.jump_to(datetime(2027, 1, 11, 12, 0, tzinfo=SHANGHAI))  # closed 7th, published 11th
        yield sandbox
    finally:
        sandbox.stop()


def test_a_played_month_publishes_everyone_with_no_impossible_metric(played: Sandbox) -> None:
    results = published(played, "2026-12")
    assert set(results) == {p.userid for p in DEMO_PEOPLE}
    assert all(row.complete for row in results.values())
    assert all(Decimal(0) <= rate <= Decimal(100) for row in results.values() for rate in rates(row))
    assert len({row.total for row in results.values()}) > 5  # people differ: not everyone lost the same points
    quality = period_quality(played.bot.sessions, played.bot.config, Period.parse("2026-12"), played.now())
    assert not [f for f in quality.findings if f.holds]


def test_the_broken_demo_day_shows_the_gate_in_the_one_close_message(played: Sandbox) -> None:
    [close] = delivered(played, "zhoumin", "2026年12月结账")
    broken = demo_stats.broken_day(date(2026, 12, 2))
    assert f"黄丽：名下有 6 个客户群，但 {broken} 群成员数为 0" in close
    assert "有群无成员 1" in close and "暂不发布" not in close.split("数据质量：")[1].split("\n")[0]
    with transaction(played.bot.sessions) as session:
        keys = session.scalars(select(OutboxMessage.idempotency_key).where(
            OutboxMessage.idempotency_key.like("close:%:admin:zhoumin%"))).all()
    # December closes the quarter and the year too: one message each, none cut into pieces.
    played_keys = sorted(k for k in keys if k.split(":")[1] in ("2026-12", "2026-Q4", "2026"))
    assert played_keys == ["close:2026-12:admin:zhoumin", "close:2026-Q4:admin:zhoumin", "close:2026:admin:zhoumin"]
    with transaction(played.bot.sessions) as session:
        pieces = session.scalars(select(OutboxMessage.idempotency_key).where(
            OutboxMessage.idempotency_key.like("close:%#%"))).all()
    assert pieces == []  # no draft or missing-data list is cut into bubbles either (a name here, its list there)


def test_the_overview_labels_each_figure_and_its_averages_agree_with_the_team_summaries(played: Sandbox) -> None:
    [overview] = delivered(played, "zhoumin", "2026年12月部门考核总览")
    assert "方案「执行层考核方案」（8 人）" in overview and "方案「管理层考核方案」（3 人）" in overview
    assert "（无校准）" in overview
    mean = re.search(r"均分 ([\d.]+)（无校准）", overview).group(1)  # type: ignore[union-attr]
    for manager in ("lina", "wangqiang", "zhoumin"):
        [team] = delivered(played, manager, "2026年12月团队考核结果")
        assert f"部门均分 {mean}" in team, team
    assert f"团队均分 − 部门均分 {mean}" in overview


def test_a_monthly_result_says_which_indicators_are_not_due(played: Sandbox) -> None:
    [result] = delivered(played, "zhangwei", "2026年12月考核结果")
    assert "本期不考核：" in result and "（年度）" in result and "与方案（行为" in result


def test_the_export_has_department_team_manager_and_scheme_columns(played: Sandbox) -> None:
    with transaction(played.bot.sessions) as session:
        header, lines = export_rows(session, "2026-12")
    rows = {line[0]: dict(zip(header, line)) for line in lines}
    assert header[:8] == ["userid", "name", "department", "team", "manager", "manager_userid", "scheme",
                          "scheme_name"]
    zhang = rows["zhangwei"]
    assert (zhang["department"], zhang["team"], zhang["manager"], zhang["manager_userid"], zhang["scheme"]) == (
        "社群运营部", "社群一组", "李娜", "lina", "seed-executor")
    assert zhang["scheme_name"] == "执行层考核方案"
    top = rows["zhoumin"]
    assert (top["team"], top["manager"], top["scheme"]) == ("社群运营部", "", "seed-manager")


# ---------------------------------------------------------------- templates


def test_every_finding_kind_has_its_sentence() -> None:
    def text(kind: str, **detail: object) -> str:
        return finding_text(Finding(kind, "2026-12", ("zhangwei",), detail), {"zhangwei": "张伟"})

    assert "不可能出现" in text("impossible_metric", key="group_quit_rate", name="退群率", sub="2026-12",
                                value=Decimal("100.34"), unit="%", low=Decimal(0), high=Decimal(100))
    assert "算出 100.34%，超过 100%" in text("impossible_metric", key="group_quit_rate", name="退群率",
                                             sub="2026-12", value=Decimal("100.34"), unit="%", low=Decimal(0),
                                             high=Decimal(100))
    outage = Finding("source_outage", "2026-12", ("a", "b"), {"source": "groups", "first": date(2026, 12, 2),
                                                             "last": date(2026, 12, 31), "members": 11, "checked": 11})
    assert "疑似同步中断：2026-12-02 至 2026-12-31，11/11 人的客户群统计全部为 0" in finding_text(outage, {})
    assert "共 5 天客户联系统计" in text("source_collapsed", source="behavior", first=date(2026, 12, 2),
                                        last=date(2026, 12, 8), days=5, active_before=20)
    assert "期初或期末" in text("groups_without_members", days=1, first=date(2026, 12, 31),
                                last=date(2026, 12, 31), groups=6, boundary=True)
    assert "kpibot data sync-wecom --from 2026-12-03" in text("missing_days", days=2, first=date(2026, 12, 3),
                                                              last=date(2026, 12, 4))
    assert "疑似低质引流" in text("contact_burst", day=date(2026, 12, 3), new_contacts=80, baseline=2,
                                  deletions_after=48, window=7)
    assert "中位数为 12.14" in text("jump_team", name="问题响应时效", sub="2026-12", value=Decimal("108.75"),
                                    median=Decimal("12.14"), peers=8, scheme="执行层考核方案")
    assert "由上月 4.6 变为 46" in text("jump_own", name="内容生产量", before="4.6", now="46", percent="900")
    assert "no_permission" in text("no_permission", errcode=84074)  # a kind added elsewhere still reads
    assert render("quality/finding.txt.j2", f=Finding("jump_own", "2026-12", ("lina",), {
        "name": "新客户转化数", "before": "20", "now": "2", "percent": "-90"}), who=["李娜"], spec=None) == (
        "李娜：新客户转化数 由上月 20 变为 2（-90%），请核对")


def test_the_quality_templates_render() -> None:
    findings = [Finding("jump_own", "2026-12", ("zhangwei",), {"name": "内容生产量", "before": "4.6", "now": "46",
                                                               "percent": "900"})]
    view = summary(findings, [], {"zhangwei": "张伟"})
    listing = render("quality/chat_view.txt.j2", period="2026-12", period_label="2026年12月", summary=view)
    assert "数据质量问题 1 条：与上月相比波动过大（jump_own）1" in listing and "/quality accept 2026-12" in listing
    assert "未发现" in render("quality/chat_view.txt.j2", period="2026-12", period_label="2026年12月",
                             summary=summary([], [], {}))
    rows = [{"kind": "source_outage", "severity": "hold", "accepted": "no", "message": "疑似同步中断：…"}]
    assert "[疑似同步中断 · source_outage · 暂不发布] 疑似同步中断" in render("quality/cli_list.txt.j2",
                                                                             period="2026-12", rows=rows)
    assert "已接受 2026-12 的全部数据质量问题" in render("quality/accepted.txt.j2", period="2026-12", kind="*",
                                                     member="", released=True)
    assert "“source_outage”类数据质量问题 11 条" in render("quality/accepted_chat.txt.j2", period="2026-12",
                                                       kind="source_outage", count=11, member="", published=False)
    assert "重新发布：2026-12" in render("quality/job_detail.txt.j2", periods=["2026-12"])
    assert "可用的类型：a、b" in render("quality/error.txt.j2", code="unknown_kind", p={"kind": "x", "kinds": ["a", "b"]})
    assert "未发现缺失、归零" in render("wecom_stats/data_quality.txt.j2", flags=[], findings=[], period="2026-12",
                                      names={})
    assert "· 张伟：退群率" in render("wecom_stats/data_quality.txt.j2", flags=[], period="2026-12", names={},
                                     findings=["张伟：退群率（2026-12）算出 100.34%"])


# ---------------------------------------------------------------- the gate over storage


def test_an_outage_spares_the_members_whose_doubted_values_are_waived_and_holds_the_rest(engine: Any) -> None:
    from bot.appraisal.assignment import cached_scheme
    from bot.appraisal.results.gate import held
    from bot.appraisal.results.quality import check
    from bot.storage.db import make_session_factory
    from bot.storage.models import WeComGroupDay

    scheme = cached_scheme("seed-executor")
    people = ("zhangwei", "liuyang", "huangli")
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        for userid in people:
            for offset in range(-30, 30):
                day = date(2026, 12, 1) + timedelta(days=offset)
                busy = offset < 1  # groups vanish from 2 December on, for everyone
                session.add(WeComGroupDay(owner=userid, day=day, new_chat_cnt=0, chat_total=6 if busy else 0,
                                          chat_has_msg=3 if busy else 0, new_member_cnt=2 if busy else 0,
                                          member_total=450 if busy else 0, member_has_msg=40 if busy else 0,
                                          msg_total=90 if busy else 0, fetched_at=datetime(2027, 1, 2, tzinfo=SHANGHAI)))
    keys = [i.key for i in scheme.indicators if (i.source or "").startswith("wecom.")] + [
        m.key for m in scheme.metrics]
    members = {u: MemberData(u, "lina", "2", {(k, "2026-12"): Decimal(5) for k in keys}) for u in people}
    members["huangli"] = MemberData("huangli", "lina", "2", {(k, "2026-12"): WAIVED for k in keys})
    with transaction(sessions) as session:
        findings = check(session, Period.parse("2026-12"), members, {u: scheme for u in people}, today=date(2027, 1, 8),
                         jump_percent=50, flags=[])
    [outage] = [f for f in findings if f.kind == "source_outage"]
    assert outage.userids == ("liuyang", "zhangwei") and outage.holds
    assert (outage.detail["first"], outage.detail["last"]) == (date(2026, 12, 2), date(2026, 12, 31))
    assert set(held(findings, [])) == {"liuyang", "zhangwei"}


def test_days_missing_among_synced_days_hold_a_result_and_a_member_never_synced_is_only_missing(engine: Any
                                                                                              ) -> None:
    from bot.appraisal.assignment import cached_scheme
    from bot.appraisal.results.gate import held
    from bot.appraisal.results.quality import check
    from bot.storage.db import make_session_factory
    from bot.storage.models import WeComBehaviorDay

    scheme = cached_scheme("seed-executor")
    sessions = make_session_factory(engine)
    gap = {date(2026, 12, 9), date(2026, 12, 10)}
    with transaction(sessions) as session:
        for offset in range(-10, 31):
            day = date(2026, 12, 1) + timedelta(days=offset)
            if day not in gap:
                session.add(WeComBehaviorDay(userid="zhangwei", day=day, chat_cnt=12, message_cnt=40,
                                             reply_percentage=Decimal(95), avg_reply_time=Decimal(10),
                                             negative_feedback_cnt=0, new_apply_cnt=2, new_contact_cnt=2,
                                             fetched_at=datetime(2027, 1, 2, tzinfo=SHANGHAI)))
    members = {u: MemberData(u, "lina", "2", {}) for u in ("zhangwei", "liuyang")}
    with transaction(sessions) as session:
        findings = check(session, Period.parse("2026-12"), members, {u: scheme for u in members}, today=date(2027, 1, 8),
                         jump_percent=50)
    [missing] = [f for f in findings if f.kind == "missing_days"]
    assert missing.userids == ("zhangwei",) and missing.holds
    assert (missing.detail["days"], missing.detail["first"]) == (2, date(2026, 12, 9))
    assert "liuyang" not in held(findings, [])
    assert "有 2 天没有企业微信统计，结果暂不发布" in finding_text(missing, {"zhangwei": "张伟"})


def test_the_quality_block_keeps_its_own_markup_and_neutralises_a_hostile_finding() -> None:
    quality = {"total": 2, "open": 2, "held": 3, "more": 1,
               "kinds": [{"kind": "source_outage", "count": 1, "accepted": 0, "holds": True}],
               "worst": ['张伟<font color="warning">RED</font> [点我](http://evil.example/x) **粗**']}
    text = render("quality/_block.md.j2", quality=quality, period="2026-11")
    assert text.startswith("**数据质量**：2 条（疑似同步中断 1）")
    assert '<font color="warning">3 人的结果因此暂不发布</font>' in text
    assert "- 另有 1 条" in text and "/quality 2026-11" in text
    hostile = text.split("\n- ")[1]
    assert not any(mark in hostile for mark in ("<font", "](", "**", "["))
