"""Benchmark the weekly cycle: the weekly prompt (then the reminder and the escalation) for 2,000 members.

A real KpiBot (SQLite file, real sender, org sync) runs against the fake WeCom in this process. For each
job it prints the time from the job's start until the fake has received every message, the sends per
second, and at the end the process's peak memory. WeCom's per-member limits (30/min, 1000/h) are
checked: the fake drops anything over them, and the benchmark fails if it dropped a single message.

    python benchmarks/weekly_cycle.py [--members 2000] [--teams 20] [--prompt-only]
"""
from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app import KpiBot  # noqa: E402
from bot.config import parse_config  # noqa: E402
from bot.storage.db import make_engine, upgrade_database  # noqa: E402
from bot.fakes.wecom import DeliveredMessage, FakeWeCom  # noqa: E402

CORP_ID, SECRET, AGENT_ID = "wwkpibotbench0001", "bench-secret", 1000002
TOKEN, AES_KEY = "benchToken", "BenchEncodingAesKey0123456789abcdefghijklmn"
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Friday 27 November 2026 is the last workday of ISO week 48; the deadline is Monday the 30th at 10:00.
PROMPT_AT = datetime(2026, 11, 27, 16, 5, tzinfo=SHANGHAI)
REMINDER_AT = datetime(2026, 11, 30, 9, 5, tzinfo=SHANGHAI)
ESCALATION_AT = datetime(2026, 11, 30, 10, 5, tzinfo=SHANGHAI)
TARGET_SECONDS = 60.0


def populate(fake: FakeWeCom, members: int, teams: int) -> None:
    """A department of `teams` teams; each team's first member leads it, the rest report to them."""
    fake.add_department(2, "社群运营部", parentid=1)
    per_team = members // teams
    for team in range(teams):
        department = 100 + team
        leader = f"lead{team:03d}"
        fake.add_department(department, f"社群{team + 1}组", parentid=2, leaders=(leader,))
        fake.add_user(leader, f"组长{team + 1:03d}", departments=(department,), main_department=department,
                      leader_in=(department,), position="组长")
        for index in range(per_team - 1):
            userid = f"m{team:03d}{index:04d}"
            fake.add_user(userid, f"成员{team + 1:03d}-{index + 1:04d}", departments=(department,),
                          main_department=department, direct_leader=(leader,), position="社群运营专员")


@dataclass
class Phase:
    name: str
    messages: int
    job_seconds: float
    delivered_seconds: float
    first_to_last_seconds: float

    @property
    def sends_per_second(self) -> float:
        return self.messages / self.delivered_seconds if self.delivered_seconds else 0.0


class DeliveryCounter:
    """Counts deliveries whose content contains a marker, remembering the first and last arrival."""

    def __init__(self, fake: FakeWeCom) -> None:
        self.lock = threading.Lock()
        self.marker = ""
        self.count = 0
        self.wanted = 0
        self.first = self.last = 0.0
        self.done = threading.Event()
        fake.subscribe(self.on_delivery)

    def expect(self, marker: str, wanted: int) -> None:
        with self.lock:
            self.marker, self.count, self.wanted = marker, 0, wanted
            self.first = self.last = 0.0
            self.done.clear()

    def on_delivery(self, message: DeliveredMessage) -> None:
        with self.lock:
            if not self.marker or self.marker not in (message.content or ""):
                return
            now = time.perf_counter()
            self.first = self.first or now
            self.last = now
            self.count += 1
            if self.count >= self.wanted:
                self.done.set()


def run_phase(bot: KpiBot, counter: DeliveryCounter, name: str, job_id: str, at: datetime, marker: str,
              wanted: int) -> Phase:
    counter.expect(marker, wanted)
    started = time.perf_counter()
    result = bot.job_runner().run(job_id, at)
    job_done = time.perf_counter()
    if not result.ran:
        raise SystemExit(f"{job_id} did not run: {result.detail}")
    if not counter.done.wait(timeout=10 * TARGET_SECONDS):
        raise SystemExit(f"{name}: only {counter.count} of {wanted} messages arrived")
    return Phase(name, wanted, job_done - started, counter.last - started, counter.last - counter.first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--teams", type=int, default=20)
    parser.add_argument("--prompt-only", action="store_true", help="only the weekly prompt")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    fake = FakeWeCom(corp_id=CORP_ID, corp_secret=SECRET, agent_id=AGENT_ID)
    populate(fake, args.members, args.teams)
    fake.start()
    members = args.teams * (args.members // args.teams)
    with tempfile.TemporaryDirectory(prefix="kpibot-bench-") as workdir:
        url = f"sqlite:///{Path(workdir) / 'kpibot.db'}"
        config = parse_config({
            "wecom": {"corp_id": CORP_ID, "agent_id": AGENT_ID, "secret": SECRET, "token": TOKEN,
                      "encoding_aes_key": AES_KEY, "api_base_url": fake.base_url},
            "database": {"url": url},
            "org": {"departments": [1]},
        }, environ={})
        engine = make_engine(url)
        upgrade_database(engine)
        bot = KpiBot(config, engine=engine)
        started = time.perf_counter()
        report = bot.sync_org()
        sync_seconds = time.perf_counter() - started
        bot.start(scheduler=False, sync_org_now=False)
        counter = DeliveryCounter(fake)
        try:
            phases = [run_phase(bot, counter, "weekly prompt", "weekly_prompt", PROMPT_AT, "的周报时间到了", members)]
            if not args.prompt_only:
                phases.append(run_phase(bot, counter, "reminder", "weekly_reminder", REMINDER_AT, "还没有提交",
                                        members))
                phases.append(run_phase(bot, counter, "escalation", "weekly_escalation", ESCALATION_AT, "周报汇总",
                                        args.teams))  # one per team leader
        finally:
            bot.stop()
            fake.stop()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    per_member = {}
    for message in fake.delivered():
        per_member[message.touser] = per_member.get(message.touser, 0) + 1

    print(f"org sync: {report.members} members, {report.departments} departments in {sync_seconds:.2f} s")
    print(f"{'phase':<15}{'messages':>10}{'job (enqueue)':>16}{'all delivered':>16}{'sends/s':>10}")
    for phase in phases:
        print(f"{phase.name:<15}{phase.messages:>10}{phase.job_seconds:>14.2f} s{phase.delivered_seconds:>14.2f} s"
              f"{phase.sends_per_second:>10.0f}")
    print(f"peak memory (max RSS, whole process incl. the fake): {peak_mib:.0f} MiB")
    print(f"dropped by the per-member limits: {len(fake.dropped())}; most messages to one member: "
          f"{max(per_member.values())}")
    prompt = phases[0]
    verdict = "OK" if prompt.delivered_seconds < TARGET_SECONDS and not fake.dropped() else "TOO SLOW"
    print(f"weekly prompt to {prompt.messages} members delivered in {prompt.delivered_seconds:.2f} s "
          f"(target < {TARGET_SECONDS:.0f} s): {verdict}")
    if verdict != "OK":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
