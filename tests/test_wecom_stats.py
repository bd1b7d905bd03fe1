"""WeCom customer-contact statistics end to end: the nightly pull, stored days, derived metrics, guardrails, 48002."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.sandbox import demo_stats
from bot.storage.db import transaction
from bot.sandbox.demo_org import DEMO_PEOPLE
from bot.fakes.wecom import FakeWeCom
from bot.appraisal.indicator_sources import (collect_values, data_quality_flags, member_values, needs_for, source_kind, wecom_metrics)
from bot.storage.models import OutboxMessage, WeComBehaviorDay, WeComCustomerCount, WeComGroupDay
from bot.jobs.table import job_by_id
from bot.config.schemes import load_scheme
from bot.appraisal.results.close import close_month
from bot.templates import render
from bot.appraisal.wecom_stats import SyncReport, sync_stats
from bot.wecom.client import WECOM_ZONE
from bot.wecom.contact_stats import BEHAVIOR_PATH, CONCURRENCY_BACKOFF, CUSTOMERS_PATH, GROUP_PATH, StatsNotPermitted
from scoring import MemberData, Period, check_scheme, compute_results
from tests.harness import AGENT_ID, BotEnv

TODAY = date(2026, 11, 27)  # the harness clock's day
D = Decimal
MEMBERS = sorted(person.userid for person in DEMO_PEOPLE)


def day_start(day: date) -> int:
    return int(datetime.combine(day, time(0), WECOM_ZONE).timestamp())


def count(env: BotEnv, model: type, *where: Any) -> int:
    with transaction(env.bot.sessions) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def sync(env: BotEnv, first: date, last: date, userids: list[str] | None = None) -> SyncReport:
    with transaction(env.bot.sessions) as session:
        return sync_stats(session, env.bot.client, userids or MEMBERS, first, last, now=env.clock.now())


# -- the nightly job -------------------------------------------------------------------------------------------

def test_the_nightly_job_stores_each_members_days_with_one_call_per_member(bot_env: BotEnv) -> None:
    demo_stats.populate(bot_env.fake, TODAY)
    bot_env.fake.set_customer_count("sunyue", 0)  # WeCom answers 84061 for a member without customers
    result = bot_env.runner().run("wecom_stats_sync", bot_env.clock.now())
    assert result.ran and result.period == "2026-11-27"

    calls = bot_env.fake.calls(BEHAVIOR_PATH)
    assert len(calls) == len(MEMBERS)  # one call per member: several userids would come back summed
    assert sorted(call.body["userid"][0] for call in calls) == MEMBERS
    assert all(len(call.body["userid"]) == 1 for call in calls)
    # yesterday and the three days before it, which WeCom may still correct
    assert {(call.body["start_time"], call.body["end_time"]) for call in calls} == {
        (day_start(date(2026, 11, 23)), day_start(date(2026, 11, 26)))}
    group_calls = bot_env.fake.calls(GROUP_PATH)
    assert len(group_calls) == 4  # one per day (a stock like member_total cannot be summed over days)
    assert all(sorted(call.body["owner_filter"]["userid_list"]) == MEMBERS for call in group_calls)
    assert len(bot_env.fake.calls(CUSTOMERS_PATH)) == len(MEMBERS)

    assert count(bot_env, WeComBehaviorDay) == 4 * len(MEMBERS)
    assert count(bot_env, WeComGroupDay) == 4 * len(MEMBERS)
    behavior, groups, customers = demo_stats.daily_figures("yangfan", TODAY)
    with transaction(bot_env.bot.sessions) as session:
        row = session.get(WeComBehaviorDay, ("yangfan", date(2026, 11, 26)))
        expected = behavior[date(2026, 11, 26)]
        assert (row.new_contact_cnt, row.negative_feedback_cnt, row.chat_cnt, row.avg_reply_time) == (
            expected["new_contact_cnt"], expected["negative_feedback_cnt"], expected["chat_cnt"],
            D(expected["avg_reply_time"]))
        group = session.get(WeComGroupDay, ("zhaolei", date(2026, 11, 25)))
        assert group.member_total == demo_stats.daily_figures("zhaolei", TODAY)[1][date(2026, 11, 25)]["member_total"]
        snapshots = {r.userid: r.customers for r in session.scalars(
            select(WeComCustomerCount).where(WeComCustomerCount.as_of == date(2026, 11, 26)))}
    assert snapshots["yangfan"] == customers and snapshots["sunyue"] == 0
    assert "个人数据 44 条" in result.detail

    # The next day re-pulls the overlap: a figure WeCom corrected meanwhile is replaced, nothing is duplicated.
    bot_env.fake.set_behavior_data("zhangwei", date(2026, 11, 25), new_contact_cnt=99)
    bot_env.clock.advance(days=1)
    assert bot_env.runner().run("wecom_stats_sync", bot_env.clock.now()).ran
    with transaction(bot_env.bot.sessions) as session:
        assert session.get(WeComBehaviorDay, ("zhangwei", date(2026, 11, 25))).new_contact_cnt == 99
    assert count(bot_env, WeComBehaviorDay) == 5 * len(MEMBERS)  # Nov 23 … Nov 27
    assert bot_env.runner().run("wecom_stats_sync", bot_env.clock.now()).detail == "already_ran"


def test_the_job_has_a_time_off_the_half_hour_and_can_be_switched_off(bot_env: BotEnv) -> None:
    from dataclasses import replace
    spec = job_by_id("wecom_stats_sync")
    fire = spec.trigger(bot_env.config).get_next_fire_time(None, bot_env.clock.now().astimezone(WECOM_ZONE))
    assert (fire.hour, fire.minute) == (7, 20)
    off = replace(bot_env.config, wecom_stats=replace(bot_env.config.wecom_stats, enabled=False))
    assert spec.period_of(datetime(2026, 11, 27, 7, 20, tzinfo=WECOM_ZONE), off) is None


# -- derived metrics -------------------------------------------------------------------------------------------

def load_october_by_hand(fake: FakeWeCom) -> None:
    """zhangwei's figures, simple enough to work out the month by hand (see the test below)."""
    day = date(2026, 10, 1)
    while day <= date(2026, 11, 26):
        fields: dict[str, Any] = {"new_contact_cnt": 3, "negative_feedback_cnt": 1, "chat_cnt": 10, "message_cnt": 40,
                                  "avg_reply_time": 30 if day.day <= 15 else 10,
                                  "reply_percentage": 80.0 if day.day <= 15 else 100.0}
        if day == date(2026, 10, 10):
            fields["new_contact_cnt"] = 13
        if day == date(2026, 10, 20):
            fields.update(chat_cnt=0, message_cnt=0)
            del fields["avg_reply_time"], fields["reply_percentage"]
        fake.set_behavior_data("zhangwei", day, **fields)
        day += timedelta(days=1)
    fake.set_group_statistic("zhangwei", date(2026, 9, 30), member_total=500, chat_total=5)
    for number in range(1, 32):
        total = 500 + 2 * number if number <= 30 else 532  # 4 join and 2 leave a day; Oct 31: 4 join, 32 leave
        fake.set_group_statistic("zhangwei", date(2026, 10, number), new_member_cnt=4, member_total=total,
                                 member_has_msg=30, msg_total=90, chat_total=5, chat_has_msg=3)
    fake.set_customer_count("zhangwei", 524)  # now, i.e. at the end of Nov 26


def test_a_months_metrics_equal_the_values_worked_out_by_hand(bot_env: BotEnv) -> None:
    load_october_by_hand(bot_env.fake)
    report = sync(bot_env, date(2026, 9, 30), date(2026, 11, 26), ["zhangwei"])
    assert report.behavior_rows == 58 and report.customer_snapshots == 1
    assert len(bot_env.fake.calls(BEHAVIOR_PATH)) == 2  # 58 days: two calls of at most 30 days
    with transaction(bot_env.bot.sessions) as session:
        values = wecom_metrics(session, ["zhangwei"], date(2026, 10, 1), date(2026, 10, 31))["zhangwei"]
    assert values == {
        "new_contacts": D(103),                  # 31 × 3 + 10 more on Oct 10
        "lost_contacts": D(31),
        "net_follower_growth": D(72),
        # 524 at the end of Nov 26, less Nov 1-26 (26 × 2) and October (72): 400 at the end of Sep 30
        "customers_at_start": D(400),
        "net_follower_growth_rate": D("18.00"),  # 100 × 72 / 400
        "chats": D(300),                         # 30 days × 10; Oct 20 had none
        "messages_sent": D(1200),
        "avg_reply_time": D("20.00"),            # (15 × 10 × 30 + 15 × 10 × 10) / 300
        "reply_rate": D("90.00"),                # (15 × 10 × 80 + 15 × 10 × 100) / 300
        "group_new_members": D(124),             # 31 × 4
        "group_messages": D(2790),
        "group_members_at_start": D(500),
        "group_members_lost": D(92),             # 500 + 124 − 532
        "group_quit_rate": D("18.40"),           # 100 × 92 / 500
        # 100 × 31 × 30 / (Σ(500 + 2d) for d = 1..30 + 532) = 100 × 930 / 16462 = 5.649…
        "group_speaking_rate": D("5.65"),
    }


def test_seed_executor_scores_wecom_indicators_with_no_manual_entry(bot_env: BotEnv) -> None:
    load_october_by_hand(bot_env.fake)
    sync(bot_env, date(2026, 9, 30), date(2026, 11, 26), ["zhangwei"])
    scheme = load_scheme("seed-executor")
    with transaction(bot_env.bot.sessions) as session:
        found = collect_values(session, {"zhangwei": scheme}, Period.parse("2026-10"))
    assert found == {
        ("zhangwei", "net_follower_growth_rate", "2026-10"): D("18.00"),
        ("zhangwei", "response_time", "2026-10"): D("20.00"),  # source wecom.avg_reply_time
        ("zhangwei", "group_quit_rate", "2026-10"): D("18.40"),
        ("zhangwei", "group_speaking_rate", "2026-10"): D("5.65"),
    }
    result = compute_results(scheme, "2026-10", [MemberData("zhangwei", "一组", "社群运营部",
                                                            values=member_values(found, "zhangwei"))]).get("zhangwei")
    growth = result.indicator("net_follower_growth_rate")
    # 18 / 5 = 360 % → capped at 120; quit rate 18.4 > 15 and speaking rate 5.65 < 10 take 20 each
    assert growth.score == D("80.00")
    assert sorted((d.metric, d.points) for d in growth.deductions) == [("group_quit_rate", D(20)),
                                                                       ("group_speaking_rate", D(20))]
    # 20 minutes between the bands (15, 90) and (30, 75): 90 − 5 × 15 / 15 = 85
    assert result.indicator("response_time").score == D("85.00")


WECOM_ONLY_SCHEME = """
[scheme]
key = "wecom-only"
name = "客户联系岗（测试）"

[[metrics]]
key = "group_quit_rate"
name = "退群率"
[[metrics]]
key = "group_speaking_rate"
name = "发言率"

[[indicators]]
key = "growth"
name = "粉丝净增长率"
dimension = "performance"
weight = 30
cycle = "month"
source = "wecom.net_follower_growth_rate"
target = 5
rule = { type = "ratio", cap = 120 }
[[indicators.guardrails]]
metric = "group_quit_rate"
op = ">"
threshold = 15
deduct = 20
[[indicators.guardrails]]
metric = "group_speaking_rate"
op = "<"
threshold = 10
deduct = 20

[[indicators]]
key = "reply_time"
name = "问题响应时效"
dimension = "performance"
weight = 25
cycle = "month"
source = "wecom.avg_reply_time"
direction = "lower"
rule = { type = "bands", points = [[5, 100], [15, 90], [30, 75], [60, 50], [120, 0]] }

[[indicators]]
key = "reply_rate"
name = "回复率"
dimension = "performance"
weight = 20
cycle = "month"
source = "wecom.reply_rate"
target = 90
rule = { type = "ratio", cap = 110 }

[[indicators]]
key = "collaboration"
name = "跨部门协作评分"
dimension = "behavior"
weight = 25
cycle = "year"
source = "360"
rule = { type = "bands", points = [[1, 20], [5, 100]] }
"""


def test_the_demo_team_zombie_groups_lose_the_guardrail_points_and_the_slow_responder_the_time(
        bot_env: BotEnv) -> None:
    demo_stats.populate(bot_env.fake, TODAY)
    report = sync(bot_env, date(2026, 9, 30), date(2026, 11, 26))
    assert report.stopped is None and not report.failed and not report.skipped
    schemes = {person.userid: load_scheme(person.scheme) for person in DEMO_PEOPLE}
    with transaction(bot_env.bot.sessions) as session:
        found = collect_values(session, schemes, Period.parse("2026-10"))
    members = [MemberData(p.userid, str(p.department), "社群运营部", values=member_values(found, p.userid))
               for p in DEMO_PEOPLE]
    by_scheme: dict[str, Any] = {}
    for person, data in zip(DEMO_PEOPLE, members):
        results = compute_results(schemes[person.userid], "2026-10", [data])
        by_scheme[person.userid] = results.get(person.userid)
    zhaolei, yangfan = by_scheme["zhaolei"].indicator("net_follower_growth_rate"), \
        by_scheme["yangfan"].indicator("net_follower_growth_rate")
    assert yangfan.score == D("120.00") and yangfan.deductions == ()  # strong, genuine growth
    assert {d.metric for d in zhaolei.deductions} == {"group_quit_rate", "group_speaking_rate"}
    assert zhaolei.score == D("80.00")  # he grows too, but his groups empty out and nobody speaks
    for userid in MEMBERS:
        if userid != "zhaolei":
            assert by_scheme[userid].indicator("net_follower_growth_rate").deductions == (), userid
    assert found[("zhaolei", "group_quit_rate", "2026-10")] > 15
    slow = by_scheme["wuhao"].indicator("response_time")
    assert found[("wuhao", "response_time", "2026-10")] > 80 and slow.score < 40
    assert by_scheme["yangfan"].indicator("response_time").score > 90

    scheme, problems = check_scheme(WECOM_ONLY_SCHEME)
    assert scheme is not None and not [p for p in problems if p.severity.value == "error"]
    with transaction(bot_env.bot.sessions) as session:
        only = collect_values(session, {"zhangwei": scheme, "zhaolei": scheme}, Period.parse("2026-10"))
    results = compute_results(scheme, "2026-10", [MemberData(u, "t", "d", values=member_values(only, u))
                                                  for u in ("zhangwei", "zhaolei")])
    assert results.get("zhangwei").complete and results.get("zhaolei").complete  # nothing typed in
    assert results.get("zhaolei").indicator("growth").score == D("80.00")


def test_a_burst_of_follows_then_deletions_goes_to_the_data_quality_check(bot_env: BotEnv) -> None:
    demo_stats.populate(bot_env.fake, TODAY)
    sync(bot_env, date(2026, 10, 1), date(2026, 10, 30))
    sync(bot_env, date(2026, 10, 31), date(2026, 11, 26))
    schemes = {person.userid: load_scheme("seed-executor") for person in DEMO_PEOPLE}
    with transaction(bot_env.bot.sessions) as session:
        flags = data_quality_flags(session, schemes, Period.parse("2026-11"), today=TODAY)
        october = data_quality_flags(session, MEMBERS, Period.parse("2026-10"), today=TODAY)
    assert [(f.userid, f.kind) for f in flags] == [("sunyue", "contact_burst")]
    assert flags[0].detail["day"] == TODAY - timedelta(days=20) and flags[0].detail["new_contacts"] == 80
    assert october == []
    text = render("wecom_stats/data_quality.txt.j2", flags=flags, period="2026-11", names={"sunyue": "孙悦"})
    assert "孙悦" in text and "新增 80 位客户" in text and "疑似低质引流" in text
    with transaction(bot_env.bot.sessions) as session:  # a day the sync never stored is a gap to report
        gaps = data_quality_flags(session, ["zhangwei"], Period.parse("2026-09"), today=TODAY)
    assert [(f.kind, f.detail["days"]) for f in gaps] == [("missing_days", 30)]


def test_sources_and_needs_follow_the_scheme() -> None:
    assert source_kind("wecom.net_follower_growth_rate") == "wecom"
    assert source_kind("wecom.no_such_metric") is None
    assert source_kind("okr") == "okr" and source_kind("feedback_360.average") == "360" and source_kind("360") == "360"
    assert source_kind("cms.content_count") is None
    seed = load_scheme("seed-executor")
    quarter = {(n.key, n.period) for n in needs_for({"u": seed}, Period.parse("2026-Q4"))}
    # monthly indicators and their guardrail metrics, once per month of the quarter
    assert ("response_time", "2026-10") in quarter and ("group_quit_rate", "2026-12") in quarter
    year = {(n.key, n.period) for n in needs_for({"u": seed}, Period.parse("2026"))}
    assert ("cross_department_collaboration", "2026") in year


# -- 48002 --------------------------------------------------------------------------------------------------

def test_48002_sends_one_message_to_the_admin_and_no_retry_loop(bot_env: BotEnv) -> None:
    bot_env.fake.set_stats_permission(False)
    runner = bot_env.runner()
    result = runner.run("wecom_stats_sync", bot_env.clock.now())
    assert result.ran and "48002" in result.detail
    assert len(bot_env.fake.calls(BEHAVIOR_PATH)) == 1  # the probe, and nothing after it
    assert bot_env.fake.calls(GROUP_PATH) == [] and bot_env.fake.calls(CUSTOMERS_PATH) == []
    text = bot_env.chat.expect_text("zhoumin")
    assert "48002" in text and "可调用应用" in text and f"AgentId {AGENT_ID}" in text
    # Run again the same day (by hand): one more probe, but the admin is not told twice.
    assert runner.run("wecom_stats_sync", bot_env.clock.now(), force=True).ran
    assert len(bot_env.fake.calls(BEHAVIOR_PATH)) == 2
    bot_env.bot.sender.send_due()
    assert len(bot_env.fake.delivered("zhoumin")) == 1
    assert count(bot_env, OutboxMessage, OutboxMessage.touser == "zhoumin") == 1
    # Once the app is allowed, the next day's run works and catches up the days before.
    bot_env.fake.set_stats_permission(True)
    bot_env.clock.advance(days=1)
    assert "个人数据" in runner.run("wecom_stats_sync", bot_env.clock.now()).detail
    assert count(bot_env, WeComBehaviorDay) == 4 * len(MEMBERS)


def test_other_errors_skip_the_member_or_stop_the_run_without_looping(bot_env: BotEnv) -> None:
    bot_env.fake.inject(BEHAVIOR_PATH, errcode=-1, times=1)  # system busy: tried once more
    report = sync(bot_env, date(2026, 11, 26), date(2026, 11, 26))
    assert report.failed == () and report.behavior_rows == len(MEMBERS)
    assert len(bot_env.fake.calls(BEHAVIOR_PATH)) == len(MEMBERS) + 1
    bot_env.fake.remove_user("sunyue")  # left the company, still in our table until the next org sync
    report = sync(bot_env, date(2026, 11, 26), date(2026, 11, 26))
    assert report.skipped == ("sunyue",)
    bot_env.fake.inject(BEHAVIOR_PATH, errcode=45009, times=100)  # the frequency limit: stop, don't hammer
    before = len(bot_env.fake.calls(BEHAVIOR_PATH))
    report = sync(bot_env, date(2026, 11, 25), date(2026, 11, 25), ["zhangwei", "lina", "wangqiang"])
    assert report.stopped and "45009" in report.stopped
    assert len(bot_env.fake.calls(BEHAVIOR_PATH)) - before <= 3
    bot_env.fake.clear_injections()
    bot_env.fake.set_stats_permission(False)
    with pytest.raises(StatsNotPermitted), transaction(bot_env.bot.sessions) as session:
        sync_stats(session, bot_env.bot.client, MEMBERS, date(2026, 11, 26), date(2026, 11, 26),
                   now=bot_env.clock.now())


def sync_counting_waits(env: BotEnv, day: date) -> tuple[SyncReport, list[float]]:
    """One day for every member, four calls at a time, with the backoff's waits recorded instead of slept."""
    waits: list[float] = []
    with transaction(env.bot.sessions) as session:
        report = sync_stats(session, env.bot.client, MEMBERS, day, day, now=env.clock.now(), concurrency=4,
                            sleep=waits.append)
    return report, waits


def test_45033_mid_run_backs_off_goes_serial_and_the_run_finishes_with_everything_pulled(bot_env: BotEnv) -> None:
    demo_stats.populate(bot_env.fake, TODAY)
    day = date(2026, 11, 26)
    # The probe and two parallel calls come through; then WeCom asks for less concurrency once. (Asked twice, the
    # second 45033 reaches a worker or, when the first already made the run serial, the starting thread's own
    # backoff: which of the two depends on thread timing, so the one pause would not be certain.)
    bot_env.fake.inject(BEHAVIOR_PATH, delay=0.01, times=3)
    bot_env.fake.inject(BEHAVIOR_PATH, errcode=45033, times=1)
    report, waits = sync_counting_waits(bot_env, day)
    assert report.serial and report.stopped is None
    assert report.failed == () and report.not_pulled == () and report.skipped == ()
    assert waits == [CONCURRENCY_BACKOFF[0]]  # one pause before going on one call at a time
    assert report.behavior_rows == len(MEMBERS) and report.group_rows == len(MEMBERS)
    answered = [call for call in bot_env.fake.calls(BEHAVIOR_PATH) if call.fault is None or call.fault.errcode is None]
    assert sorted(call.body["userid"][0] for call in answered) == MEMBERS  # each member pulled exactly once
    assert count(bot_env, WeComBehaviorDay, WeComBehaviorDay.day == day) == len(MEMBERS)
    assert count(bot_env, WeComCustomerCount, WeComCustomerCount.as_of == day) == len(MEMBERS)
    assert "逐个拉取" in render("wecom_stats/job_detail.txt.j2", report=report, not_permitted=None)


def test_a_run_against_wecoms_concurrency_limit_still_pulls_everyone(bot_env: BotEnv) -> None:
    demo_stats.populate(bot_env.fake, TODAY)
    bot_env.fake.limit_stats_concurrency(1, hold=0.1)  # each call takes 100 ms; a second one meanwhile: 45033
    day = date(2026, 11, 26)
    report, waits = sync_counting_waits(bot_env, day)
    assert report.serial and waits  # four workers at once met the limit
    assert report.stopped is None and report.failed == () and report.not_pulled == ()
    assert count(bot_env, WeComBehaviorDay, WeComBehaviorDay.day == day) == len(MEMBERS)
    assert count(bot_env, WeComGroupDay, WeComGroupDay.day == day) == len(MEMBERS)


def test_45033_that_never_ends_stops_the_run_but_keeps_the_members_already_pulled(bot_env: BotEnv) -> None:
    demo_stats.populate(bot_env.fake, TODAY)
    day = date(2026, 11, 26)
    bot_env.fake.inject(BEHAVIOR_PATH, delay=0.01, times=4)
    bot_env.fake.inject(BEHAVIOR_PATH, errcode=45033, times=100)
    report, waits = sync_counting_waits(bot_env, day)
    assert report.stopped and "45033" in report.stopped
    assert waits == [CONCURRENCY_BACKOFF[0], *CONCURRENCY_BACKOFF]  # bounded: then it stops, no loop
    assert report.behavior_rows == 4 and len(report.not_pulled) == len(MEMBERS) - 4 and report.failed == ()
    with transaction(bot_env.bot.sessions) as session:
        stored = set(session.scalars(select(WeComBehaviorDay.userid).where(WeComBehaviorDay.day == day)))
    assert len(stored) == 4 and stored.isdisjoint(report.not_pulled)
    text = render("wecom_stats/job_detail.txt.j2", report=report, not_permitted=None)
    assert "已拉取的数据已保存" in text and f"未拉取的 {len(MEMBERS) - 4} 人" in text


def test_a_member_without_customer_contact_permission_is_skipped_and_named_by_the_data_quality_check(
        bot_env: BotEnv) -> None:
    demo_stats.populate(bot_env.fake, TODAY)
    bot_env.fake.deny_customer_contact("sunyue")  # WeCom answers 84074 for her
    sync(bot_env, date(2026, 10, 1), date(2026, 10, 30))
    report = sync(bot_env, date(2026, 10, 31), date(2026, 10, 31))
    assert report.no_permission == ("sunyue",)
    assert report.failed == () and report.skipped == () and report.stopped is None  # not a failure of the run
    assert report.behavior_rows == len(MEMBERS) - 1
    group_owners = {owner for call in bot_env.fake.calls(GROUP_PATH) for owner in call.body["owner_filter"]["userid_list"]}
    assert "sunyue" not in group_owners
    assert "没有客户联系权限" in render("wecom_stats/job_detail.txt.j2", report=report, not_permitted=None)
    with transaction(bot_env.bot.sessions) as session:
        flags = data_quality_flags(session, MEMBERS, Period.parse("2026-10"), today=TODAY)
    assert [(f.userid, f.kind, f.detail["days"]) for f in flags] == [("sunyue", "no_contact_permission", 31)]
    text = render("wecom_stats/data_quality.txt.j2", flags=flags, period="2026-10", names={"sunyue": "孙悦"})
    assert "孙悦：没有客户联系权限" in text and "权限配置" in text

    # The month close tells the admins by name.
    close_month(bot_env.bot.sessions, bot_env.config, bot_env.clock.now(), "2026-10")
    bot_env.settle()  # not one send_due pass: the sender loop may hold the row at that moment
    admin_text = "\n".join(m.content or "" for m in bot_env.fake.delivered("zhoumin"))
    assert "没有客户联系权限（企业微信 84074），客户联系统计已跳过：孙悦" in admin_text

    # Once she has the permission, the next pull clears the note.
    bot_env.fake.deny_customer_contact("sunyue", denied=False)
    assert sync(bot_env, date(2026, 10, 1), date(2026, 10, 30)).no_permission == ()
    assert sync(bot_env, date(2026, 10, 31), date(2026, 10, 31)).no_permission == ()
    with transaction(bot_env.bot.sessions) as session:
        assert data_quality_flags(session, ["sunyue"], Period.parse("2026-10"), today=TODAY) == []
