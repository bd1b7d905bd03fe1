"""Every message template renders with realistic variables (StrictUndefined), and every template is tested."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import jinja2
import pytest

from bot.appraisal.org_sync import SyncReport
from bot.appraisal.people import Person, Role
from bot.jobs.runner import JobResult, WatchedRun
from bot.templates import TEMPLATE_ROOT, render, template_names
from tests.harness import assert_renders

ZHANG = Person("zhangwei", "张伟", Role.MEMBER, "lina", (3,))
GUEST = Person("qianduo", "钱多", Role.GUEST)
NOW = datetime(2026, 11, 27, 8, 5, tzinfo=timezone.utc)

# template → (variables, text the result must contain)
CASES: dict[str, tuple[dict[str, object], tuple[str, ...]]] = {
    "help.txt.j2": ({"person": ZHANG, "commands": ["/help", "/report"]}, ("张伟", "成员", "/report  填写")),
    "welcome.txt.j2": ({"person": ZHANG}, ("张伟", "周报")),
    "hint.txt.j2": ({"person": ZHANG}, ("张伟", "/help")),
    "unknown_command.txt.j2": ({"command": "/hepl", "suggestions": ["/help"]}, ("「/hepl」", "/help？")),
    "not_allowed.txt.j2": ({"command": "/score", "required": "主管", "person": ZHANG}, ("/score 仅限主管", "成员")),
    "cancel_nothing.txt.j2": ({}, ("没有进行中的对话",)),
    "cancelled.txt.j2": ({}, ("已保存",)),
    "card_expired.txt.j2": ({}, ("已失效",)),
    "unsupported_message.txt.j2": ({"kind": "voice"}, ("语音",)),
    "apology.txt.j2": ({}, ("抱歉",)),
    "ops/init.txt.j2": ({"path": "config.toml", "created": True}, ("已根据示例写入配置文件 config.toml",)),
    "ops/db_upgrade.txt.j2": ({"before": None, "after": "0001"}, ("从 空 升级到 0001",)),
    "ops/serving.txt.j2": ({"host": "127.0.0.1", "port": 8080, "fake_url": "http://127.0.0.1:9/cgi-bin/",
                            "scheduler": False}, ("http://127.0.0.1:8080/wecom/callback", "模拟企业微信", "未启用")),
    "ops/org_sync.txt.j2": ({"report": SyncReport(4, 11, ("lina",), ("sunyue",), ("zhoumin",))},
                            ("4 个部门，11 名", "新增：lina", "停用", "没有上级的成员：zhoumin")),
    "ops/org_not_visible.txt.j2": ({"department": 5, "errmsg": "no privilege"},
                                   ("应用看不到部门 5", "60011：no privilege", "可见范围 中添加部门 5")),
    "ops/outbox.txt.j2": ({"rows": [SimpleNamespace(id=7, status="failed", touser="lina", msgtype="text", attempts=8,
                                                    created_at=NOW, last_error="81013 user invalid")],
                           "status": "all", "zone": ZoneInfo("Asia/Shanghai"),
                           "pause": SimpleNamespace(reason="60020 not allow to access from your ip, from ip: 1.2.3.4",
                                                    since=NOW, next_attempt_at=NOW)},
                          ("失败", "2026-11-27 16:05:00", "81013", "发送已暂停", "from ip: 1.2.3.4", "企业可信IP")),
    "ops/sending_resumed.txt.j2": ({"reason": "40001 invalid credential", "since": NOW, "resumed": NOW, "held": 12},
                                   ("发送已恢复", "2026-11-27 08:05", "40001", "12 条", "Secret")),
    "ops/daily_volume_warning.txt.j2": ({"day": NOW.date(), "sent": 80000, "volume": 100000, "account_limit": 500},
                                        ("2026-11-27", "80000", "100000", "account_limit")),
    "ops/outbox_retry.txt.j2": ({"count": 2, "ids": [1, 2]}, ("重新排队 2 条",)),
    "ops/jobs_list.txt.j2": ({"rows": [(SimpleNamespace(id="org_sync", description="每晚同步通讯录"),
                                        NOW.astimezone(ZoneInfo("Asia/Shanghai")))],
                              "watched": [WatchedRun("publish", "2026-11", "stuck", NOW, None, "web1:4242:9f3a", NOW, 0),
                                          WatchedRun("weekly_prompt", "2026-W48", "done", NOW, NOW, "web2:77:1b2c",
                                                     None, 1),
                                          WatchedRun("org_sync", "2026-11-27", "planned", NOW,
                                                     NOW + timedelta(seconds=143), None, None, 0)],
                              "unreadable": None, "zone": ZoneInfo("Asia/Shanghai")},
                             ("org_sync", "2026-11-27 16:05 CST", "每晚同步通讯录",
                              "卡住：运行它的进程 web1:4242:9f3a 已失联（认领已于 2026-11-27 16:05:00 过期）",
                              "weekly_prompt          2026-W48     计划于 2026-11-27 16:05：已完成，曾被接管 1 次",
                              "已计划，16:07:23 开始")),
    "ops/jobs_run.txt.j2": ({"result": JobResult("org_sync", "2026-11-27", False, "already_ran")},
                            ("已经运行过", "--force")),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_template_renders_with_realistic_variables(name: str) -> None:
    assert_renders(name, *CASES[name])


def test_a_missing_variable_is_an_error_not_blank_text() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render("hint.txt.j2")


def test_guests_are_told_they_are_not_appraised() -> None:
    assert "不在绩效考核范围内" in render("help.txt.j2", person=GUEST, commands=["/help"])


def test_every_template_is_exercised_by_some_test() -> None:
    tests_dir = Path(__file__).resolve().parent
    test_text = "\n".join(path.read_text(encoding="utf-8") for path in tests_dir.rglob("test_*.py"))
    untested = [name for name in template_names() if name not in test_text and Path(name).name not in test_text]
    assert untested == [], f"templates without a rendering test: {untested}"


def test_templates_hold_no_placeholder_text() -> None:
    placeholder = re.compile(r"TODO|FIXME|lorem|待补充|XXX")
    offenders = [path.name for path in TEMPLATE_ROOT.rglob("*.j2") if placeholder.search(path.read_text(encoding="utf-8"))]
    assert offenders == []
