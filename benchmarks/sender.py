"""Benchmark the sender: one member's backlog must not delay everyone else's replies, within WeCom's limits.

One member has 1,000 queued rows (far past WeCom's 30 a minute, so most must wait); then 100 other
members each get one reply, 10 ms apart, as replies to their messages would arrive. Prints the others'
delivery latency (enqueue to the fake WeCom's message/send), what the backlog member got meanwhile, and
then a fan-out of one message to each of many members: throughput and the busiest minute, which must stay
under the configured company-wide ceiling. The fake WeCom runs in this process on loopback, wall clock.

    python benchmarks/sender.py [--backlog 1000] [--others 100] [--fanout 2000] [--timeout 60]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.wecom import outbox  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.config import parse_config  # noqa: E402
from bot.storage.db import make_engine, make_session_factory, transaction, upgrade_database  # noqa: E402
from bot.fakes.wecom import DeliveredMessage, FakeWeCom  # noqa: E402
from bot.wecom.sender import Sender  # noqa: E402
from bot.wecom.client import WeComClient  # noqa: E402

CORP_ID, SECRET, AGENT_ID = "wwkpibotbench0001", "bench-secret", 1000002


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def busiest_minute(times: list[float]) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 60:
            start += 1
        best = max(best, end - start + 1)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=1000)
    parser.add_argument("--others", type=int, default=100)
    parser.add_argument("--fanout", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    arrivals: dict[str, float] = {}
    lock = threading.Lock()

    def heard(message: DeliveredMessage) -> None:
        with lock:
            arrivals.setdefault(message.content or "", time.monotonic())

    workdir = Path(tempfile.mkdtemp(prefix="kpibot-sender-bench-"))
    fake = FakeWeCom(CORP_ID, SECRET, AGENT_ID)
    members = ["backlog", *(f"m{index:04d}" for index in range(max(args.others, args.fanout)))]
    for userid in members:
        fake.add_user(userid, userid)
    fake.start()
    fake.subscribe(heard)
    config = parse_config({
        "wecom": {"corp_id": CORP_ID, "agent_id": AGENT_ID, "secret": SECRET, "token": "benchToken",
                  "encoding_aes_key": "BenchEncodingAesKey0123456789abcdefghijklmn", "api_base_url": fake.base_url},
        "database": {"url": f"sqlite:///{workdir / 'kpibot.db'}"},
    }, environ={})
    engine = make_engine(config.database.url.reveal())
    upgrade_database(engine)
    sessions = make_session_factory(engine)
    clock = SystemClock()
    sender = Sender(config, sessions, WeComClient(config.wecom, sessions, clock), clock)

    with transaction(sessions) as session:
        for index in range(args.backlog):
            outbox.enqueue(session, f"backlog:{index}", outbox.Outgoing.text("backlog", f"backlog {index}"), clock.now())
    sender.start()
    time.sleep(0.2)  # the backlog member's first minute goes out; the rest wait behind WeCom's limit

    enqueued: dict[str, float] = {}
    started = time.monotonic()
    for index in range(args.others):
        content = f"reply {index}"
        with transaction(sessions) as session:
            outbox.enqueue(session, f"reply:{index}", outbox.Outgoing.text(f"m{index:04d}", content), clock.now())
        enqueued[content] = time.monotonic()
        sender.wake()
        time.sleep(0.01)
    deadline = started + args.timeout
    while time.monotonic() < deadline:
        with lock:
            if all(content in arrivals for content in enqueued):
                break
        time.sleep(0.01)
    finished = time.monotonic()
    with lock:
        latencies = [(arrivals[c] - enqueued[c]) * 1000 for c in enqueued if c in arrivals]
    backlog_sent = len(fake.delivered("backlog"))
    print(f"others' replies: {len(latencies)}/{args.others} delivered behind a backlog of {args.backlog} rows")
    if latencies:
        print(f"  latency ms: p50 {statistics.median(latencies):.1f}  p99 {percentile(latencies, 0.99):.1f}  "
              f"max {max(latencies):.1f}")
    elapsed = finished - started
    print(f"  meanwhile the backlog member got {backlog_sent} (limit {config.sender.per_member_per_minute}/min); "
          f"{len(fake.delivered())} deliveries in {elapsed:.2f} s; dropped by WeCom: {len(fake.dropped())}")

    # Fan-out: one message to each of many members at once, as a month-end publication does.
    fake.reset_records()
    fan_started = time.monotonic()
    with transaction(sessions) as session:
        for index in range(args.fanout):
            outbox.enqueue(session, f"fan:{index}", outbox.Outgoing.text(f"m{index:04d}", f"fan {index}"), clock.now())
    sender.wake()
    deadline = fan_started + args.timeout
    while time.monotonic() < deadline and len(fake.delivered()) < args.fanout:
        time.sleep(0.02)
    fan_elapsed = time.monotonic() - fan_started
    calls = fake.calls("message/send")
    refused = sum(1 for call in calls if call.path == "message/send") - len(fake.delivered())
    first = calls[0].at if calls else None
    offsets = [(call.at - first).total_seconds() for call in calls] if first else []
    print(f"fan-out: {len(fake.delivered())}/{args.fanout} delivered in {fan_elapsed:.2f} s = "
          f"{len(fake.delivered()) / fan_elapsed:.0f} sends/s; busiest 60 s: {busiest_minute(offsets)} calls "
          f"(ceiling {config.sender.company_calls_per_minute}/min, WeCom 10,000); calls not delivered: {refused}")
    sender.stop()
    fake.stop()
    engine.dispose()


if __name__ == "__main__":
    main()
