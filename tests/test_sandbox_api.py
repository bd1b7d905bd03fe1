"""The sandbox without a browser: its JSON API over real HTTP, time control over the job table, the CLI, the assets."""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select

from bot.jobs import table as schedule
from bot.wecom import outbox
from bot.storage.db import transaction
from bot.storage.models import InboxMessage, JobRun
from bot.wecom.outbox import Outgoing
from bot.sandbox.api import STATIC_DIR
from bot.sandbox.running import Sandbox
from bot.sandbox.server import start_sandbox
from tests.sandbox_harness import SHANGHAI, START, Api, bot_text

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    running = start_sandbox(port=0, data_dir=tmp_path_factory.mktemp("sandbox"), start_at=START)
    yield running
    running.stop()


@pytest.fixture
def fresh_sandbox(tmp_path: Path, org_sync_only: list[schedule.JobSpec]) -> Iterator[Sandbox]:
    """A sandbox of its own, for tests that move time (the module's sandbox keeps its morning)."""
    running = start_sandbox(port=0, data_dir=tmp_path / "data", start_at=START)
    yield running
    running.stop()


@pytest.fixture
def api(sandbox: Sandbox) -> Api:
    return Api(sandbox)


def deliver(sandbox: Sandbox, message: Outgoing, key: str) -> None:
    with transaction(sandbox.bot.sessions) as session:
        outbox.enqueue(session, key, message, sandbox.clock.now())
    sandbox.bot.sender.wake()


def job_runs(sandbox: Sandbox, job_id: str) -> list[tuple[str, datetime]]:
    with transaction(sandbox.bot.sessions) as session:
        rows = session.execute(select(JobRun.period, JobRun.scheduled_for).where(
            JobRun.job_id == job_id, JobRun.status == "done").order_by(JobRun.scheduled_for)).all()
    return [(period, at.astimezone(SHANGHAI)) for period, at in rows]


# ---------------------------------------------------------------- the page and its assets


def test_the_page_is_served_at_the_root_with_local_assets_only(api: Api) -> None:
    page = api.get("/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "kpibot 沙盒" in page.text and "沙盒时间" in page.text
    references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert references, "the page loads its script and style"
    for reference in references:
        if reference.startswith("data:"):
            continue
        assert reference.startswith("/"), reference
        assert api.get(reference).status_code == 200, reference


def test_static_files_reference_no_external_url() -> None:
    files = sorted(path for path in STATIC_DIR.iterdir() if path.is_file())
    assert {path.name for path in files} >= {"sandbox.html", "sandbox.css", "sandbox.js", "wecom_markdown.js"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        for pattern in ("http://", "https://", "@import", "@font-face", 'src="//', "href=\"//", "url(//"):
            assert pattern not in text, f"{path.name} references {pattern!r}: the page must work offline"


def test_the_sandbox_listens_on_loopback_only(sandbox: Sandbox) -> None:
    server = sandbox.bot._http_server
    assert server is not None and server.effective_host == "127.0.0.1"
    assert sandbox.fake.base_url.startswith("http://127.0.0.1:")


# ---------------------------------------------------------------- people


def test_people_come_from_the_bot_with_role_team_and_scheme(api: Api) -> None:
    people = {p["userid"]: p for p in api.get("/sandbox/api/people").json()["people"]}
    assert len(people) == 11
    assert (people["zhoumin"]["name"], people["zhoumin"]["role_label"], people["zhoumin"]["team"]) == (
        "周敏", "绩效管理员", "社群运营部")
    assert {u for u, p in people.items() if p["role"] == "manager"} == {"lina", "wangqiang"}
    assert people["zhangwei"]["team"] == "社群一组" and people["zhaolei"]["team"] == "社群二组"
    assert {p["scheme"] for u, p in people.items() if p["role"] == "member"} == {"seed-executor"}
    assert people["lina"]["scheme"] == "seed-manager" and people["lina"]["scheme_name"] == "管理层考核方案"
    order = [p["team"] for p in api.get("/sandbox/api/people").json()["people"]]
    assert order == sorted(order, key=["社群运营部", "社群一组", "社群二组"].index)


# ---------------------------------------------------------------- talking


def test_typing_sends_a_real_encrypted_callback_and_the_answer_arrives(api: Api, sandbox: Sandbox) -> None:
    sent = api.post("/sandbox/api/send", {"userid": "yangfan", "text": "/help"})
    assert sent.status_code == 200
    assert sent.json()["entry"]["direction"] == "to_bot"
    answer = api.wait_for("yangfan", bot_text("你可以使用以下命令"))
    assert "杨帆" in answer["payload"]["content"]
    with transaction(sandbox.bot.sessions) as session:
        [row] = session.scalars(select(InboxMessage).where(InboxMessage.from_user == "yangfan")).all()
    assert row.payload.get("Content") == "/help" and row.dedupe_key.startswith("msg:")
    assert [m.content for m in sandbox.fake.delivered("yangfan")] == [answer["payload"]["content"]]
    transcript = api.conversation("yangfan")
    assert [(e["direction"], e["msgtype"]) for e in transcript] == [("to_bot", "text"), ("from_bot", "text")]


def test_the_messages_long_poll_returns_as_soon_as_something_arrives(api: Api) -> None:
    cursor = api.get("/sandbox/api/messages").json()["cursor"]
    timer = threading.Timer(0.3, lambda: Api.post(api, "/sandbox/api/send", {"userid": "wuhao", "text": "你好"}))
    timer.start()
    started = time.monotonic()
    answer = api.get("/sandbox/api/messages", after=cursor, wait=10).json()
    timer.join()
    assert time.monotonic() - started < 5
    assert answer["entries"] and answer["entries"][0]["payload"] == {"content": "你好"}
    assert answer["cursor"] >= answer["entries"][-1]["seq"]


def test_entering_the_app_welcomes_a_person_once(api: Api) -> None:
    assert api.post("/sandbox/api/enter", {"userid": "sunyue"}).json() == {"sent": True}
    api.wait_for("sunyue", bot_text("欢迎使用绩效助手"))
    assert api.post("/sandbox/api/enter", {"userid": "sunyue"}).json() == {"sent": False}


def test_a_card_click_is_a_real_template_card_event_and_card_updates_show(api: Api, sandbox: Sandbox) -> None:
    card = {"card_type": "button_interaction", "task_id": "api-test-card-1", "main_title": {"title": "请确认"},
            "button_list": [{"text": "确认", "style": 1, "key": "api-test:ok"}]}
    deliver(sandbox, Outgoing.card("zhangwei", card), "api-test-card-1")
    api.wait_for("zhangwei", lambda e: e["task_id"] == "api-test-card-1")

    assert api.post("/sandbox/api/click", {"userid": "zhangwei", "task_id": "api-test-card-1",
                                           "event_key": "nope"}).status_code == 404
    clicked = api.post("/sandbox/api/click", {"userid": "zhangwei", "task_id": "api-test-card-1",
                                              "event_key": "api-test:ok"})
    assert clicked.status_code == 200 and clicked.json()["card"]["clicked_key"] == "api-test:ok"
    again = api.post("/sandbox/api/click", {"userid": "zhangwei", "task_id": "api-test-card-1", "event_key": "api-test:ok"})
    assert again.status_code == 409 and again.json()["message"] == "这张卡片已经处理过了。"
    api.wait_for("zhangwei", bot_text("这个按钮已失效"))  # no flow owns the key (yet)

    with transaction(sandbox.bot.sessions) as session:
        [event] = [row.payload for row in session.scalars(select(InboxMessage).where(
            InboxMessage.from_user == "zhangwei")) if row.payload.get("TaskId") == "api-test-card-1"]
    # What a flow would do with the click's ResponseCode: rename the button; the page shows it.
    sandbox.bot.client.post("message/update_template_card", data={
        "userids": ["zhangwei"], "agentid": sandbox.bot.config.wecom.agent_id,
        "response_code": event["ResponseCode"], "button": {"replace_name": "已确认"}})
    deadline = time.monotonic() + 5
    cursor = 0
    while time.monotonic() < deadline:  # long-polls: the server holds each request until something changes
        answer = api.get("/sandbox/api/messages", userid="zhangwei", after=cursor, wait=1).json()
        cards = answer["cards"]
        if cards.get("zhangwei", {}).get("api-test-card-1", {}).get("replace_name") == "已确认":
            break
        cursor = answer["cursor"]
    else:
        raise AssertionError(f"the card update never reached the transcript: {cards}")


def test_approving_on_a_card_finishes_it_on_the_page(api: Api) -> None:
    api.post("/sandbox/api/send", {"userid": "lina", "text": "/okr objective add 沙盒卡片测试目标"})
    added = api.wait_for("lina", bot_text("沙盒卡片测试目标"))
    objective = re.search(r"O(\d+)", added["payload"]["content"])
    assert objective is not None
    api.post("/sandbox/api/send", {"userid": "zhangwei", "text": f"/kr add O{objective.group(1)} 沙盒卡片测试 3场"})
    card = api.wait_for("lina", lambda e: e["msgtype"] == "template_card" and "沙盒卡片测试" in str(e["payload"]))
    approve = card["payload"]["button_list"][0]["key"]
    assert api.post("/sandbox/api/click", {"userid": "lina", "task_id": card["task_id"],
                                           "event_key": approve}).status_code == 200
    deadline = time.monotonic() + 10
    cursor, state = 0, {}
    while time.monotonic() < deadline:  # the bot's update_template_card reaches the page as the card's state
        answer = api.get("/sandbox/api/messages", userid="lina", after=cursor, wait=1).json()
        state = answer["cards"].get("lina", {}).get(card["task_id"], state)
        if state.get("replace_name"):
            break
        cursor = answer["cursor"]
    assert state.get("replace_name") == "已批准 · 李娜", state


@pytest.mark.parametrize(("path", "body", "status", "message"), [
    ("/sandbox/api/send", {"userid": "nobody", "text": "/help"}, 404, "通讯录中没有「nobody」这个人，请从左侧列表中选择。"),
    ("/sandbox/api/send", {"userid": "zhangwei", "text": "  "}, 400, "消息不能为空。"),
    ("/sandbox/api/send", {"userid": "zhangwei", "text": "长" * 2001}, 400, "消息太长了，请不要超过 2000 个字。"),
    ("/sandbox/api/send", None, 404, "通讯录中没有「」这个人，请从左侧列表中选择。"),
    ("/sandbox/api/click", {"userid": "zhangwei", "task_id": "no-such-card", "event_key": "x"}, 404,
     "找不到这张卡片或这个按钮。"),
    ("/sandbox/api/enter", {"userid": 42}, 404, "通讯录中没有「42」这个人，请从左侧列表中选择。"),
    ("/sandbox/api/time/advance", {"hours": 0}, 400, "请输入大于 0、不超过 1488 的小时数。"),
    ("/sandbox/api/time/advance", {"hours": "24"}, 400, "请输入大于 0、不超过 1488 的小时数。"),
    ("/sandbox/api/time/advance", {"hours": True}, 400, "请输入大于 0、不超过 1488 的小时数。"),
    ("/sandbox/api/time/advance", {"hours": 1489}, 400, "请输入大于 0、不超过 1488 的小时数。"),
    ("/sandbox/api/time/jump", {"job_id": "no_such_job"}, 404, "没有名为「no_such_job」的定时任务。"),
])
def test_api_errors_are_one_chinese_sentence(api: Api, path: str, body: Any, status: int, message: str) -> None:
    answer = api.post(path, body)
    assert answer.status_code == status
    assert answer.json()["message"] == message


def test_a_bad_cursor_is_refused_in_chinese(api: Api) -> None:
    answer = api.get("/sandbox/api/messages", after="abc")
    assert answer.status_code == 400 and answer.json()["message"] == "消息位置参数无效。"


# ---------------------------------------------------------------- time


def test_time_shows_sandbox_time_and_the_next_event(fresh_sandbox: Sandbox) -> None:
    info = Api(fresh_sandbox).get("/sandbox/api/time").json()
    now = datetime.fromisoformat(info["now"])
    assert now.utcoffset() == timedelta(hours=8) and info["offset_minutes"] == 480
    assert abs(now - fresh_sandbox.now()) < timedelta(seconds=5)
    assert info["text"].startswith("2026年11月27日 周五 09:0")
    assert info["next"] == info["upcoming"][0]
    assert info["next"]["job_id"] == "org_sync" and info["next"]["description"] == "每晚同步通讯录"
    assert info["next"]["at"] == "2026-11-28T02:40:00+08:00" and info["next"]["text"] == "11月28日 周六 02:40"


def test_upcoming_lists_every_calendar_job_of_the_real_table_soonest_first(api: Api) -> None:
    upcoming = api.get("/sandbox/api/time").json()["upcoming"]
    assert {event["job_id"] for event in upcoming} <= {spec.id for spec in schedule.JOBS}
    assert "org_sync" in {event["job_id"] for event in upcoming}
    assert [event["at_ms"] for event in upcoming] == sorted(event["at_ms"] for event in upcoming)
    assert not {event["job_id"] for event in upcoming} & {spec.id for spec in schedule.HOUSEKEEPING}


def test_advancing_runs_every_job_whose_time_comes_in_order(fresh_sandbox: Sandbox) -> None:
    api = Api(fresh_sandbox)
    moved = api.post("/sandbox/api/time/advance", {"hours": 48}).json()
    now = fresh_sandbox.now()
    assert timedelta(hours=48) <= now - START < timedelta(hours=48, minutes=1)
    assert [(r["job_id"], r["at"], r["ran"]) for r in moved["ran"]] == [
        ("org_sync", "2026-11-28T02:40:00+08:00", True), ("org_sync", "2026-11-29T02:40:00+08:00", True)]
    assert job_runs(fresh_sandbox, "org_sync") == [
        ("2026-11-28", datetime(2026, 11, 28, 2, 40, tzinfo=SHANGHAI)),
        ("2026-11-29", datetime(2026, 11, 29, 2, 40, tzinfo=SHANGHAI))]
    assert moved["summary"] == ("时间已从 11月27日 周五 09:00 前进到 11月29日 周日 09:00。\n"
                                "运行了 2 个定时任务：每晚同步通讯录（11月28日 周六 02:40）、每晚同步通讯录（11月29日 周日 02:40）。")
    quiet = api.post("/sandbox/api/time/advance", {"hours": 1}).json()
    assert quiet["ran"] == [] and quiet["summary"].endswith("这段时间里没有需要运行的定时任务。")


def test_jumping_goes_to_the_next_event_and_runs_it(fresh_sandbox: Sandbox) -> None:
    api = Api(fresh_sandbox)
    jumped = api.post("/sandbox/api/time/jump", {}).json()
    assert abs(fresh_sandbox.now() - datetime(2026, 11, 28, 2, 40, tzinfo=SHANGHAI)) < timedelta(seconds=5)
    assert [(r["job_id"], r["ran"]) for r in jumped["ran"]] == [("org_sync", True)]
    assert jumped["summary"].startswith("已跳到 11月28日 周六 02:40：每晚同步通讯录。")
    assert jumped["time"]["next"]["at"] == "2026-11-29T02:40:00+08:00"
    assert jumped["time"]["version"] == 1


def test_new_jobs_appear_and_only_moments_with_work_count(fresh_sandbox: Sandbox,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A job fires hourly but only has work at 15:00 on workdays; another already ran for its period."""
    calls: list[str] = []

    def only_at_three(at: datetime, _config: Any) -> str | None:
        return at.date().isoformat() if at.hour == 15 and at.weekday() < 5 else None

    def record(ctx: schedule.JobContext) -> str:
        calls.append(ctx.period)
        return "提醒已发送"

    hourly = schedule.JobSpec("test_afternoon", "下午的测试提醒", lambda c: CronTrigger(minute=0, timezone=c.schedule.zone),
                              only_at_three, record)
    monkeypatch.setattr(schedule, "JOBS", [*schedule.JOBS, hourly])  # added after the sandbox started
    events = {e.job_id: e for e in fresh_sandbox.scheduler.upcoming()}
    assert events["test_afternoon"].at == datetime(2026, 11, 27, 15, 0, tzinfo=SHANGHAI)
    assert events["test_afternoon"].description == "下午的测试提醒"

    fresh_sandbox.scheduler.advance(timedelta(hours=7))  # 16:00: fired hourly, worked once
    assert calls == ["2026-11-27"]
    # Friday done, the weekend has nothing to do: the next one with work is Monday afternoon.
    assert fresh_sandbox.scheduler.next_event("test_afternoon").at == datetime(2026, 11, 30, 15, 0, tzinfo=SHANGHAI)


def test_a_failing_job_is_reported_and_the_others_still_run(fresh_sandbox: Sandbox,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(ctx: schedule.JobContext) -> str:
        raise RuntimeError("数据源不可用")

    broken = schedule.JobSpec("test_broken", "会失败的任务", lambda c: CronTrigger(hour=1, minute=0, timezone=c.schedule.zone),
                              lambda at, c: at.date().isoformat(), explode)
    monkeypatch.setattr(schedule, "JOBS", [broken, *schedule.JOBS])
    moved = Api(fresh_sandbox).post("/sandbox/api/time/advance", {"hours": 24}).json()
    assert [(r["job_id"], r["ran"], r["failed"]) for r in moved["ran"]] == [
        ("test_broken", False, True), ("org_sync", True, False)]
    assert "有 1 个任务失败：会失败的任务（RuntimeError: 数据源不可用）" in moved["summary"]


def test_housekeeping_runs_but_coalesced_when_time_jumps(fresh_sandbox: Sandbox,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A ten-minute upkeep job runs once before each calendar job and once at the end of a jump."""
    swept: list[datetime] = []

    def sweep(ctx: schedule.JobContext) -> str:
        swept.append(ctx.at)
        return ""

    upkeep = schedule.JobSpec("test_sweep", "测试清理", lambda c: CronTrigger(minute="3-59/10", timezone=c.schedule.zone),
                              lambda at, c: at.strftime("%Y-%m-%dT%H:%M"), sweep)
    monkeypatch.setattr(schedule, "HOUSEKEEPING", [upkeep])
    moved = Api(fresh_sandbox).post("/sandbox/api/time/advance", {"hours": 24}).json()
    assert swept == [datetime(2026, 11, 28, 2, 33, tzinfo=SHANGHAI), datetime(2026, 11, 28, 8, 53, tzinfo=SHANGHAI)]
    assert [r["job_id"] for r in moved["ran"]] == ["org_sync"]  # upkeep is not worth a line in the summary
    assert fresh_sandbox.scheduler.next_event().job_id == "org_sync"


def test_the_real_job_table_plays_a_month(tmp_path: Path) -> None:
    """Whatever calendar jobs the flows have added by now run, each at its moment and in order, as a month
    goes by in one request."""
    sandbox = start_sandbox(port=0, data_dir=tmp_path / "data", start_at=START)
    try:
        moved = Api(sandbox).post("/sandbox/api/time/advance", {"hours": 24 * 31}, timeout=300).json()
        assert timedelta(days=31) <= sandbox.now() - START < timedelta(days=31, minutes=1)
        assert {r["job_id"] for r in moved["ran"]} <= {spec.id for spec in schedule.JOBS}
        assert [r["at"] for r in moved["ran"]] == sorted(r["at"] for r in moved["ran"])
        assert all(START < datetime.fromisoformat(r["at"]) <= sandbox.now() for r in moved["ran"])
        assert sum(r["job_id"] == "org_sync" and r["ran"] for r in moved["ran"]) == 31
    finally:
        sandbox.stop()


def test_jobs_fire_as_sandbox_time_passes_by_itself(fresh_sandbox: Sandbox) -> None:
    # A second before the nightly sync; then time passes (as the running clock makes it) and the
    # ticker's next tick runs what came due. The clock's own running is tested below.
    fresh_sandbox.scheduler.jump_to(datetime(2026, 11, 28, 2, 39, 59, tzinfo=SHANGHAI))
    assert job_runs(fresh_sandbox, "org_sync") == []
    fresh_sandbox.clock.advance(seconds=2)
    ran = fresh_sandbox.scheduler.run_due()
    assert [outcome.job_id for outcome in ran if outcome.ran] == ["org_sync"]
    assert [period for period, _ in job_runs(fresh_sandbox, "org_sync")] == ["2026-11-28"]


# ---------------------------------------------------------------- the fake's history


def test_the_fake_holds_the_history_months_of_contact_statistics(sandbox: Sandbox) -> None:
    """The statistics pull (and later the data import) finds the three previous months in the fake."""
    day = datetime(2026, 8, 1, 12, 0, tzinfo=SHANGHAI)
    answer = sandbox.bot.client.post("externalcontact/get_user_behavior_data", data={
        "userid": ["zhangwei"], "start_time": int(day.timestamp()), "end_time": int(day.timestamp())})
    [figures] = answer["behavior_data"]
    assert figures["chat_cnt"] > 0
