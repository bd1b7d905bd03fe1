"""Benchmark of the scoring engine: 1,000 / 10,000 / 100,000 members × 10 indicators, a month and a year.

Each case runs in its own subprocess so peak memory (max RSS, interpreter included) belongs to that case
alone. Targets on the reference machine: 10,000 members' month < 1 s, their year < 5 s, peak < 300 MB,
time growing linearly with the number of members.

    .venv/bin/python benchmarks/scoring_engine.py                 # every case
    .venv/bin/python benchmarks/scoring_engine.py --sizes 1000 10000 --repeat 1
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from scoring import WAIVED, MemberData, Period, compute_results, parse_scheme, validate  # noqa: E402

# 10 indicators: 7 monthly (2 with guardrails on 2 companion metrics), 1 quarterly, 2 yearly.
BENCH_SCHEME = """
[scheme]
key = "bench"
name = "benchmark"

[[metrics]]
key = "group_quit_rate"
[[metrics]]
key = "group_speaking_rate"

[[indicators]]
key = "growth"
name = "粉丝净增长率"
dimension = "performance"
weight = 15
cycle = "month"
target = 5
rule = { type = "ratio", cap = 120 }
[[indicators.guardrails]]
metric = "group_quit_rate"
op = ">"
threshold = 15
deduct = 20
[[indicators.guardrails]]
metric = "group_speaking_rate"
op = "<"
threshold = 10
deduct = 20

[[indicators]]
key = "participation"
name = "活动参与率"
dimension = "performance"
weight = 15
cycle = "month"
target = 30
rule = { type = "ratio" }

[[indicators]]
key = "content"
name = "内容生产量"
dimension = "performance"
weight = 15
cycle = "month"
target = 20
rule = { type = "ratio" }

[[indicators]]
key = "response"
name = "问题响应时效"
dimension = "performance"
weight = 10
cycle = "month"
direction = "lower"
rule = { type = "bands", points = [[5, 100], [15, 90], [30, 75], [60, 50], [120, 0]] }

[[indicators]]
key = "sales"
name = "社群引导销售额"
dimension = "performance"
weight = 20
cycle = "quarter"
rule = { type = "ratio" }

[[indicators]]
key = "attitude"
name = "工作态度"
dimension = "behavior"
weight = 5
cycle = "month"
rule = { type = "rating" }
anchors = { 1 = "a", 2 = "b", 3 = "c", 4 = "d", 5 = "e" }

[[indicators]]
key = "teamwork"
name = "团队协作"
dimension = "behavior"
weight = 5
cycle = "month"
rule = { type = "rating" }
anchors = { 1 = "a", 2 = "b", 3 = "c", 4 = "d", 5 = "e" }

[[indicators]]
key = "learning"
name = "学习成长"
dimension = "behavior"
weight = 5
cycle = "month"
rule = { type = "rating" }
anchors = { 1 = "a", 2 = "b", 3 = "c", 4 = "d", 5 = "e" }

[[indicators]]
key = "collaboration"
name = "跨部门协作评分"
dimension = "behavior"
weight = 5
cycle = "year"
rule = { type = "bands", points = [[1, 20], [5, 100]] }

[[indicators]]
key = "culture"
name = "公司文化契合度"
dimension = "behavior"
weight = 5
cycle = "year"
rule = { type = "rating" }
anchors = { 1 = "a", 2 = "b", 3 = "c", 4 = "d", 5 = "e" }
"""

SIZES = (1_000, 10_000, 100_000)
KINDS = ("month", "year")


def build_members(count: int, period: Period, seed: int = 7) -> list[MemberData]:
    """Synthetic members with every value present, 1 in 200 monthly values waived; a new Decimal per value
    (as rows read from storage would be), period and key strings shared as the storage layer would intern them."""
    rng = random.Random(seed)
    months = [str(month) for month in period.months()]
    quarters = [str(quarter) for quarter in period.quarters()]
    year = str(period.year)
    monthly_ranges = {"growth": (-2.0, 9.0), "participation": (10.0, 45.0), "content": (8.0, 30.0),
                      "response": (3.0, 140.0), "group_quit_rate": (2.0, 20.0), "group_speaking_rate": (5.0, 40.0)}
    ratings = ("attitude", "teamwork", "learning")
    keys = {(name, text): (name, text) for text in months + quarters + [year]
            for name in [*monthly_ranges, *ratings, "sales", "collaboration", "culture"]}
    members: list[MemberData] = []
    for number in range(count):
        values: dict[tuple[str, str], Decimal | object] = {}
        targets: dict[tuple[str, str], Decimal] = {}
        for month in months:
            for name, (low, high) in monthly_ranges.items():
                values[keys[(name, month)]] = Decimal(f"{rng.uniform(low, high):.1f}")
            for name in ratings:
                values[keys[(name, month)]] = Decimal(rng.randint(2, 5))
            if rng.random() < 0.005:
                values[keys[("content", month)]] = WAIVED
        for quarter in quarters:
            values[keys[("sales", quarter)]] = Decimal(rng.randint(150_000, 450_000))
            targets[keys[("sales", quarter)]] = Decimal(300_000)
        if period.kind.value == "year":
            values[keys[("collaboration", year)]] = Decimal(f"{rng.uniform(2.5, 5.0):.1f}")
            values[keys[("culture", year)]] = Decimal(rng.randint(2, 5))
        members.append(MemberData(f"m{number:06d}", f"team{number // 8:05d}", f"dept{number // 400:03d}",
                                  values, targets))
    return members


def run_case(count: int, kind: str, repeat: int) -> dict[str, float]:
    scheme = parse_scheme(BENCH_SCHEME)
    assert not [p for p in validate(scheme) if p.is_error]
    period = Period.parse("2026-11" if kind == "month" else "2026")
    started = time.perf_counter()
    members = build_members(count, period)
    build_s = time.perf_counter() - started
    timings: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        results = compute_results(scheme, period, members)
        timings.append(time.perf_counter() - started)
        assert len(results.results) == count
        del results  # the next round starts from the same heap
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    # The best of the rounds, as timeit does: other load on the machine only ever adds time.
    return {"members": count, "kind": kind, "build_s": build_s, "compute_s": min(timings),
            "worst_s": max(timings), "peak_mb": peak_kb / 1024, "values": sum(len(m.values) for m in members)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--repeat", type=int, default=3, help="rounds per case; the best is reported (default 3)")
    parser.add_argument("--case", nargs=2, metavar=("MEMBERS", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(int(args.case[0]), args.case[1], args.repeat)))
        return 0
    rows: list[dict[str, float]] = []
    for kind in KINDS:
        for size in sorted(args.sizes):
            output = subprocess.run([sys.executable, __file__, "--case", str(size), kind, "--repeat", str(args.repeat)],
                                    check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(output))
    print(f"{'period':<6} {'members':>8} {'values':>10} {'build s':>8} {'compute s':>10} {'worst s':>8} "
          f"{'µs/value':>9} {'peak MB':>8} {'growth':>7}")
    previous: dict[str, dict[str, float]] = {}
    for row in rows:
        before = previous.get(row["kind"])
        growth = ""
        if before:
            # Time ratio divided by size ratio: 1.0 is perfectly linear.
            growth = f"{(row['compute_s'] / before['compute_s']) / (row['members'] / before['members']):.2f}"
        print(f"{row['kind']:<6} {row['members']:>8,} {row['values']:>10,} {row['build_s']:>8.2f} "
              f"{row['compute_s']:>10.3f} {row['worst_s']:>8.3f} {row['compute_s'] / row['values'] * 1e6:>9.2f} "
              f"{row['peak_mb']:>8.0f} "
              f"{growth:>7}")
        previous[row["kind"]] = row
    print(f"compute s = best of {args.repeat} rounds on the same input; peak MB = max RSS of the case's process, "
          "input data included.")
    print("growth = (time ratio) / (member ratio) against the next smaller size; 1.00 is linear.")
    targets = {(10_000, "month"): 1.0, (10_000, "year"): 5.0}
    for row in rows:
        limit = targets.get((row["members"], row["kind"]))
        if limit is not None:
            verdict = "ok" if row["compute_s"] < limit and row["peak_mb"] < 300 else "MISSED"
            print(f"target 10,000 members {row['kind']}: < {limit:.0f} s and < 300 MB: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
