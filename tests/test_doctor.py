"""`kpibot doctor` against the fake WeCom: every check passes, and each misconfiguration is one ✗ line with its fix."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from bot.cli.main import main
from bot.cli.doctor import Check, doctor, report
from bot.clock import FakeClock
from bot.storage.db import transaction
from bot.storage.models import OutboxMessage
from bot.wecom.outbox import Outgoing, enqueue
from bot.templates import render
from tests.harness import BotEnv, write_config_file


def bot_database(env: BotEnv) -> str:
    """The running bot's own database, so doctor checks what the bot uses on every backend."""
    return env.config.database.url.reveal()

SHANGHAI = ZoneInfo("Asia/Shanghai")
# A year whose holidays and the next year's the installed chinese-calendar knows, so the calendar line passes.
KNOWN_YEARS = FakeClock(datetime(2025, 6, 2, 10, 0, tzinfo=SHANGHAI))


def run_doctor(path: Path, public_url: str | None = None) -> tuple[int, list[str]]:
    printed: list[str] = []
    code = doctor(path, clock=KNOWN_YEARS, public_url=public_url, out=printed.append)
    return code, printed[0].splitlines()


def line(lines: list[str], label: str) -> str:
    found = [text for text in lines if text[2:].startswith(label)]
    assert len(found) == 1, lines
    return found[0]


def test_doctor_passes_against_the_fake_including_the_public_url(bot_env: BotEnv, tmp_path: Path) -> None:
    path = write_config_file(tmp_path, bot_env.fake.base_url,
                             database_url=bot_database(bot_env))  # the running bot's database and secrets
    code, lines = run_doctor(path, public_url=f"http://127.0.0.1:{bot_env.port}/wecom/callback")
    assert code == 0, lines
    assert len(lines) == 10 and lines[-1] == "全部通过。"
    assert all(text.startswith("✓ ") for text in lines[:-1]), lines
    assert "应用可见 4 个部门" in line(lines, "可见范围") and "zhoumin 存在且已激活" in line(lines, "管理员")
    assert "通过了 URL 验证" in line(lines, "公网回调地址")


def test_a_wrong_secret_a_blocked_ip_and_an_invisible_department_are_three_lines_with_their_fixes(
        bot_env: BotEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = bot_env.fake
    wrong = write_config_file(tmp_path, fake.base_url, "wrong.toml",
                              database_url=bot_database(bot_env), wecom={"secret": "not-the-secret"})
    assert main(["--config", str(wrong), "doctor"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert line(lines, "企业微信凭证").startswith("✗ 企业微信凭证：Secret 不正确（40001）→ 在管理后台 → 应用管理")
    assert line(lines, "企业可信IP") == "✗ 企业可信IP：未能检查：先解决上面「企业微信凭证」一项"

    fake.set_trusted_ips(["203.0.113.9"])
    right = write_config_file(tmp_path, fake.base_url, "right.toml", database_url=bot_database(bot_env))
    assert main(["--config", str(right), "doctor"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert line(lines, "企业微信凭证").startswith("✓")
    assert line(lines, "企业可信IP") == ("✗ 企业可信IP：本机不在企业可信IP中（60020）→ 在管理后台 → 应用管理 → 本应用 → "
                                         "企业可信IP 中添加 127.0.0.1（企业微信看到的本机地址），约 1 分钟后生效")

    fake.set_trusted_ips(None)
    fake.set_visibility(departments=(3,))
    narrow = write_config_file(tmp_path, fake.base_url, "narrow.toml",
                               database_url=bot_database(bot_env), org={"departments": [4], "admins": ["lina"]})
    assert main(["--config", str(narrow), "doctor"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert line(lines, "企业可信IP").startswith("✓")
    assert line(lines, "可见范围").startswith("✗ 可见范围：应用看不到部门 4（60011）→ 在管理后台 → 应用管理 → 本应用 → 可见范围 中添加")

    # All three at once: each is a ✗ line, and the exit code says so.
    fake.set_trusted_ips(["203.0.113.9"])
    assert main(["--config", str(wrong), "doctor"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [text[:2] for text in (line(lines, "企业微信凭证"), line(lines, "企业可信IP"), line(lines, "可见范围"))] == ["✗ "] * 3

    # Fixed in WeCom's admin console: the same config passes.
    fake.set_trusted_ips(None)
    fake.set_visibility()
    code, lines = run_doctor(narrow)
    assert code == 0, lines


def test_a_wrong_corpid_missing_admins_failed_messages_and_an_old_schema_are_named(
        bot_env: BotEnv, tmp_path: Path) -> None:
    fake = bot_env.fake
    code, lines = run_doctor(write_config_file(tmp_path, fake.base_url,
                                               database_url=bot_database(bot_env), wecom={"corp_id": "wwnotthiscorp"}))
    assert code == 1 and "企业ID不正确（40013，当前 wwnotthiscorp）" in line(lines, "企业微信凭证")

    fake.set_user("lina", status=2)
    fake.set_visibility(departments=(2,), users=())
    fake.add_department(9, "财务部")
    fake.add_user("caiwu", "财务", departments=(9,))
    path = write_config_file(tmp_path, fake.base_url,
                             database_url=bot_database(bot_env), org={"admins": ["zhoumin", "lina", "ghost", "caiwu"]})
    with transaction(bot_env.bot.sessions) as session:
        enqueue(session, "doctor:failed", Outgoing.text("ghost", "你好"), bot_env.clock.now())
        session.execute(update(OutboxMessage).where(OutboxMessage.idempotency_key == "doctor:failed").values(
            status="failed", last_error="81013 user & party & tag all invalid"))
    code, lines = run_doctor(path, public_url=f"http://127.0.0.1:{bot_env.port}/not-the-callback")
    assert code == 1
    assert line(lines, "管理员") == ("✗ 管理员：lina 未激活或已停用（状态 2）；ghost 在企业微信中不存在（60111）；"
                                  "caiwu 不在应用可见范围内（60011） → 修改 [org] admins，或在管理后台处理这些成员")
    assert "1 条发送失败" in line(lines, "发送队列") and "kpibot outbox --retry" in line(lines, "发送队列")
    assert "返回 HTTP 404" in line(lines, "公网回调地址")
    assert line(lines, "数据库").startswith("✓")

    with transaction(bot_env.bot.sessions) as session:
        session.execute(update(OutboxMessage).values(status="sent"))
        assert session.scalars(select(OutboxMessage.status)).all() == ["sent"]
    elsewhere = tmp_path / "fresh"
    elsewhere.mkdir()
    code, lines = run_doctor(write_config_file(elsewhere, fake.base_url))
    assert "结构不是最新（当前 空" in line(lines, "数据库") and "kpibot db upgrade" in line(lines, "数据库")
    assert "未能检查：先解决上面「数据库」一项" in line(lines, "发送队列")


def test_an_invalid_config_is_the_first_and_only_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[wecom]\ncorp_id = 1\n", encoding="utf-8")
    assert main(["--config", str(path), "doctor"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"✗ 配置：{path} 无效：") and lines[-1] == "1 项未通过。" and len(lines) == 2


def test_the_doctor_template_names_every_check() -> None:
    checks = [Check("calendar", False, {"years": [2026, 2027], "unknown": [2027]}),
              Check("wecom", False, {"error": "ConnectionError: refused"}),
              Check("public_url", False, {"url": "https://kpi.example.com/wecom/callback", "status": 200})]
    text = report(checks)
    assert text == render("ops/doctor.txt.j2", checks=checks, failed=3)
    assert "✗ 节假日日历：没有 2027 年的节假日与调休数据" in text
    assert "✗ 企业微信：调用失败：ConnectionError: refused" in text
    assert "的回答不是解密后的 echostr" in text and text.endswith("3 项未通过。")
