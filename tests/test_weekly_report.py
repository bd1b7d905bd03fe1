"""Weekly reports end to end over real HTTP (fake WeCom, injected clock), the pieces they are built from,
and every weekly/* template rendered with realistic variables."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.config import DEFAULT_REPORT_QUESTIONS
from bot.storage.db import transaction
from bot.storage.models import Conversation, Member, OutboxMessage, WeeklyReport
from bot.templates import render
from bot.appraisal.people import Role
from bot.appraisal.weekly_paste import parse_pasted_report
from bot.appraisal.periods import parse_week
from bot.appraisal.weekly_reports import DigestEntry, ReportEntry, WeekView
from handlers.reports import team_of
from tests.harness import BotEnv, assert_renders

SHANGHAI = ZoneInfo("Asia/Shanghai")
WEEK = "2026-W48"  # Monday 23 to Sunday 29 November 2026; the prompt is on Friday the 27th
PROMPT_AT = datetime(2026, 11, 27, 16, 5, tzinfo=SHANGHAI)
REMINDER_AT = datetime(2026, 11, 30, 9, 5, tzinfo=SHANGHAI)  # Monday, the deadline day (deadline 10:00)
ESCALATION_AT = datetime(2026, 11, 30, 10, 5, tzinfo=SHANGHAI)
EVERYONE = ("zhoumin", "lina", "wangqiang", "zhangwei", "liuyang", "chenjing", "yangfan", "zhaolei", "huangli",
            "wuhao", "sunyue")

PASTED = """张伟 第48周周报
本周关键动作：
1. 组织了线下读书会沙龙，到场 42 人
2. 访谈 5 位核心用户（KOC）
【结果与数据】新增社群成员 120 人，转化 8 单
KR 进展：KR1 完成 60%
问题与需要的支持：场地预算不够，需要市场部支持
下周计划：
准备年终答谢活动"""


def report_of(env: BotEnv, userid: str, week: str = WEEK) -> WeeklyReport | None:
    with transaction(env.bot.sessions) as session:
        return session.scalar(select(WeeklyReport).where(WeeklyReport.userid == userid, WeeklyReport.week == week))


def conversation_of(env: BotEnv, userid: str) -> Conversation | None:
    with transaction(env.bot.sessions) as session:
        return session.get(Conversation, userid)


def submit_by_paste(env: BotEnv, userid: str, text: str = PASTED) -> None:
    chat = env.chat
    chat.send(userid, "/report")
    chat.expect(userid)
    chat.send(userid, text)
    chat.expect(userid, 2)  # the summary and its card
    assert "已提交" in chat.say(userid, "1")


# -- the conversation ---------------------------------------------------------------------------------------
def test_a_full_report_answered_question_by_question_and_submitted_with_the_card(bot_env: BotEnv) -> None:
    chat = bot_env.chat
    assert bot_env.run_job("weekly_prompt", PROMPT_AT).ran
    prompt = chat.expect_text("zhangwei")
    assert "张伟" in prompt and "第48周（11月23日-11月29日）" in prompt and "11月30日（周一） 10:00" in prompt
    assert "第 1/5 题：本周关键动作" in prompt and "「好了」" in prompt

    ack = chat.say("zhangwei", "策划并执行了会员日活动，共 3 场")
    assert "已记下「本周关键动作」" in ack and "会员日" in ack
    assert "第 2 段" in chat.say("zhangwei", "访谈了 12 位新用户")
    assert "第 2/5 题：结果与数据" in chat.say("zhangwei", "好了")
    chat.say("zhangwei", "新增粉丝 320 人，活动参与率 35%")
    question = chat.say("zhangwei", "下一题")
    assert "第 3/5 题：KR 进展（选填）" in question and "「跳过」" in question
    assert "第 4/5 题：问题与需要的支持" in chat.say("zhangwei", "跳过")  # an optional question skipped
    chat.say("zhangwei", "海报设计需要设计组支持")
    assert "第 5/5 题：下周计划" in chat.say("zhangwei", "n")
    chat.say("zhangwei", "筹备双十二活动")
    chat.send("zhangwei", "好了")
    summary, card = chat.expect("zhangwei", 2)
    text = summary.payload["content"]
    for fragment in ("【本周关键动作】\n策划并执行了会员日活动，共 3 场\n访谈了 12 位新用户", "【KR 进展】\n（未填写）",
                     "【问题与需要的支持】\n海报设计需要设计组支持", "回复 1 提交，回复 2 修改"):
        assert fragment in text
    assert card.msgtype == "template_card" and card.payload["card_type"] == "button_interaction"
    assert [b["key"] for b in card.payload["button_list"]] == ["report:submit:2026-W48", "report:edit:2026-W48"]
    assert [b["text"] for b in card.payload["button_list"]] == ["提交", "修改"]

    chat.click("zhangwei", "report:submit:2026-W48", task_id=card.task_id or "")
    done = chat.expect_text("zhangwei")
    assert "已提交" in done and "迟交" not in done and "/report edit" in done
    report = report_of(bot_env, "zhangwei")
    assert report is not None and report.status == "submitted" and report.late is False
    assert report.answers == {"key_actions": "策划并执行了会员日活动，共 3 场\n访谈了 12 位新用户",
                              "results": "新增粉丝 320 人，活动参与率 35%", "kr_progress": "",
                              "blockers": "海报设计需要设计组支持", "next_week": "筹备双十二活动"}
    assert conversation_of(bot_env, "zhangwei") is None
    first_submission = report.submitted_at

    bot_env.advance(seconds=5)  # a second click on the same card (a different callback, not a retry)
    chat.click("zhangwei", "report:submit:2026-W48", task_id=card.task_id or "")
    assert "已经处理过了：「已提交」（张伟" in chat.expect_text("zhangwei")  # the card is finished: no new card
    again = report_of(bot_env, "zhangwei")
    assert again is not None and again.submitted_at == first_submission and again.edited_at is None


def test_a_required_question_cannot_be_skipped_or_left_empty(bot_env: BotEnv) -> None:
    chat = bot_env.chat
    assert "第 1/5 题" in bot_env.chat.say("liuyang", "/report")
    assert "必答题，不能跳过" in chat.say("liuyang", "跳过")
    assert "必答题，还没有内容" in chat.say("liuyang", "好了")
    chat.say("liuyang", "整理了社群 SOP")
    assert "第 2/5 题" in chat.say("liuyang", "好了")


def test_a_report_pasted_in_one_message_is_parsed_into_the_sections(bot_env: BotEnv) -> None:
    chat = bot_env.chat
    bot_env.run_job("weekly_prompt", PROMPT_AT)
    chat.expect("chenjing")
    chat.send("chenjing", PASTED)  # straight in reply to the prompt
    summary, card = chat.expect("chenjing", 2)
    assert "已按标题识别整份周报" in summary.payload["content"]
    assert card.msgtype == "template_card"
    report = report_of(bot_env, "chenjing")
    assert report is not None and report.status == "draft"
    assert report.answers == {
        "key_actions": "1. 组织了线下读书会沙龙，到场 42 人\n2. 访谈 5 位核心用户（KOC）",
        "results": "新增社群成员 120 人，转化 8 单", "kr_progress": "KR1 完成 60%",
        "blockers": "场地预算不够，需要市场部支持", "next_week": "准备年终答谢活动"}
    assert "已提交" in chat.say("chenjing", "1")  # the text fallback of the card
    report = report_of(bot_env, "chenjing")
    assert report is not None and report.status == "submitted" and not report.late


def test_a_partial_paste_after_the_command_asks_for_the_missing_required_sections(bot_env: BotEnv) -> None:
    chat = bot_env.chat
    reply = chat.say("yangfan", "/report 1. 本周关键动作\n拉新活动两场\n2. 结果与数据\n新增 80 人")
    assert "已按标题识别出 2 个部分" in reply and "还缺必答题：下周计划" in reply and "第 5/5 题：下周计划" in reply
    chat.say("yangfan", "继续拉新")
    chat.send("yangfan", "好了")
    summary, _card = chat.expect("yangfan", 2)
    assert "【KR 进展】\n（未填写）" in summary.payload["content"]
    assert "已提交" in chat.say("yangfan", "提交")


def test_a_submitted_report_can_be_edited_until_the_deadline_and_not_after(bot_env: BotEnv) -> None:
    chat = bot_env.chat
    submit_by_paste(bot_env, "zhaolei")
    choose = chat.say("zhaolei", "/report edit")
    assert "已提交" in choose and "要修改哪一题" in choose and "2. 结果与数据" in choose
    question = chat.say("zhaolei", "2")
    assert "第 2/5 题：结果与数据" in question and "当前内容：新增社群成员 120 人" in question
    assert "已记下「结果与数据」" in chat.say("zhaolei", "新增社群成员 150 人，转化 9 单")
    chat.send("zhaolei", "好了")
    summary, _card = chat.expect("zhaolei", 2)
    assert "新增社群成员 150 人" in summary.payload["content"]
    assert "已更新" in chat.say("zhaolei", "1")
    report = report_of(bot_env, "zhaolei")
    assert report is not None and report.answers["results"] == "新增社群成员 150 人，转化 9 单"
    assert report.status == "submitted" and report.edited_at is not None and not report.late

    bot_env.settle()
    bot_env.clock.set(datetime(2026, 11, 30, 10, 30, tzinfo=SHANGHAI))  # past Monday's 10:00 deadline
    closed = chat.say("zhaolei", "/report edit")
    assert "已过修改截止时间" in closed and "11月30日（周一） 10:00" in closed


def test_a_report_after_the_deadline_is_accepted_and_marked_late(bot_env: BotEnv) -> None:
    chat = bot_env.chat
    bot_env.run_job("weekly_prompt", PROMPT_AT)
    chat.expect("huangli")
    bot_env.settle()
    bot_env.clock.set(datetime(2026, 11, 30, 11, 0, tzinfo=SHANGHAI))
    start = chat.say("huangli", "/report")  # the prompt's conversation is still open on the deadline day
    assert "第 1/5 题" in start
    chat.send("huangli", PASTED)
    summary, _card = chat.expect("huangli", 2)
    assert "已过截止时间" in summary.payload["content"] and "迟交" in summary.payload["content"]
    assert "迟交" in chat.say("huangli", "1")
    report = report_of(bot_env, "huangli")
    assert report is not None and report.status == "submitted" and report.late is True


def test_cancel_leaves_the_conversation_and_keeps_the_draft(bot_env: BotEnv) -> None:
    chat = bot_env.chat
    chat.say("wuhao", "/report")
    chat.say("wuhao", "处理客诉 36 单")
    chat.send("wuhao", "/cancel")
    saved, left = (m.payload["content"] for m in chat.expect("wuhao", 2))
    assert "草稿已保存（已填 1/5 题）" in saved and "/report" in saved
    assert "已退出当前对话" in left
    assert conversation_of(bot_env, "wuhao") is None
    report = report_of(bot_env, "wuhao")
    assert report is not None and report.status == "draft" and report.answers == {"key_actions": "处理客诉 36 单"}
    assert "我没有理解" in chat.say("wuhao", "随便说一句")  # no conversation any more: the general hint
    resumed = chat.say("wuhao", "/report")
    assert "已填写 1 题" in resumed and "第 2/5 题：结果与数据" in resumed


def test_an_idle_conversation_is_closed_by_the_sweep_with_the_draft_kept(bot_env: BotEnv) -> None:
    chat = bot_env.chat
    chat.say("sunyue", "/report")
    chat.say("sunyue", "整理社群公告模板")
    bot_env.settle()
    later = bot_env.clock.now() + timedelta(minutes=31)
    result = bot_env.run_job("conversation_sweep", later.astimezone(SHANGHAI))
    assert result.ran and "1 个" in result.detail
    notice = chat.expect_text("sunyue")
    assert "30 分钟没有回复" in notice and "草稿" in notice and "/report" in notice
    assert conversation_of(bot_env, "sunyue") is None
    report = report_of(bot_env, "sunyue")
    assert report is not None and report.answers == {"key_actions": "整理社群公告模板"}


def test_the_cards_edit_button_reopens_a_question_and_an_unknown_key_is_expired(bot_env: BotEnv) -> None:
    chat = bot_env.chat
    chat.say("chenjing", "/report")
    chat.send("chenjing", PASTED)
    _summary, card = chat.expect("chenjing", 2)
    chat.click("chenjing", "report:edit:2026-W48", task_id=card.task_id or "")
    assert "要修改哪一题" in chat.expect_text("chenjing")
    assert "当前内容：1. 组织了线下读书会沙龙" in chat.say("chenjing", "本周关键动作")
    assert "不是有效的选项" not in chat.say("chenjing", "好了")  # kept as it was: back to the summary
    [new_card] = chat.expect("chenjing")  # the summary's new card; the first one now shows 「修改中」
    assert [u.button_replace_name for u in bot_env.fake.card_updates() if u.task_id == card.task_id] == ["修改中"]
    bot_env.advance(seconds=3)
    chat.click("chenjing", "report:submit:2026-W99", task_id=new_card.task_id or "")
    assert "按钮已失效" in chat.expect_text("chenjing")
    assert "没看懂「下下下周」" in chat.say("chenjing", "/report 下下下周")


def test_a_prompt_never_interrupts_a_conversation_in_progress_and_unanswered_prompts_close_quietly(
        bot_env: BotEnv) -> None:
    chat = bot_env.chat
    bot_env.settle()
    bot_env.clock.set(PROMPT_AT - timedelta(minutes=5))
    chat.say("zhangwei", "/review")  # rating the first behaviour indicator when the prompt comes
    bot_env.run_job("weekly_prompt", PROMPT_AT)
    prompt = chat.expect_text("zhangwei")
    assert "发送 /report 开始填写" in prompt and "第 1/5 题" not in prompt
    conversation = conversation_of(bot_env, "zhangwei")
    assert conversation is not None and conversation.flow == "self_review"
    waiting = conversation_of(bot_env, "liuyang")
    assert waiting is not None and waiting.flow == "weekly_report" and waiting.data["untouched"] is True
    after_monday = datetime(2026, 12, 1, 0, 13, tzinfo=SHANGHAI)
    assert bot_env.run_job("conversation_sweep", after_monday).ran
    assert conversation_of(bot_env, "liuyang") is None
    bot_env.bot.sender.send_due()
    # just the prompt: an unanswered prompt closes without a word
    assert [m.content for m in bot_env.fake.delivered("liuyang")][1:] == []


def test_history_shows_the_members_own_recent_reports(bot_env: BotEnv) -> None:
    submit_by_paste(bot_env, "liuyang")
    history = bot_env.chat.say("liuyang", "/report history")
    assert "刘洋的最近周报" in history and "第48周" in history and "组织了线下读书会沙龙" in history


# -- the schedule: prompt, reminder, escalation ---------------------------------------------------------------
def test_the_prompt_goes_to_every_member_except_those_on_leave_and_a_second_run_does_nothing(
        bot_env: BotEnv) -> None:
    chat = bot_env.chat
    assert "已登记请假" in chat.say("yangfan", "/leave 11-27 11-30")
    first = bot_env.run_job("weekly_prompt", PROMPT_AT)
    assert first.ran and first.period == WEEK
    for userid in EVERYONE:
        if userid != "yangfan":
            assert "的周报时间到了" in chat.expect_text(userid)
    second = bot_env.run_job("weekly_prompt", PROMPT_AT + timedelta(minutes=3))
    assert not second.ran and second.detail == "already_ran"
    bot_env.bot.sender.send_due()
    assert all(len(bot_env.fake.delivered(u)) == 1 for u in EVERYONE if u != "yangfan")
    assert len(bot_env.fake.delivered("yangfan")) == 1  # only the leave confirmation
    assert bot_env.fake.dropped() == []


def test_the_reminder_reaches_only_members_still_missing_and_not_on_leave(bot_env: BotEnv) -> None:
    chat = bot_env.chat
    bot_env.run_job("weekly_prompt", PROMPT_AT)
    for userid in EVERYONE:
        chat.expect(userid)
    chat.send("zhangwei", PASTED)
    chat.expect("zhangwei", 2)
    chat.say("zhangwei", "1")
    chat.say("liuyang", "/leave 11-30")  # on leave on the deadline day
    assert bot_env.run_job("weekly_reminder", REMINDER_AT).ran
    reminded = {u for u in EVERYONE if u not in ("zhangwei", "liuyang")}
    for userid in sorted(reminded):
        text = chat.expect_text(userid)
        assert "还没有提交" in text and "11月30日（周一） 10:00" in text
    bot_env.bot.sender.send_due()
    assert len(bot_env.fake.delivered("zhangwei")) == 4  # prompt, summary, card, confirmation: no reminder
    assert len(bot_env.fake.delivered("liuyang")) == 2  # prompt and the leave confirmation
    late = bot_env.run_job("weekly_reminder", datetime(2026, 11, 27, 9, 5, tzinfo=SHANGHAI))
    assert not late.ran and late.detail == "not_due"  # Friday is the prompt day, not a deadline day


def test_the_escalation_lists_exactly_the_missing_members_and_digests_the_submitted_reports(
        bot_env: BotEnv) -> None:
    chat = bot_env.chat
    chat.say("yangfan", "/leave 11-27 11-30")  # excused for this week
    bot_env.run_job("weekly_prompt", PROMPT_AT)
    for userid in ("zhangwei", "liuyang"):
        chat.expect(userid)
    chat.send("zhangwei", PASTED)
    chat.expect("zhangwei", 2)
    chat.say("zhangwei", "1")
    bot_env.settle()
    bot_env.clock.set(datetime(2026, 11, 30, 10, 2, tzinfo=SHANGHAI))  # two minutes late
    chat.send("liuyang", "本周关键动作：社群早报 5 期\n结果与数据：阅读 2300\n下周计划：改版早报")
    chat.expect("liuyang", 2)
    chat.say("liuyang", "1")
    for userid in ("lina", "wangqiang", "zhoumin"):
        chat.expect(userid)  # their own prompts

    assert bot_env.run_job("weekly_escalation", ESCALATION_AT).ran
    lina = chat.expect("lina")[0]
    assert lina.msgtype == "text"  # [bot] text_fallback (the default): the markdown digest goes out as text
    text = lina.payload["content"]
    assert "未交：陈静\n" in text and "请假：杨帆" in text and "**" not in text and "<font" not in text
    assert "团队 4 人：已交 2 人" in text
    assert "\n张伟\n" in text and "组织了线下读书会沙龙" in text and "场地预算不够" in text
    assert "刘洋（迟交）" in text and "社群早报 5 期" in text
    assert "赵磊" not in text  # another manager's member
    wangqiang = chat.expect_text("wangqiang")
    assert "未交：黄丽、孙悦、吴昊、赵磊\n" in wangqiang and "全员已交" not in wangqiang
    zhoumin = chat.expect_text("zhoumin")
    assert "李娜" in zhoumin and "王强" in zhoumin and "张伟" not in zhoumin  # direct reports only
    assert not bot_env.run_job("weekly_escalation", ESCALATION_AT + timedelta(minutes=2)).ran
    bot_env.bot.sender.send_due()
    assert sorted(m.touser for m in bot_env.fake.delivered() if "周报汇总" in (m.content or "")) == [
        "lina", "wangqiang", "zhoumin"]


def test_managers_see_their_team_and_only_their_team(bot_env: BotEnv) -> None:
    chat = bot_env.chat
    submit_by_paste(bot_env, "zhangwei")
    team = chat.say("lina", "/reports")
    assert "团队周报 · 第48周" in team and "张伟：已提交" in team and "陈静：未交" in team and "<font" not in team
    assert "赵磊" not in team
    member = chat.say("lina", "/reports 张伟")
    assert "张伟的周报" in member and "场地预算不够" in member
    assert "不在你的团队中" in chat.say("lina", "/reports 赵磊")
    assert "没有找到成员" in chat.say("lina", "/reports 不存在的人")
    assert "张伟：已提交" in chat.say("zhoumin", "/reports 本周")  # the admin sees everyone
    assert "仅限主管" in chat.say("zhangwei", "/reports")
    with transaction(bot_env.bot.sessions) as session:
        # a manager of managers sees their managers' teams too
        assert {m.userid for m in team_of(session, "zhoumin", Role.MANAGER)} == set(EVERYONE) - {"zhoumin"}
        assert {m.userid for m in team_of(session, "lina", Role.MANAGER)} == {"zhangwei", "liuyang", "chenjing",
                                                                              "yangfan"}


def test_a_run_missed_while_the_bot_was_down_is_caught_up_once_at_start_up(bot_env: BotEnv) -> None:
    from bot.jobs.runner import BotScheduler
    # The bot was down over Friday 20 November's 16:05 prompt (week 47) and comes back at 18:00.
    bot_env.settle()
    bot_env.clock.set(datetime(2026, 11, 20, 18, 0, tzinfo=SHANGHAI))
    scheduler = BotScheduler(bot_env.bot.job_runner())
    try:
        scheduler.start()
    finally:
        scheduler.stop()
    for userid in EVERYONE:
        bot_env.fake.wait_for(lambda m, u=userid: m.touser == u and "第47周" in (m.content or ""))
    again = BotScheduler(bot_env.bot.job_runner())  # a second restart finds nothing left to catch up
    try:
        again.start()
    finally:
        again.stop()
    bot_env.bot.sender.send_due()
    for userid in EVERYONE:  # other jobs may have caught up too; the weekly prompt went out once
        assert sum("第47周" in (m.content or "") for m in bot_env.fake.delivered(userid)) == 1
    with transaction(bot_env.bot.sessions) as session:
        runs = session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.idempotency_key.like("job:weekly_prompt:2026-W47:%")))
    assert runs == len(EVERYONE)


# -- pieces ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("【本周关键动作】活动两场\n【结果与数据】新增 50", {"key_actions": "活动两场", "results": "新增 50"}),
    ("1. 本周关键动作\n活动两场\n2、结果与数据：新增 50", {"key_actions": "活动两场", "results": "新增 50"}),
    ("## KR进展\nKR2 完成\n**下周计划**：复盘", {"kr_progress": "KR2 完成", "next_week": "复盘"}),
    ("关键动作：访谈\n问题：缺人手\n问题：缺预算", {"key_actions": "访谈", "blockers": "缺人手\n缺预算"}),
    ("今天的结果很好\n数据不错", {}),  # words that merely start a line are not headings
])
def test_pasted_report_headings(text: str, expected: dict[str, str]) -> None:
    assert parse_pasted_report(text, DEFAULT_REPORT_QUESTIONS) == expected


def test_week_arguments() -> None:
    today = date(2026, 11, 27)
    assert str(parse_week("2026-W47", today)) == "2026-W47"
    assert str(parse_week("W46", today)) == "2026-W46"
    assert str(parse_week("第45周", today)) == "2026-W45"
    assert str(parse_week("上周", today)) == "2026-W47"
    assert str(parse_week("本周", today)) == "2026-W48"
    assert str(parse_week("W52", date(2027, 1, 5))) == "2026-W52"
    assert parse_week("张伟", today) is None
    assert parse_week("2026-W60", today) is None


# -- templates ------------------------------------------------------------------------------------------------
class SimpleReport:
    def __init__(self, answers: dict[str, str], late: bool) -> None:
        self.answers, self.late = answers, late


_Q = DEFAULT_REPORT_QUESTIONS
_W = WeekView.of(WEEK)
_DEADLINE = datetime(2026, 11, 30, 10, 0, tzinfo=SHANGHAI)
_SUBMITTED = datetime(2026, 11, 27, 17, 12, tzinfo=SHANGHAI)
_ANSWERS = {"key_actions": "组织读书会沙龙\n访谈 5 位用户", "results": "新增 120 人", "kr_progress": "",
            "blockers": "场地预算不够", "next_week": "年终答谢活动"}
_QUESTION = {"question": _Q[2], "number": 3, "total": 5, "existing": "", "next_word": "好了", "skip_word": "跳过"}
_MEMBER = Member(userid="zhangwei", name="张伟")
_CHEN = Member(userid="chenjing", name="陈静")
_ENTRY = ReportEntry(_W, "submitted", True, _SUBMITTED, _ANSWERS)

TEMPLATES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "weekly/_macros.j2": ({}, ()),
    "weekly/_question.txt.j2": (_QUESTION, ("第 3/5 题：KR 进展（选填）", "「跳过」")),
    "weekly/prompt.txt.j2": ({"who": "张伟", "week_view": _W, "deadline": _DEADLINE, "opened": True, "answered": 0,
                              **{**_QUESTION, "question": _Q[0], "number": 1}},
                             ("张伟，第48周（11月23日-11月29日）的周报时间到了", "11月30日（周一） 10:00", "第 1/5 题")),
    "weekly/reminder.txt.j2": ({"who": "张伟", "week_view": _W, "deadline": _DEADLINE, "opened": False, "answered": 2,
                                **_QUESTION}, ("还没有提交", "发送 /report 继续填写")),
    "weekly/start.txt.j2": ({"who": "张伟", "week_view": _W, "deadline": _DEADLINE, "past_deadline": True,
                             "answered": 2, **_QUESTION}, ("开始填写第48周", "迟交", "已填写 2 题")),
    "weekly/question.txt.j2": ({"resumed": True, **_QUESTION, "existing": "KR1 完成 60%"},
                               ("继续填写周报", "当前内容：KR1 完成 60%")),
    "weekly/ack.txt.j2": ({"question": _Q[0], "parts": 2, "snippet": "访谈 5 位用户", "next_word": "好了", "last": False},
                          ("已补充「本周关键动作」第 2 段：访谈 5 位用户",)),
    "weekly/required_empty.txt.j2": (_QUESTION, ("「KR 进展」是必答题",)),
    "weekly/cannot_skip.txt.j2": (_QUESTION, ("不能跳过",)),
    "weekly/missing_required.txt.j2": ({"missing": ["结果与数据", "下周计划"], **_QUESTION},
                                       ("还有必答题没有填写：结果与数据、下周计划",)),
    "weekly/pasted.txt.j2": ({"recognised": ["本周关键动作", "KR 进展"], "missing": ["下周计划"], **_QUESTION},
                             ("已按标题识别出 2 个部分：本周关键动作、KR 进展", "还缺必答题：下周计划")),
    "weekly/pasted_preface.txt.j2": ({"recognised": ["本周关键动作", "结果与数据"]}, ("已按标题识别整份周报",)),
    "weekly/summary.txt.j2": ({"preface": "", "who": "张伟", "week": _W, "questions": _Q, "answers": _ANSWERS,
                               "deadline": _DEADLINE, "past_deadline": True, "submitted": False, "with_card": True},
                              ("【本周关键动作】\n组织读书会沙龙\n访谈 5 位用户", "【KR 进展】\n（未填写）", "迟交",
                               "回复 1 提交")),
    "weekly/card_text.txt.j2": ({"part": "desc", "who": "张伟", "week": _W, "submitted": False,
                                 "past_deadline": False}, ("第48周 11/23-11/29",)),
    "weekly/review_hint.txt.j2": ({"text": "嗯"}, ("「嗯」不是有效的选项",)),
    "weekly/choose.txt.j2": ({"questions": _Q, "answers": _ANSWERS, "with_summary": True, "who": "张伟",
                              "week": _W, "deadline": _DEADLINE, "past_deadline": False, "submitted": True},
                             ("已提交，11月30日（周一） 10:00 前可以修改", "5. 下周计划")),
    "weekly/choose_hint.txt.j2": ({"text": "九", "total": 5}, ("1-5 之间的题号",)),
    "weekly/submitted.txt.j2": ({"who": "张伟", "week": _W, "late": True, "resubmitted": False,
                                 "deadline": _DEADLINE, "can_edit": False}, ("已提交（已过截止时间，记为迟交）",)),
    "weekly/already_submitted.txt.j2": ({"week": _W, "submitted_at": _SUBMITTED, "late": False,
                                         "deadline": _DEADLINE, "can_edit": True},
                                        ("已于 11月27日（周五） 17:12 提交", "/report edit")),
    "weekly/edit_unavailable.txt.j2": ({"week": _W, "reason": "closed", "deadline": _DEADLINE},
                                       ("已过修改截止时间（11月30日（周一） 10:00）",)),
    "weekly/cancelled.txt.j2": ({"week": _W, "answered": 2, "total": 5}, ("草稿已保存（已填 2/5 题）",)),
    "weekly/timed_out.txt.j2": ({"who": "张伟", "week": _W, "answered": 1, "total": 5, "minutes": 30},
                                ("30 分钟没有回复", "1/5 题")),
    "weekly/bad_argument.txt.j2": ({"text": "abc"}, ("没看懂「abc」", "/report history")),
    "weekly/history.md.j2": ({"who": "张伟", "entries": [_ENTRY], "questions": _Q, "limit": 8},
                             ("**张伟的最近周报**", "迟交", "> 本周关键动作：组织读书会沙龙…")),
    "weekly/team_reports.md.j2": ({"week": _W, "rows": [(_MEMBER, "submitted", SimpleReport(_ANSWERS, False)),
                                                        (_CHEN, "missing", None)],
                                   "key": "key_actions", "deadline": _DEADLINE, "limit": 40,
                                   "counts": {"submitted": 1, "draft": 0, "missing": 1, "leave": 0}},
                                  ("团队周报 · 第48周", "张伟：已提交 — 组织读书会沙龙 访谈 5 位用户", "陈静：")),
    "weekly/member_reports.md.j2": ({"member": _MEMBER, "entries": [_ENTRY], "questions": _Q, "week": None,
                                     "limit": 300}, ("**张伟的周报**", "**下周计划**：年终答谢活动")),
    "weekly/not_your_team.txt.j2": ({"who": "李娜", "text": "赵磊"}, ("「赵磊」不在你的团队中",)),
    "weekly/member_not_found.txt.j2": ({"text": "钱多"}, ("没有找到成员「钱多」",)),
    "weekly/member_ambiguous.txt.j2": ({"text": "张伟", "members": [_MEMBER, Member(userid="zhangwei2", name="张伟")]},
                                       ("有 2 位成员叫「张伟」", "张伟（zhangwei2）")),
    "weekly/escalation.md.j2": ({"manager": Member(userid="lina", name="李娜"), "week_view": _W, "deadline": _DEADLINE,
                                 "team_size": 4, "missing": [_CHEN], "on_leave": [Member(userid="yangfan", name="杨帆")],
                                 "entries": [DigestEntry("张伟", True, [("本周关键动作", "组织读书会沙龙")])]},
                                ("**李娜，第48周", "**未交**：陈静", "**请假**：杨帆", "**张伟**（迟交）",
                                 "> 本周关键动作：组织读书会沙龙")),
    "weekly/job_detail.txt.j2": ({"kind": "prompt", "week": WEEK, "asked": 10, "on_leave": 1, "already": 0},
                                 ("周报提问已发给 10 人",)),
    "ops/sweep.txt.j2": ({"closed": 2}, ("关闭了 2 个超时的对话",)),
}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_weekly_templates_render_with_realistic_variables(name: str) -> None:
    assert_renders(name, *TEMPLATES[name])


def test_the_summary_card_text_has_every_part() -> None:
    parts = {part: render("weekly/card_text.txt.j2", part=part, who="张伟", week=_W, submitted=False,
                          past_deadline=False) for part in ("title", "desc", "body", "source", "submit", "edit")}
    assert parts == {"title": "周报待提交", "desc": "第48周 11/23-11/29",
                     "body": "张伟，请看上面的周报全文，确认无误后提交。也可以回复 1 提交、2 修改。",
                     "source": "绩效助手", "submit": "提交", "edit": "修改"}
