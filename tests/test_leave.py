"""/leave end to end, the date forms it understands, and every leave/* template rendered."""
from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from bot.storage.db import transaction
from bot.storage.models import Leave
from bot.appraisal.leave import LeaveDateError, LeaveView, parse_leave_dates, userids_on_leave, userids_on_leave_between
from tests.harness import BotEnv, assert_renders

TODAY = date(2026, 11, 27)


def leaves_of(env: BotEnv, userid: str) -> list[tuple[date, date, bool]]:
    with transaction(env.bot.sessions) as session:
        return [(row.start_date, row.end_date, row.cancelled_at is not None)
                for row in session.scalars(select(Leave).where(Leave.userid == userid).order_by(Leave.id))]


def test_register_list_and_cancel_a_leave(bot_env: BotEnv) -> None:
    chat = bot_env.chat
    registered = chat.say("zhangwei", "/leave 2026-12-01 2026-12-05")
    assert "张伟，已登记请假：12月1日（周二） 至 12月5日（周六），共 5 天（其中工作日 4 天）" in registered
    assert "不会收到周报和自评的提醒" in registered
    assert "已登记请假：12月8日（周二），共 1 天" in chat.say("zhangwei", "/leave 12-08")
    listed = chat.say("zhangwei", "/leave")
    assert "12月1日（周二） 至 12月5日（周六），5 天" in listed and "12月8日（周二），1 天" in listed
    cancelled = chat.say("zhangwei", "/leave cancel")
    assert "已取消请假：12月1日（周二） 至 12月5日（周六）" in cancelled and "已取消请假：12月8日（周二）" in cancelled
    assert leaves_of(bot_env, "zhangwei") == [(date(2026, 12, 1), date(2026, 12, 5), True),
                                              (date(2026, 12, 8), date(2026, 12, 8), True)]
    assert "目前没有登记请假" in chat.say("zhangwei", "/leave")


def test_cancelling_a_leave_under_way_ends_it_yesterday(bot_env: BotEnv) -> None:
    chat = bot_env.chat
    chat.say("liuyang", "/请假 11月25日至12月4日")
    reply = chat.say("liuyang", "/leave 销假")
    assert "已销假：11月25日（周三） 开始的请假改为到 11月26日（周四） 结束" in reply
    assert leaves_of(bot_env, "liuyang") == [(date(2026, 11, 25), date(2026, 11, 26), False)]
    with transaction(bot_env.bot.sessions) as session:
        assert userids_on_leave(session, date(2026, 11, 26)) == {"liuyang"}
        assert userids_on_leave(session, TODAY) == set()
    assert "无需销假" in chat.say("liuyang", "/leave cancel")


@pytest.mark.parametrize("text, hint", [
    ("12-05 12-01", "早于开始日期"),
    ("2026-12-01 2027-06-01", "最长 92 天"),
    ("2026-09-01", "无法补登"),
    ("02-30", "没有「02-30」这个日期"),
    ("下周一", "没看懂「下周一」"),
    ("12-01 12-03 12-05", "没看懂"),
])
def test_unusable_leaves_get_a_specific_hint(bot_env: BotEnv, text: str, hint: str) -> None:
    reply = bot_env.chat.say("chenjing", f"/leave {text}")
    assert hint in reply and "用法：/leave 2026-12-01 2026-12-05" in reply
    assert leaves_of(bot_env, "chenjing") == []


@pytest.mark.parametrize("text, expected", [
    ("2026-12-01 2026-12-05", (date(2026, 12, 1), date(2026, 12, 5))),
    ("12-01 12-05", (date(2026, 12, 1), date(2026, 12, 5))),
    ("12/1-12/5", (date(2026, 12, 1), date(2026, 12, 5))),
    ("12.01~12.05", (date(2026, 12, 1), date(2026, 12, 5))),
    ("12月1日至12月5日", (date(2026, 12, 1), date(2026, 12, 5))),
    ("2026年12月1日 到 12月5号", (date(2026, 12, 1), date(2026, 12, 5))),
    ("12-01", (date(2026, 12, 1), date(2026, 12, 1))),
    ("明天", (date(2026, 11, 28), date(2026, 11, 28))),
    ("今天 后天", (date(2026, 11, 27), date(2026, 11, 29))),
    ("12-30 01-02", (date(2026, 12, 30), date(2027, 1, 2))),  # across the new year
    ("01-04 01-08", (date(2027, 1, 4), date(2027, 1, 8))),  # January typed in late November is next January
    ("11-20", (date(2026, 11, 20), date(2026, 11, 20))),  # last week, entered late
])
def test_leave_date_forms(text: str, expected: tuple[date, date]) -> None:
    assert parse_leave_dates(text, TODAY) == expected


def test_reversed_dates_are_refused() -> None:
    with pytest.raises(LeaveDateError) as caught:
        parse_leave_dates("12-01 11-01", TODAY)
    assert caught.value.reason == "reversed"


def test_overlap_queries(bot_env: BotEnv) -> None:
    with transaction(bot_env.bot.sessions) as session:
        session.add_all([
            Leave(userid="zhaolei", start_date=date(2026, 11, 27), end_date=date(2026, 11, 27),
                  created_at=bot_env.clock.now()),
            Leave(userid="wuhao", start_date=date(2026, 11, 30), end_date=date(2026, 12, 2),
                  created_at=bot_env.clock.now()),
            Leave(userid="sunyue", start_date=date(2026, 11, 27), end_date=date(2026, 11, 30),
                  created_at=bot_env.clock.now(), cancelled_at=bot_env.clock.now()),
        ])
    with transaction(bot_env.bot.sessions) as session:
        assert userids_on_leave(session, TODAY) == {"zhaolei"}
        assert userids_on_leave_between(session, TODAY, date(2026, 11, 30)) == {"zhaolei", "wuhao"}
        assert userids_on_leave_between(session, TODAY, date(2026, 11, 30), ["wuhao"]) == {"wuhao"}


# -- templates ------------------------------------------------------------------------------------------------
_DECEMBER = LeaveView(date(2026, 12, 1), date(2026, 12, 5), 5, 4, False)
_TODAY_ONLY = LeaveView(TODAY, TODAY, 1, 1, True)

TEMPLATES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "leave/registered.txt.j2": ({"who": "张伟", "leave": _DECEMBER},
                                ("12月1日（周二） 至 12月5日（周六），共 5 天（其中工作日 4 天）", "/leave cancel")),
    "leave/list.txt.j2": ({"who": "张伟", "leaves": [_TODAY_ONLY, _DECEMBER]},
                          ("11月27日（周五），1 天（进行中）", "12月1日（周二） 至 12月5日（周六），5 天")),
    "leave/invalid.txt.j2": ({"reason": "too_long", "text": "12-01 03-01", "days": 91, "limit": 92},
                             ("最长 92 天（你填写的是 91 天）", "用法")),
    "leave/cancelled.txt.j2": ({"who": "张伟", "ended": [_TODAY_ONLY], "cancelled": [_DECEMBER]},
                               ("已销假", "已取消请假：12月1日（周二） 至 12月5日（周六）")),
}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_leave_templates_render_with_realistic_variables(name: str) -> None:
    assert_renders(name, *TEMPLATES[name])
