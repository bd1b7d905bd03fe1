"""Benchmark the WeCom callback: kpibot against a bare verify-decrypt-answer Flask app, same server, same threads.

Prints, for each server: closed-loop throughput with 32 concurrent senders, and open-loop ack
latency at a fixed rate; for kpibot also the end-to-end latency from the callback to the reply
reaching the fake WeCom's message/send. Both servers run as separate processes (waitress, 8 threads);
this process plays WeCom (the fake API and the callback sender).

    python benchmarks/callback.py [--closed-seconds 10] [--rate 100] [--open-seconds 30]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.sandbox import demo_org  # noqa: E402
from bot.fakes.wecom import DeliveredMessage, FakeWeCom  # noqa: E402
from bot.fakes.callbacks import CallbackDelivery, CallbackSender  # noqa: E402

CORP_ID, SECRET, AGENT_ID = "wwkpibotbench0001", "bench-secret", 1000002
TOKEN, AES_KEY = "benchToken", "BenchEncodingAesKey0123456789abcdefghijklmn"
THREADS = 8
BENCH_USERS = 600
LABEL = re.compile(r"/o\d+")

REFERENCE_APP = """
import sys
from flask import Flask, request
from waitress import serve
from wechatpy.enterprise.crypto import WeChatCrypto
crypto = WeChatCrypto({token!r}, {key!r}, {corp!r})
app = Flask("reference")
@app.post("/wecom/callback")
def callback():
    a = request.args
    crypto.decrypt_message(request.get_data(), a["msg_signature"], a["timestamp"], a["nonce"])
    return ""
print("serving", flush=True)
serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads={threads}, ident="reference")
"""


def free_port() -> int:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_banner(process: subprocess.Popen[bytes], marker: bytes) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if marker in line:
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()  # type: ignore[union-attr]
            return
    raise SystemExit(f"server exited early with {process.wait()}")


def start_reference(port: int) -> subprocess.Popen[bytes]:
    code = REFERENCE_APP.format(token=TOKEN, key=AES_KEY, corp=CORP_ID, threads=THREADS)
    process = subprocess.Popen([sys.executable, "-c", code, str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_for_banner(process, b"serving")
    return process


def start_kpibot(port: int, fake: FakeWeCom, workdir: Path, server_extra: str = "") -> subprocess.Popen[bytes]:
    config = workdir / "config.toml"
    config.write_text(f"""
[wecom]
corp_id = "{CORP_ID}"
agent_id = {AGENT_ID}
secret = "{SECRET}"
token = "{TOKEN}"
encoding_aes_key = "{AES_KEY}"
api_base_url = "{fake.base_url}"

[database]
url = "sqlite:///{workdir / 'kpibot.db'}"

[server]
host = "127.0.0.1"
port = {port}
threads = {THREADS}
{server_extra}

[org]
admins = ["zhoumin"]
""", encoding="utf-8")
    subprocess.run([sys.executable, "-m", "bot.cli.main", "--config", str(config), "db", "upgrade"], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL)
    process = subprocess.Popen([sys.executable, "-m", "bot.cli.main", "--config", str(config), "serve", "--no-scheduler"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wait_for_banner(process, b"/wecom/callback")
    return process


@dataclass
class Load:
    sender: CallbackSender
    counter: int = 0
    lock: threading.Lock = threading.Lock()

    def next_delivery(self, tag: str) -> tuple[str, CallbackDelivery]:
        with self.lock:
            self.counter += 1
            number = self.counter
        userid = f"bench{number % BENCH_USERS:04d}"
        label = f"/{tag}{number}"
        return label, self.sender.prepare_text(userid, label)


def closed_loop(url: str, seconds: float, concurrency: int = 32) -> float:
    sender = CallbackSender(url, token=TOKEN, encoding_aes_key=AES_KEY, corp_id=CORP_ID, agent_id=AGENT_ID)
    load = Load(sender)
    deliveries = [load.next_delivery("c")[1] for _ in range(int(seconds * 1500))]  # sealed before timing
    index = iter(range(len(deliveries)))
    lock = threading.Lock()
    done = [0] * concurrency
    deadline = time.perf_counter() + seconds

    def worker(slot: int) -> None:
        while time.perf_counter() < deadline:
            with lock:
                position = next(index, None)
            if position is None:
                return
            response = sender.send(deliveries[position])
            if response.status != 200:
                raise SystemExit(f"callback answered {response.status}")
            done[slot] += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, range(concurrency)))
    return sum(done) / (time.perf_counter() - started)


def open_loop(url: str, rate: float, seconds: float, fake: FakeWeCom | None) -> tuple[list[float], list[float]]:
    """Send at a fixed rate regardless of answers; returns ack latencies and (with the fake) end-to-end ones."""
    sender = CallbackSender(url, token=TOKEN, encoding_aes_key=AES_KEY, corp_id=CORP_ID, agent_id=AGENT_ID)
    load = Load(sender)
    total = int(rate * seconds)
    planned = [load.next_delivery("o") for _ in range(total)]
    sent_at: dict[str, float] = {}
    arrived: dict[str, float] = {}
    acks: list[float] = []
    all_arrived = threading.Event()

    def on_delivery(message: DeliveredMessage) -> None:
        for label in LABEL.findall(message.payload.get("content", "")):
            if label in sent_at and label not in arrived:
                arrived[label] = time.perf_counter()
                if len(arrived) == total:
                    all_arrived.set()
                return

    unsubscribe = fake.subscribe(on_delivery) if fake else None

    def fire(item: tuple[str, CallbackDelivery]) -> None:
        label, delivery = item
        sent_at[label] = time.perf_counter()
        response = sender.send(delivery)
        acks.append(response.elapsed)

    start = time.perf_counter() + 0.2
    with ThreadPoolExecutor(64) as pool:
        for number, item in enumerate(planned):
            delay = start + number / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(fire, item)
    if fake is not None:
        all_arrived.wait(timeout=60)
        unsubscribe()  # type: ignore[misc]
    end_to_end = [arrived[label] - sent_at[label] for label in arrived]
    return acks, end_to_end


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def ms(value: float) -> str:
    return f"{value * 1000:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--closed-seconds", type=float, default=10)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--open-seconds", type=float, default=30)
    args = parser.parse_args()

    fake = FakeWeCom(corp_id=CORP_ID, corp_secret=SECRET, agent_id=AGENT_ID)
    demo_org.populate(fake)
    for number in range(BENCH_USERS):
        fake.add_user(f"bench{number:04d}", f"压测{number:04d}", departments=(3,), main_department=3)
    fake.start()
    workdir = Path(tempfile.mkdtemp(prefix="kpibot-bench-"))
    reference_port, kpibot_port = free_port(), free_port()
    reference = start_reference(reference_port)
    kpibot = start_kpibot(kpibot_port, fake, workdir)
    reference_url = f"http://127.0.0.1:{reference_port}/wecom/callback"
    kpibot_url = f"http://127.0.0.1:{kpibot_port}/wecom/callback"
    try:
        print(f"machine: {os.cpu_count()} cores; servers: waitress, {THREADS} threads each; kpibot on SQLite (WAL)")
        print(f"\nclosed loop, 32 concurrent senders, {args.closed_seconds:.0f} s each")
        reference_rps = closed_loop(reference_url, args.closed_seconds)
        kpibot_rps = closed_loop(kpibot_url, args.closed_seconds)
        print(f"  reference: {reference_rps:8.1f} callbacks/s")
        print(f"  kpibot:    {kpibot_rps:8.1f} callbacks/s")
        print(f"  ratio kpibot/reference: {kpibot_rps / reference_rps:.2f} (target >= 0.5)")

        # let kpibot drain the closed loop's replies before measuring latency
        drain_deadline = time.time() + 120
        while time.time() < drain_deadline:
            import requests
            health = requests.get(f"http://127.0.0.1:{kpibot_port}/healthz", timeout=5).json()
            if health["inbox_pending"] == 0 and health["outbox_pending"] == 0:
                break
            time.sleep(0.5)
        print(f"\nopen loop, {args.rate:.0f} callbacks/s for {args.open_seconds:.0f} s")
        reference_acks, _ = open_loop(reference_url, args.rate, args.open_seconds, None)
        kpibot_acks, end_to_end = open_loop(kpibot_url, args.rate, args.open_seconds, fake)
        for name, acks in (("reference", reference_acks), ("kpibot", kpibot_acks)):
            print(f"  {name:9s} ack latency  p50 {ms(percentile(acks, 0.5))}  p99 {ms(percentile(acks, 0.99))}"
                  f"  max {ms(max(acks))}  (n={len(acks)})")
        expected = int(args.rate * args.open_seconds)
        print(f"  kpibot end to end (callback -> message/send): p50 {ms(percentile(end_to_end, 0.5))}"
              f"  p99 {ms(percentile(end_to_end, 0.99))}  max {ms(max(end_to_end))}"
              f"  replies {len(end_to_end)}/{expected}")
        print("  targets: kpibot ack p99 < 50 ms; end to end p50 < 100 ms, p99 < 500 ms")
        print(f"  mean ack: reference {ms(statistics.mean(reference_acks))}, kpibot {ms(statistics.mean(kpibot_acks))}")
    finally:
        for process in (reference, kpibot):
            process.terminate()
            process.wait(timeout=20)
        fake.stop()


if __name__ == "__main__":
    main()
