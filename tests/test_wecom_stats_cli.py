"""The customer-contact statistics on the command line (`kpibot data sync-wecom`), the [wecom_stats] config
section, and every wecom_stats/* template rendered with realistic variables."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox import demo_stats
from bot.cli.main import main
from bot.config import ConfigError, load_config, parse_config
from bot.sandbox.demo_org import DEMO_PEOPLE
from bot.appraisal.indicator_sources import DataFlag
from bot.appraisal.wecom_stats import SyncReport
from bot.wecom.client import WECOM_ZONE
from bot.wecom.contact_stats import BEHAVIOR_PATH
from tests.harness import CORP_ID, assert_renders, running_fake, templates_under, write_config_file

D = Decimal
MEMBERS = sorted(person.userid for person in DEMO_PEOPLE)


# -- the command line ----------------------------------------------------------------------------------------

def test_sync_wecom_backfills_from_a_date_and_refuses_days_wecom_does_not_give(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    today = datetime.now(WECOM_ZONE).date()
    with running_fake() as fake:  # on the real clock, like the CLI
        demo_stats.populate(fake, today, days=40)
        config = write_config_file(tmp_path, fake.base_url, org={"admins": ["zhoumin"]},
                                   wecom_stats={"sync_at": "07:20", "repull_days": 2})
        assert main(["--config", str(config), "db", "upgrade"]) == 0
        assert main(["--config", str(config), "org", "sync"]) == 0
        capsys.readouterr()
        first = today - timedelta(days=35)
        assert main(["--config", str(config), "data", "sync-wecom", "--from", first.isoformat()]) == 0
        out = capsys.readouterr().out
        assert f"{first} 至 {first + timedelta(days=29)}" in out and "完成" in out
        assert len(fake.calls(BEHAVIOR_PATH)) == 2 * len(MEMBERS)  # 35 days: two windows of at most 30

        assert main(["--config", str(config), "data", "wecom-metrics", "--period",
                     f"{today.year}-{today.month:02d}", "--member", "yangfan"]) == 0
        assert "杨帆" in capsys.readouterr().out

        for args, fragment in ((["--from", (today - timedelta(days=200)).isoformat()], "最近 180 天"),
                               (["--from", today.isoformat(), "--to", today.isoformat()], "只能拉取到昨天"),
                               (["--from", "2026-13-01"], "无效的日期"),
                               (["--from", (today - timedelta(days=2)).isoformat(),
                                 "--to", (today - timedelta(days=5)).isoformat()], "晚于")):
            assert main(["--config", str(config), "data", "sync-wecom", *args]) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and fragment in err[0], err
        fake.set_stats_permission(False)
        assert main(["--config", str(config), "data", "sync-wecom"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "48002" in err[0]


# -- config and templates -----------------------------------------------------------------------------------

def test_the_wecom_stats_section_is_documented_and_checked() -> None:
    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    config = load_config(example, environ={})
    text = example.read_text(encoding="utf-8")
    assert "[wecom_stats]" in text
    for name in config.wecom_stats.__dataclass_fields__:
        assert f"\n{name} = " in text.split("[wecom_stats]", 1)[1], name
    base = {"wecom": {"corp_id": "ww1", "agent_id": 1, "secret": "s", "token": "t", "encoding_aes_key": "x" * 43}}
    with pytest.raises(ConfigError) as error:
        parse_config({**base, "wecom_stats": {"sync_at": "08:00", "repull_days": 30, "departments": ["x"]}},
                     environ={})
    assert {p.key for p in error.value.problems} == {"wecom_stats.sync_at", "wecom_stats.repull_days",
                                                     "wecom_stats.departments"}
    assert parse_config({**base, "wecom_stats": {"departments": [3], "concurrency": 8}},
                        environ={}).wecom_stats.departments == (3,)


REPORT = SyncReport(first=date(2026, 11, 23), last=date(2026, 11, 26), members=11, behavior_rows=44, group_rows=44,
                    customer_snapshots=11, calls=26, skipped=("sunyue",), failed=("wuhao",), stopped="45009 limit")
FLAGS = [DataFlag("sunyue", "contact_burst", "2026-11", {"day": date(2026, 11, 7), "new_contacts": 80,
                                                         "baseline": D(2), "deletions_after": 48, "window": 7}),
         DataFlag("lina", "missing_days", "2026-11", {"days": 2, "first": date(2026, 11, 3),
                                                      "last": date(2026, 11, 4)})]

TEMPLATE_CASES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "wecom_stats/job_detail.txt.j2": ({"report": REPORT, "not_permitted": None},
                                      ("2026-11-23 至 2026-11-26", "11 人", "已跳过：sunyue", "下次运行会重拉）：wuhao",
                                       "提前停止：45009")),
    "wecom_stats/not_permitted.txt.j2": ({"errmsg": "api forbidden", "path": BEHAVIOR_PATH, "corp_id": CORP_ID,
                                          "agent_id": 1000002}, ("48002", "可调用应用", "AgentId 1000002")),
    "wecom_stats/cli_sync.txt.j2": ({"reports": [REPORT], "seconds": "1.5"}, ("接口调用 26 次", "用时 1.5 秒")),
    "wecom_stats/cli_progress.txt.j2": ({"first": date(2026, 10, 1), "last": date(2026, 10, 30), "done": 100,
                                         "total": 2000}, ("100/2000",)),
    "wecom_stats/cli_error.txt.j2": ({"code": "too_early", "p": {"earliest": date(2026, 6, 1),
                                                               "first": date(2026, 1, 1)}}, ("最早可拉取 2026-06-01",)),
    "wecom_stats/metrics.txt.j2": ({"period": "2026-11", "first": date(2026, 11, 1), "last": date(2026, 11, 30),
                                    "rows": [{"userid": "wuhao", "name": "吴昊",
                                              "values": {"avg_reply_time": D("104.5"), "reply_rate": D("67.2")}}],
                                    "metrics": __import__("scoring.wecom_metrics", fromlist=["METRICS"]).METRICS,
                                    "flags": FLAGS, "names": {"sunyue": "孙悦", "lina": "李娜"}},
                                   ("吴昊（wuhao）", "平均首次回复时长：104.5分钟", "孙悦", "李娜")),
    "wecom_stats/data_quality.txt.j2": ({"flags": [], "period": "2026-10", "names": {}}, ("未发现",)),
    "wecom_stats/data_quality_item.txt.j2": ({"flag": FLAGS[1], "names": {"lina": "李娜"}},
                                             ("李娜", "2 天", "sync-wecom --from 2026-11-03")),
}


@pytest.mark.parametrize("name", sorted(TEMPLATE_CASES))
def test_wecom_stats_templates_render(name: str) -> None:
    assert_renders(name, *TEMPLATE_CASES[name], blank_runs=False)


def test_every_wecom_stats_template_has_a_case() -> None:
    assert templates_under("wecom_stats/") == set(TEMPLATE_CASES)
