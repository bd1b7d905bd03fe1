"""Benchmark the month close and publication: 2,000 members in 100 teams against the fake WeCom.

A synthetic org (a director over 100 team leaders with 19 members each) is served by the fake WeCom and synced;
every member has a value for every monthly indicator and companion metric of November (and October, so the
data-quality check compares months). Then `month_close` and `publish` run through the job runner, as the
scheduler would, and the sender delivers everything to the fake. Meanwhile a probe sends a signed callback every
0.2 s and records how long the callback took to answer, because the callback must stay well inside WeCom's 5 s
while the jobs hold the database. Prints the time of each step, sends per second and peak memory (max RSS of
this process, the fake WeCom included). Targets: close + publish under 60 s, peak under 500 MB.

    .venv/bin/python benchmarks/month_close.py                      # SQLite in a temporary directory
    .venv/bin/python benchmarks/month_close.py --database-url postgresql+psycopg://postgres@127.0.0.1/bench
    .venv/bin/python benchmarks/month_close.py --december   # December: the month, Q4 and the year together
"""
from __future__ import annotations

import argparse
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from sqlalchemy import MetaData, func, insert, select  # noqa: E402

from bot.app import KpiBot  # noqa: E402
from bot.clock import FakeClock  # noqa: E402
from bot.config import parse_config  # noqa: E402
from bot.storage.db import make_engine, transaction, upgrade_database  # noqa: E402
from bot.fakes.wecom import FakeWeCom  # noqa: E402
from bot.storage.models import DataEntry, OutboxMessage, PeriodResult  # noqa: E402
from bot.fakes.callbacks import CallbackSender  # noqa: E402

SHANGHAI = ZoneInfo("Asia/Shanghai")
CORP_ID, SECRET, AGENT_ID = "wwkpibotbench0002", "bench-secret", 1000002
TOKEN, AES_KEY = "benchToken", "BenchEncodingAesKey0123456789abcdefghijklmn"
CLOSE_AT = datetime(2026, 12, 7, 10, 5, tzinfo=SHANGHAI)
PUBLISH_AT = datetime(2026, 12, 9, 10, 5, tzinfo=SHANGHAI)
DECEMBER_CLOSE_AT = datetime(2027, 1, 7, 10, 5, tzinfo=SHANGHAI)
DECEMBER_PUBLISH_AT = datetime(2027, 1, 11, 10, 5, tzinfo=SHANGHAI)
DIRECTOR = "director"


def build_org(fake: FakeWeCom, teams: int, per_team: int) -> list[str]:
    """A director leading the department, team leaders under them, members under each leader."""
    fake.add_department(2, "社群运营中心", parentid=1, leaders=(DIRECTOR,))
    fake.add_user(DIRECTOR, "总监", departments=(2,), main_department=2, leader_in=(2,), position="社群运营总监")
    members: list[str] = [DIRECTOR]
    for team in range(teams):
        department = 100 + team
        leader = f"lead{team:03d}"
        fake.add_department(department, f"社群{team + 1}组", parentid=2)
        fake.add_user(leader, f"组长{team + 1:03d}", departments=(department,), main_department=department,
                      direct_leader=(DIRECTOR,), leader_in=(department,), position="组长")
        members.append(leader)
        for index in range(per_team):
            userid = f"m{team:03d}{index:02d}"
            fake.add_user(userid, f"成员{team + 1:03d}{index + 1:02d}", departments=(department,),
                          main_department=department, direct_leader=(leader,), position="社群运营专员")
            members.append(userid)
    return members


def seed_data(bot: KpiBot, members: list[str], months: list[str], *, year: bool = False) -> int:
    """Every monthly indicator and companion metric of seed-executor for every member and month: each member has
    their own level, drifting a little from month to month, and one in fifty has a typo-sized jump."""
    rng = random.Random(20261130)
    now = datetime.now(timezone.utc)
    ranges = {"net_follower_growth_rate": (2, 8), "event_participation_rate": (18, 40), "content_output": (10, 30),
              "response_time": (4, 80), "work_attitude": (2, 5), "group_quit_rate": (2, 18),
              "group_speaking_rate": (6, 35)}
    levels = {userid: {key: rng.uniform(low, high) for key, (low, high) in ranges.items()} for userid in members}
    rows = []
    for month in months:
        for userid in members:
            for key, level in levels[userid].items():
                value = level * rng.uniform(0.9, 1.1) * (10 if rng.random() < 0.02 / len(ranges) else 1)
                if key in ("content_output", "work_attitude"):
                    text = str(max(1, min(5, round(value))) if key == "work_attitude" else round(value))
                else:
                    text = str(Decimal(str(round(value, 1))))
                rows.append({"userid": userid, "key": key, "period": month, "kind": "value", "value": text,
                             "waived": False, "reason": "", "source": "import", "entered_by": "bench",
                             "entered_at": now})
    if year:  # the quarterly and annual indicators, for a December close with its quarter and year
        for userid in members:
            extra = {f"2026-Q{q}": {"prospect_retention": rng.uniform(25, 50)} for q in range(1, 5)}
            extra["2026"] = {"cross_department_collaboration": rng.uniform(2.5, 5), "culture_fit": rng.randint(2, 5)}
            for period, values in extra.items():
                for key, value in values.items():
                    rows.append({"userid": userid, "key": key, "period": period, "kind": "value",
                                 "value": str(value) if isinstance(value, int) else str(Decimal(str(round(value, 1)))),
                                 "waived": False, "reason": "", "source": "import", "entered_by": "bench",
                                 "entered_at": now})
    for start in range(0, len(rows), 5000):
        with transaction(bot.sessions) as session:
            session.execute(insert(DataEntry), rows[start:start + 5000])
    return len(rows)


class CallbackProbe:
    """Sends a signed callback every `interval` seconds and records how long each took to be answered."""

    def __init__(self, url: str, clock: FakeClock, interval: float = 0.2) -> None:
        self.sender = CallbackSender(url, token=TOKEN, encoding_aes_key=AES_KEY, corp_id=CORP_ID, agent_id=AGENT_ID,
                                     clock=clock.now)
        self.interval = interval
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe", daemon=True)

    def _run(self) -> None:
        count = 0
        while not self._stop.wait(self.interval):
            count += 1
            started = time.perf_counter()
            # A menu click nobody handles: stored like any callback (a real write), answered by nobody.
            response = self.sender.event(DIRECTOR, "click", f"probe-{count}")
            if response.status == 200:
                self.latencies.append(time.perf_counter() - started)

    def __enter__(self) -> CallbackProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def reset(url: str) -> None:
    engine = make_engine(url)
    metadata = MetaData()
    metadata.reflect(bind=engine)
    metadata.drop_all(bind=engine)
    upgrade_database(engine)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teams", type=int, default=100)
    parser.add_argument("--per-team", type=int, default=19, help="members under each leader (default 19: "
                                                                 "100 leaders + 1,900 = 2,000 in 100 teams)")
    parser.add_argument("--database-url", help="default: SQLite in a temporary directory (the database is reset)")
    parser.add_argument("--december", action="store_true",
                        help="close December instead: the month, Q4 and the year roll up together (a year of data)")
    args = parser.parse_args()
    close_at, publish_at = (DECEMBER_CLOSE_AT, DECEMBER_PUBLISH_AT) if args.december else (CLOSE_AT, PUBLISH_AT)
    month = "2026-12" if args.december else "2026-11"

    workdir = Path(tempfile.mkdtemp(prefix="kpibot-bench-"))
    url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    reset(url)
    clock = FakeClock(close_at)
    fake = FakeWeCom(corp_id=CORP_ID, corp_secret=SECRET, agent_id=AGENT_ID, clock=clock.now)
    members = build_org(fake, args.teams, args.per_team)
    fake.start()
    config = parse_config({
        "wecom": {"corp_id": CORP_ID, "agent_id": AGENT_ID, "secret": SECRET, "token": TOKEN,
                  "encoding_aes_key": AES_KEY, "api_base_url": fake.base_url, "request_timeout": 5.0},
        "database": {"url": url}, "server": {"host": "127.0.0.1", "port": 0, "threads": 8},
        "org": {"admins": [DIRECTOR], "departments": [1]}, "wecom_stats": {"enabled": False},
    }, environ={})
    bot = KpiBot(config, clock=clock)
    try:
        started = time.perf_counter()
        report = bot.sync_org()
        months = [f"2026-{m:02d}" for m in range(1, 13)] if args.december else ["2026-10", "2026-11"]
        seeded = seed_data(bot, members, months, year=args.december)
        setup = time.perf_counter() - started
        bot.start(scheduler=False, sync_org_now=False)
        port = bot.start_http(host="127.0.0.1", port=0)
        runner = bot.job_runner()
        with CallbackProbe(f"http://127.0.0.1:{port}/wecom/callback", clock) as probe:
            t0 = time.perf_counter()
            close = runner.run("month_close", close_at, period=month)
            t1 = time.perf_counter()
            clock.set(publish_at)
            published = runner.run("publish", publish_at, period=month)
            t2 = time.perf_counter()
            with transaction(bot.sessions) as session:
                queued = session.scalar(select(func.count()).select_from(OutboxMessage)) or 0
            bot.sender.wake()
            bot.sender.wait_for_outcomes(queued, timeout=600)
            t3 = time.perf_counter()
        with transaction(bot.sessions) as session:
            published_rows = session.scalar(select(func.count()).select_from(PeriodResult).where(
                PeriodResult.status == "published")) or 0
        delivered = len(fake.delivered())
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        latencies = sorted(probe.latencies)
        total = t3 - t0
        print(f"database        {url.split('://')[0]}")
        print(f"org             {report.members} members, {args.teams} teams ({report.departments} departments); "
              f"{seeded} data entries; setup {setup:.1f} s")
        print(f"month_close     {t1 - t0:6.2f} s   {close.detail}")
        print(f"publish         {t2 - t1:6.2f} s   {published.detail}")
        print(f"delivery rest   {t3 - t2:6.2f} s   (the sender runs alongside the jobs)")
        print(f"close+publish   {t2 - t0:6.2f} s   target < 60 s")
        print(f"all delivered   {total:6.2f} s   {delivered} messages ({queued} outbox rows incl. split parts), "
              f"{delivered / total:.0f} sends/s; published results {published_rows}; "
              f"outcomes {bot.sender.outcomes}")
        if latencies:
            print(f"callback probe  {len(latencies)} callbacks during the run: median "
                  f"{latencies[len(latencies) // 2] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms (WeCom allows 5 s)")
        print(f"peak memory     {peak_mb:.0f} MB (max RSS, fake WeCom included)   target < 500 MB")
    finally:
        bot.stop()
        fake.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
