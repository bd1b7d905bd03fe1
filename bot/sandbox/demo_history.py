"""The sample team's past, as plain data: weekly reports, self-reviews, manager ratings and KPI values (pure, seeded).

Everything is a function of the sandbox's start (and of the names and periods passed in), drawn from
`random.Random` seeded per person and period, so the same start date gives the same history every time.
bot.sandbox.seed writes what this returns; nothing here touches storage, the clock or the network.

The people behave as bot.sandbox.demo_stats has them behave in WeCom's figures, and the manual numbers tell the same
stories: 杨帆 is the strong performer, 张伟 and 刘洋 are steady, 陈静 writes the most content, 赵磊's groups are
zombie groups (WeCom's quit and speaking rates cost him guardrail points), 吴昊 answers slowly and is the last of
his team in the two months before this one (so publishing them opens an IDP) and recovers this month, 孙悦
bought followers once, and the group leaders carry the sales and conversions (王强 loses conversion points to
complaints once).
"""
from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

SALT = "kpibot-demo-history"


# ---------------------------------------------------------------- what is generated


@dataclass(frozen=True)
class ReportWeek:
    """One ISO week whose report was due: when it was asked for and its deadline (aware datetimes)."""

    week: str
    prompted_at: datetime
    deadline: datetime


@dataclass(frozen=True)
class ReportSeed:
    userid: str
    week: str
    answers: dict[str, str]
    submitted_at: datetime
    late: bool


@dataclass(frozen=True)
class ReviewSeed:
    userid: str
    month: str
    ratings: dict[str, int]
    achievements: str
    improvements: str
    submitted_at: datetime


@dataclass(frozen=True)
class RatingSeed:
    """A manager's 1-5 rating of one rating-rule indicator, with the reason /score asks for."""

    userid: str
    key: str
    period: str
    rating: int
    reason: str


@dataclass(frozen=True)
class Need:
    """A number the bot cannot measure itself (an indicator or companion metric fed by /data or an import)."""

    userid: str
    key: str
    period: str
    target: Decimal | None = None


@dataclass(frozen=True)
class ValueSeed:
    userid: str
    key: str
    period: str
    value: Decimal


# ---------------------------------------------------------------- the people


@dataclass(frozen=True)
class Story:
    """How one person works: the level of their numbers (1.0 = on target), their usual rating, their habits."""

    level: float
    rating: int
    late_share: float  # how often the weekly report comes after the deadline
    missing_weeks: tuple[int, ...] = ()  # weeks (counted back from the latest, 1 = latest) without a report
    focus: tuple[str, ...] = ("社群运营",)


STORIES: dict[str, Story] = {
    "zhoumin": Story(0.82, 4, 0.0, focus=("部门管理", "活动策划")),
    "lina": Story(0.82, 4, 0.05, focus=("团队管理", "活动策划", "社群运营")),
    "wangqiang": Story(0.78, 4, 0.1, focus=("团队管理", "活动策划", "社群运营")),
    "zhangwei": Story(0.92, 4, 0.05, focus=("社群运营", "用户访谈", "活动策划")),
    "liuyang": Story(0.88, 3, 0.1, missing_weeks=(7,), focus=("社群运营", "社群拉新")),
    "chenjing": Story(0.8, 4, 0.0, focus=("内容运营", "用户访谈")),
    "yangfan": Story(1.0, 5, 0.0, focus=("社群拉新", "用户访谈", "活动策划")),
    "zhaolei": Story(0.8, 3, 0.2, focus=("社群拉新", "社群运营")),
    "huangli": Story(0.88, 4, 0.05, focus=("活动策划", "社群运营")),
    "wuhao": Story(1.0, 3, 0.3, missing_weeks=(4,), focus=("客服答疑", "社群运营")),
    "sunyue": Story(0.86, 3, 0.1, focus=("社群拉新", "社群运营")),
}
DEFAULT_STORY = Story(1.0, 3, 0.1)

# Months (counted from the current one, 0) in which someone's numbers sag: 吴昊 falls behind in the two months
# before this one and picks up again now; 张伟 took a week of leave in two of the history months.
SLUMPS: dict[str, tuple[int, ...]] = {"wuhao": (-2, -1), "zhangwei": (-3, -1)}

RATED_DOWN = frozenset({"wuhao"})  # whose manager's rating follows the slump


def story(userid: str) -> Story:
    return STORIES.get(userid, DEFAULT_STORY)


def _rng(*parts: object) -> random.Random:
    return random.Random("|".join((SALT, *(str(part) for part in parts))))


def _months_back(month: str, current: str) -> int:
    year, index = int(month[:4]), int(month[5:7])
    now_year, now_index = int(current[:4]), int(current[5:7])
    return (year - now_year) * 12 + index - now_index


def _is_month(period: str) -> bool:
    return len(period) == 7 and period[5:7].isdigit()


def _slumping(userid: str, month: str, current: str) -> bool:
    return _months_back(month, current) in SLUMPS.get(userid, ())


# ---------------------------------------------------------------- weekly reports

ACTIONS: dict[str, tuple[str, ...]] = {
    "社群运营": ("整理 {n} 个社群的群公告和群规，清理广告号 {m} 个", "每天早晚两次群内话题引导，共发起 {n} 个讨论话题",
             "策划“周三打卡”群互动，参与 {m} 人次", "梳理社群分层：核心用户 {n} 人单独建群维护"),
    "活动策划": ("策划并执行线上直播分享会 1 场，报名 {m} 人", "筹备周末线下读书会，确认场地和嘉宾",
             "组织“老带新”裂变活动，设计海报和奖励规则", "完成 {n} 场社群抽奖活动的复盘"),
    "用户访谈": ("访谈 {n} 位活跃用户，整理需求清单", "电话回访 {n} 位沉默用户，了解流失原因",
             "与 {n} 位核心用户做了 30 分钟深度访谈"),
    "社群拉新": ("在公众号和视频号投放入群二维码，新增 {m} 人", "与 2 个合作社群互推，新增成员 {m} 人",
             "线下活动现场引导加企业微信 {n} 人"),
    "内容运营": ("产出图文 {n} 篇、短视频 2 条", "整理本周社群精华帖，发布周刊 1 期", "改写 {n} 篇爆款文章的标题做 A/B 测试"),
    "客服答疑": ("处理群内咨询 {m} 条，整理常见问题 {n} 条", "更新自动回复话术库，新增 {n} 条问答"),
    "团队管理": ("和组员逐一做了一对一沟通，确认月度目标", "组织组内周会，复盘活动数据", "带新人熟悉社群 SOP"),
    "部门管理": ("与电商部对齐下月大促的社群分工", "审核两个小组的活动方案和预算", "整理部门季度 OKR 进展"),
}
RESULTS = ("新增群成员 {m} 人，退群 {k} 人", "群内发言人数 {m} 人，较上周提升 {p}%", "活动参与 {m} 人次，参与率约 {p}%",
           "私聊咨询平均 {k} 分钟内回复", "引导下单 {n} 单，成交额约 {s} 元", "内容阅读量合计 {s}，点赞 {m}")
BLOCKERS = ("", "", "", "活动预算审批较慢，希望本周内确认", "需要设计同事支持两张活动海报", "群机器人偶尔掉线，已报 IT",
            "部分老用户反馈群消息太多，考虑调整推送频率", "需要电商部提供本月优惠券额度")
PLANS = ("准备下周的主题分享会", "继续跟进本周访谈用户的反馈", "完成月度活动复盘报告", "优化入群欢迎语和新人引导",
         "策划月底的社群积分兑换活动", "整理本月内容选题，提前排期")
KR_NOTES = ("社群活跃度提升 KR：完成 {p}%", "新用户留存 KR：进度 {p}%", "")


def _fill(template: str, rng: random.Random, level: float) -> str:
    return template.format(n=rng.randint(3, 8), m=int(rng.randint(30, 120) * level), k=rng.randint(2, 15),
                           p=rng.randint(5, 40), s=rng.randint(20, 90) * 100)


def weekly_reports(userids: Iterable[str], weeks: Sequence[ReportWeek]) -> list[ReportSeed]:
    """A report per member and week (oldest week first), some after the deadline, a few weeks missing."""
    seeds: list[ReportSeed] = []
    for userid in userids:
        who = story(userid)
        for position, week in enumerate(weeks):
            back = len(weeks) - position
            if back in who.missing_weeks:
                continue
            rng = _rng("report", userid, week.week)
            areas = who.focus
            actions = []
            for area in rng.sample(areas, k=min(len(areas), 2)):
                actions.append(_fill(rng.choice(ACTIONS.get(area, ACTIONS["社群运营"])), rng, who.level))
            answers = {
                "key_actions": "；".join(f"{i}. {text}" for i, text in enumerate(actions, start=1)),
                "results": "；".join(_fill(t, rng, who.level) for t in rng.sample(RESULTS, k=2)),
                "next_week": rng.choice(PLANS),
            }
            if kr := _fill(rng.choice(KR_NOTES), rng, who.level):
                answers["kr_progress"] = kr
            if blocker := rng.choice(BLOCKERS):
                answers["blockers"] = blocker
            late = rng.random() < who.late_share
            if late:
                submitted = week.deadline + timedelta(hours=rng.randint(1, 6), minutes=rng.randint(0, 59))
            else:
                submitted = week.prompted_at + timedelta(minutes=rng.randint(15, 240))
            seeds.append(ReportSeed(userid, week.week, answers, submitted, late))
    return seeds


# ---------------------------------------------------------------- self-reviews and manager ratings

ACHIEVEMENTS = ("本月负责的 {n} 个社群保持稳定活跃，策划的线上分享会报名 {m} 人",
                "完成 {n} 位用户的深度访谈，整理出 5 条产品改进建议并被采纳 2 条",
                "主导“老带新”裂变活动，新增社群成员 {m} 人", "内容产出 {n} 篇，其中 1 篇阅读量破万",
                "整理了社群运营 SOP 文档，新人上手时间缩短一半")
IMPROVEMENTS = ("活动复盘不够及时，下月活动结束后两天内输出复盘", "数据分析能力需要加强，计划学习 Excel 数据透视表",
                "与设计、电商部门的沟通可以更主动，提前一周对齐需求", "私聊回复速度还要提高，计划设置快捷回复",
                "社群分层运营刚起步，下月把核心用户群做起来")
RATING_REASONS = {
    5: ("主动承担跨组活动并超额完成，团队标杆", "执行力突出，多次提出改进方案并落地"),
    4: ("按时完成活动和内容计划，复盘及时", "主动支持组内同事，执行到位"),
    3: ("分内工作按时完成，遇到问题能及时反馈", "基本达到预期，主动性还可以更强"),
    2: ("本月多项任务延期，需多次督促", "回复客户不及时，周报两次迟交"),
    1: ("多次推诿分内工作，已沟通改进",),
}


def manager_rating(userid: str, key: str, period: str, current_month: str) -> RatingSeed:
    """The rating a manager gave for one rating-rule indicator in one period, with a reason."""
    who = story(userid)
    rng = _rng("rating", userid, key, period)
    rating = who.rating
    month = period if _is_month(period) else current_month
    if _slumping(userid, month, current_month):
        rating = min(rating, 2 if userid in RATED_DOWN else 3)
    elif rng.random() < 0.25:
        rating += rng.choice((-1, 1))
    rating = max(1, min(5, rating))
    return RatingSeed(userid, key, period, rating, rng.choice(RATING_REASONS[rating]))


def self_review(userid: str, month: str, keys: Sequence[str], submitted_at: datetime,
                current_month: str) -> ReviewSeed:
    """A member's self-review of a month: their own ratings (a little kinder than the manager's), in their words."""
    who = story(userid)
    rng = _rng("review", userid, month)
    ratings = {}
    for key in keys:
        own = manager_rating(userid, key, month, current_month).rating + (1 if rng.random() < 0.4 else 0)
        ratings[key] = max(1, min(5, own))
    achievements = "；".join(_fill(t, rng, who.level) for t in rng.sample(ACHIEVEMENTS, k=2))
    improvements = rng.choice(IMPROVEMENTS)
    return ReviewSeed(userid, month, ratings, achievements, improvements,
                      submitted_at + timedelta(minutes=rng.randint(0, 300)))


# ---------------------------------------------------------------- KPI values

# Level of each manual number for an on-target person: the scheme's target when it has one, else these.
BASELINES: dict[str, Decimal] = {
    "event_participation_rate": Decimal(30),
    "content_output": Decimal(20),
    "prospect_retention": Decimal(40),
    "community_sales": Decimal(300000),
    "new_customer_conversions": Decimal(20),
    "complaint_count": Decimal(1),
    "satisfaction_score": Decimal("4.5"),
}
# Per person, numbers that depart from their overall level (the stories in the module docstring).
LEANINGS: dict[tuple[str, str], float] = {
    ("chenjing", "content_output"): 1.35,
    ("huangli", "event_participation_rate"): 1.25,
    ("zhaolei", "event_participation_rate"): 0.7,
    ("wuhao", "content_output"): 0.85,
    ("yangfan", "event_participation_rate"): 1.1,
}


def _quantum(key: str, base: Decimal) -> Decimal:
    if key in ("content_output", "new_customer_conversions", "complaint_count"):
        return Decimal(1)
    if key == "community_sales":
        return Decimal(100)
    return Decimal("0.1")


def kpi_values(needs: Iterable[Need], current_month: str) -> list[ValueSeed]:
    """A value for every need: around the person's level of the target, a slump or a bad month where told."""
    values = []
    for need in needs:
        who = story(need.userid)
        rng = _rng("kpi", need.userid, need.key, need.period)
        month = need.period if _is_month(need.period) else None
        slump = month is not None and _slumping(need.userid, month, current_month)
        base = BASELINES.get(need.key, need.target if need.target is not None else Decimal(10))
        if need.key == "complaint_count":
            # 王强's team once pushed too hard: the month before last brings 4 complaints.
            count = 4 if (need.userid == "wangqiang" and month is not None
                          and _months_back(month, current_month) == -2) else rng.choice((0, 0, 1, 1, 2))
            values.append(ValueSeed(need.userid, need.key, need.period, Decimal(count)))
            continue
        if need.key == "satisfaction_score":
            score = Decimal(str(round(rng.uniform(4.2, 4.8), 1)))
            values.append(ValueSeed(need.userid, need.key, need.period, score))
            continue
        level = who.level * LEANINGS.get((need.userid, need.key), 1.0)
        if slump:
            level *= 0.72
        amount = base * Decimal(str(round(level * rng.uniform(0.92, 1.08), 4)))
        values.append(ValueSeed(need.userid, need.key, need.period,
                                amount.quantize(_quantum(need.key, base), rounding=ROUND_HALF_UP)))
    return values


# ---------------------------------------------------------------- the calendar of the history


def month_text(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def data_months(today: date, history: Sequence[str]) -> list[str]:
    """The months that need values: from the start of the quarter of the first history month to this month, so a
    quarter that closes with a history month (or with this month) has all its months."""
    first = history[0] if history else month_text(today)
    year, index = int(first[:4]), int(first[5:7])
    index -= (index - 1) % 3
    months = []
    current = month_text(today)
    while True:
        text = f"{year:04d}-{index:02d}"
        months.append(text)
        if text >= current:
            return months
        year, index = (year + 1, 1) if index == 12 else (year, index + 1)


def quarters_of(months: Iterable[str]) -> list[str]:
    found: list[str] = []
    for month in months:
        quarter = f"{month[:4]}-Q{(int(month[5:7]) - 1) // 3 + 1}"
        if quarter not in found:
            found.append(quarter)
    return found
