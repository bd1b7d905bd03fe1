"""Permissions on every command and every push: a member sees only their own result, a manager only their own team
(and the teams below them), an admin everything; changing data follows the same lines, never one's own."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.storage.db import transaction
from bot.storage.models import DataEntry, Idp, IdpItem, ResultCalibration
from bot.appraisal.people import Org
from tests.harness import (CLOSE_AT, EVERYONE, LINA_TEAM, NAMES, PUBLISH_AT, WANGQIANG_TEAM, BotEnv, EnvFactory,
                           seed_month)

# wuhao is the admin here, so that 周敏 is a manager of managers without an admin's rights.
ADMIN = "wuhao"
ADMIN_WUHAO = {"org": {"admins": [ADMIN], "departments": [1]}}


@pytest.fixture
def env(make_env: EnvFactory) -> BotEnv:
    return make_env(**ADMIN_WUHAO)


def entries_for(env: BotEnv, userid: str) -> int:
    with transaction(env.bot.sessions) as session:
        return session.scalar(select(func.count()).select_from(DataEntry).where(DataEntry.userid == userid)) or 0


def test_the_org_snapshot_knows_teams_transitively(env: BotEnv) -> None:
    with transaction(env.bot.sessions) as session:
        org = Org.load(session, env.config)
    assert set(org.team("lina")) == set(LINA_TEAM)
    assert set(org.team("zhoumin")) == {"lina", "wangqiang", *LINA_TEAM, *WANGQIANG_TEAM}
    assert org.can_see("zhoumin", "zhangwei") and not org.can_see("lina", "zhaolei")
    assert org.can_see("zhangwei", "zhangwei") and not org.can_see("zhangwei", "liuyang")
    assert org.can_manage("lina", "zhangwei") and not org.can_manage("lina", "lina")
    assert org.can_manage(ADMIN, "zhoumin") and org.visible(ADMIN) == tuple(u for u in org.members if u != ADMIN)
    assert org.only_visible("lina", ["zhaolei", "zhangwei", "lina"]) == ["zhangwei", "lina"]


def test_a_member_is_told_politely_that_manager_commands_are_for_managers(env: BotEnv) -> None:
    for command in ("/score", "/score 刘洋 工作态度 5 很好", "/data 刘洋 内容生产量 20", "/target 刘洋 内容生产量 20",
                    "/calibrate 刘洋 90 很好", "/team"):
        reply = env.ask("zhangwei", command)
        assert "仅限主管使用" in reply and "张伟" in reply and "「成员」" in reply, (command, reply)
    assert entries_for(env, "liuyang") == 0


def test_a_manager_enters_data_and_ratings_only_for_their_own_team(env: BotEnv) -> None:
    refused = {
        ("lina", "/data 赵磊 内容生产量 20"): "不在你的团队中",
        ("lina", "/score zhaolei 工作态度 4 配合很好"): "不在你的团队中",
        ("lina", "/target 赵磊 内容生产量 25"): "不在你的团队中",
        ("wangqiang", "/score 张伟 工作态度 4 配合很好"): "不在你的团队中",
        ("lina", "/score 李娜 工作态度 5 我很努力"): "不能为自己录入数据、评分或校准",
        ("lina", "/data lina 内容生产量 30"): "不能为自己",
    }
    for (who, command), expected in refused.items():
        assert expected in env.ask(who, command), command
    assert entries_for(env, "zhaolei") == 0 and entries_for(env, "lina") == 0
    assert "已录入" in env.ask("lina", "/data 张伟 内容生产量 20")
    assert "已录入" in env.ask("zhoumin", "/data 张伟 活动参与率 31%")  # a manager of managers: teams below too
    assert "已记录" in env.ask("zhoumin", "/score 李娜 工作态度 4 带队稳定")
    assert "已录入" in env.ask(ADMIN, "/data 周敏 内容生产量 18")  # an admin: anyone
    assert entries_for(env, "zhangwei") == 2 and entries_for(env, "lina") == 1 and entries_for(env, "zhoumin") == 1


def test_a_member_sees_only_their_own_result_and_never_a_draft(env: BotEnv) -> None:
    seed_month(env, "2026-11")
    env.run_job("month_close", CLOSE_AT, mark_read=True)
    draft = env.ask("zhangwei", "/result 2026-11")
    assert "将于 12-09 10:05 发布" in draft and "总分" not in draft  # drafts are for managers only
    assert "草稿" in env.ask("lina", "/team")
    env.run_job("publish", PUBLISH_AT, mark_read=True)
    own = env.ask("zhangwei", "/result")
    assert "2026年11月考核结果 · 张伟" in own
    for other in ("刘洋", "liuyang", "赵磊"):
        reply = env.ask("zhangwei", f"/result {other}")
        assert "只能查看你自己的结果" in reply and "总分" not in reply
    assert "查看团队结果请用 /team" in env.ask("lina", "/result 张伟")


def test_a_manager_sees_their_team_and_the_teams_below_and_an_admin_everyone(env: BotEnv) -> None:
    seed_month(env, "2026-11")
    env.run_job("month_close", CLOSE_AT, mark_read=True)
    env.run_job("publish", PUBLISH_AT, mark_read=True)
    lina = env.ask("lina", "/team")
    assert all(NAMES[u] in lina for u in LINA_TEAM) and not any(NAMES[u] in lina for u in WANGQIANG_TEAM)
    wangqiang = env.ask("wangqiang", "/team")
    assert all(NAMES[u] in wangqiang for u in WANGQIANG_TEAM) and not any(NAMES[u] in wangqiang for u in LINA_TEAM)
    zhoumin = env.ask("zhoumin", "/team")
    assert all(NAMES[u] in zhoumin for u in (*LINA_TEAM, *WANGQIANG_TEAM, "lina", "wangqiang"))
    admin = env.ask(ADMIN, "/team")
    assert all(NAMES[u] in admin for u in EVERYONE if u != ADMIN)


def test_every_push_reaches_only_whom_it_concerns(env: BotEnv) -> None:
    seed_month(env, "2026-11")
    env.run_job("month_close", CLOSE_AT, mark_read=True)
    env.run_job("publish", PUBLISH_AT, mark_read=True)
    env.settle(mark_read=True)
    for userid in EVERYONE:
        results = [text for text in env.chat.texts_to(userid) if text.startswith("2026年11月考核结果")]
        assert len(results) == 1 and results[0].startswith(f"2026年11月考核结果 · {NAMES[userid]}\n")
        assert not any(NAMES[o] in results[0] for o in EVERYONE if o != userid), userid
    summaries = {u: next((t for t in env.chat.texts_to(u) if t.startswith("2026年11月团队考核结果")), "")
                 for u in EVERYONE}
    assert all(NAMES[u] in summaries["lina"] for u in LINA_TEAM)
    assert not any(NAMES[u] in summaries["lina"] for u in WANGQIANG_TEAM)
    assert not any(NAMES[u] in summaries["wangqiang"] for u in LINA_TEAM)
    assert "李娜" in summaries["zhoumin"] and "张伟" not in summaries["zhoumin"]  # the direct team only
    assert [u for u, text in summaries.items() if text] == ["zhoumin", "lina", "wangqiang"]
    drafts = [u for u in EVERYONE if any(t.startswith("2026年11月结果草稿") for t in env.chat.texts_to(u))]
    assert drafts == ["zhoumin", "lina", "wangqiang"]
    overviews = [u for u in EVERYONE if any("部门考核总览" in t or "数据质量检查" in t for t in env.chat.texts_to(u))]
    assert overviews == [ADMIN]


def test_calibration_follows_the_same_lines(env: BotEnv) -> None:
    seed_month(env, "2026-11")
    env.run_job("month_close", CLOSE_AT, mark_read=True)
    assert "不在你的团队中" in env.ask("lina", "/calibrate 赵磊 80 配合度高")
    assert "不能为自己" in env.ask("lina", "/calibrate 李娜 99 我很努力")
    assert "仅限主管使用" in env.ask("zhaolei", "/calibrate 赵磊 99 我很努力")
    assert "已校准：赵磊" in env.ask(ADMIN, "/calibrate 赵磊 80 跨部门协作突出，校准上调")
    assert "已校准：张伟" in env.ask("zhoumin", "/calibrate 张伟 85 复核后上调")  # teams below a manager
    with transaction(env.bot.sessions) as session:
        authors = sorted((c.userid, c.author) for c in session.scalars(select(ResultCalibration)))
    assert authors == [("zhangwei", "zhoumin"), ("zhaolei", ADMIN)]


def test_idps_are_seen_by_the_member_their_managers_and_admins_only(env: BotEnv) -> None:
    with transaction(env.bot.sessions) as session:
        idp = Idp(userid="zhangwei", manager_userid="lina", opened_for="2026-11", periods=["2026-10", "2026-11"],
                  totals=["68.21", "64.12"], status="open", opened_at=env.clock.now(), closed_at=None)
        session.add(idp)
        session.flush()
        for kind in ("training", "mentorship", "review"):
            session.add(IdpItem(idp_id=idp.id, kind=kind, indicator="content_output" if kind == "training" else None,
                                status="open", created_at=env.clock.now(), done_at=None))
    own = env.ask("zhangwei", "/idp")
    assert "你的计划（2026-11 开启" in own and "「内容生产量（图文/视频/活动）」" in own
    assert "张伟（2026-11 开启，主管 李娜）" in env.ask("lina", "/idp")
    assert "张伟（2026-11 开启" in env.ask("zhoumin", "/idp")
    assert "张伟（2026-11 开启" in env.ask(ADMIN, "/idp")
    for outsider in ("liuyang", "wangqiang", "zhaolei"):
        reply = env.ask(outsider, "/idp")
        assert "张伟" not in reply and "没有进行中的个人发展计划" in reply
