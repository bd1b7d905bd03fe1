"""Benchmark the nightly WeCom statistics job: 2,000 members' day pulled from the fake WeCom and stored.

Builds a tenant of 2,000 members in 20 departments with realistic figures for the last days, syncs the org,
then runs the `wecom_stats_sync` job exactly as the scheduler would (one behaviour call and one customer-list
call per member, group figures by owner, 100 owners a call, one day at a time) and prints the time, the calls
made per API and the rows stored. Target on the reference machine: under 60 s.

    python benchmarks/wecom_sync.py                          # 2,000 members, yesterday only, SQLite
    python benchmarks/wecom_sync.py --repull-days 3          # the default nightly window (4 days)
    python benchmarks/wecom_sync.py --wecom-concurrency 2 --wecom-latency 0.02  # 45033 beyond 2 calls at once
    python benchmarks/wecom_sync.py --database postgresql+psycopg://postgres@127.0.0.1/kpibot_bench

A --database must be a scratch database: it is emptied first.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bot.app import KpiBot  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.config import parse_config  # noqa: E402
from bot.storage.db import make_engine, transaction, upgrade_database  # noqa: E402
from bot.fakes.wecom import FakeWeCom  # noqa: E402
from bot.storage.models import WeComBehaviorDay, WeComCustomerCount, WeComGroupDay  # noqa: E402
from bot.appraisal.wecom_stats import wecom_today  # noqa: E402

CORP_ID, SECRET, AGENT_ID = "wwkpibotbench0002", "bench-secret", 1000002
DEPARTMENT_SIZE = 100
TARGET_SECONDS = 60.0


def build_tenant(fake: FakeWeCom, members: int, days: int, today: object) -> None:
    rng = random.Random(20261127)
    fake.add_department(2, "社群运营中心", parentid=1)
    departments = (members + DEPARTMENT_SIZE - 1) // DEPARTMENT_SIZE
    for index in range(departments):
        fake.add_department(10 + index, f"社群{index + 1}组", parentid=2)
    for number in range(members):
        userid = f"bench{number:05d}"
        department = 10 + number // DEPARTMENT_SIZE
        leader = number % DEPARTMENT_SIZE == 0
        fake.add_user(userid, f"成员{number:05d}", departments=(department,), leader_in=(department,) if leader else ())
        customers = rng.randint(100, 900)
        group_members = rng.randint(200, 1200)
        for offset in range(1, days + 1):
            day = today - timedelta(days=offset)  # type: ignore[operator]
            chats = rng.randint(0, 25)
            fields = {"chat_cnt": chats, "message_cnt": chats * rng.randint(2, 6),
                      "negative_feedback_cnt": rng.randint(0, 2), "new_apply_cnt": rng.randint(0, 12),
                      "new_contact_cnt": rng.randint(0, 10)}
            if chats:
                fields.update(avg_reply_time=rng.randint(3, 120), reply_percentage=float(rng.randint(50, 100)))
            fake.set_behavior_data(userid, day, **fields)
            joins, quits = rng.randint(0, 15), rng.randint(0, 15)
            group_members = max(0, group_members + joins - quits)
            fake.set_group_statistic(userid, day, chat_total=rng.randint(1, 12), new_member_cnt=joins,
                                     member_total=group_members, member_has_msg=group_members // rng.randint(4, 30),
                                     msg_total=rng.randint(0, 400))
        fake.set_customer_count(userid, customers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--repull-days", type=int, default=0, help="days before yesterday pulled again (nightly: 3)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--wecom-concurrency", type=int, default=None,
                        help="the fake answers 45033 beyond this many concurrent calls of one API (default: no limit)")
    parser.add_argument("--wecom-latency", type=float, default=0.0,
                        help="seconds each customer-contact call takes to answer (with --wecom-concurrency)")
    parser.add_argument("--database", default=None, help="a scratch database URL, emptied first (default: SQLite in a temporary directory)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="kpibot-bench-"))
    url = args.database or f"sqlite:///{workdir / 'bench.db'}"
    clock = SystemClock()
    today = wecom_today(clock.now())
    fake = FakeWeCom(corp_id=CORP_ID, corp_secret=SECRET, agent_id=AGENT_ID)
    started = time.monotonic()
    build_tenant(fake, args.members, args.repull_days + 1, today)
    print(f"tenant: {args.members} members, {args.repull_days + 1} day(s) of figures "
          f"(built in {time.monotonic() - started:.1f} s)")
    with fake:
        config = parse_config({
            "wecom": {"corp_id": CORP_ID, "agent_id": AGENT_ID, "secret": SECRET, "token": "benchToken",
                      "encoding_aes_key": "BenchEncodingAesKey0123456789abcdefghijklmn",
                      "api_base_url": fake.base_url, "request_timeout": 10.0},
            "database": {"url": url},
            "org": {"admins": ["bench00000"], "departments": [2]},
            "wecom_stats": {"repull_days": args.repull_days, "concurrency": args.concurrency},
        }, environ={})
        engine = make_engine(url)
        if not url.startswith("sqlite"):
            from tests.harness import reset_database
            reset_database(engine)
        upgrade_database(engine)
        bot = KpiBot(config, clock=clock, engine=engine)
        report = bot.sync_org()
        print(f"org sync: {report.members} members in {report.departments} departments")
        fake.reset_records()
        fake.limit_stats_concurrency(args.wecom_concurrency, hold=args.wecom_latency)

        started = time.monotonic()
        result = bot.job_runner().run("wecom_stats_sync")
        elapsed = time.monotonic() - started

        calls = Counter(call.path for call in fake.calls())
        with transaction(bot.sessions) as session:
            rows = {model.__tablename__: session.scalar(select(func.count()).select_from(model))
                    for model in (WeComBehaviorDay, WeComGroupDay, WeComCustomerCount)}
        engine.dispose()
    print(f"job: {result.detail}")
    print(f"time: {elapsed:.2f} s for {args.members} members × {args.repull_days + 1} day(s) "
          f"(concurrency {args.concurrency}, {url.split(':', 1)[0]})")
    print("calls: " + ", ".join(f"{path} {count}" for path, count in sorted(calls.items()))
          + f"; total {sum(calls.values())}")
    print("rows: " + ", ".join(f"{table} {count}" for table, count in rows.items()))
    verdict = "OK" if elapsed < TARGET_SECONDS else "TOO SLOW"
    print(f"target < {TARGET_SECONDS:.0f} s: {verdict}")
    return 0 if elapsed < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
