"""Slowloris against the callback server while signed callbacks keep coming: their latency during the attack.

The attacker holds N connections on loopback (default 500): most send a request line and then one
header line every few seconds, never finishing; the rest announce a 1 GiB body and send 100 bytes.
Whatever the server closes, the attacker reopens at once. Meanwhile this process plays WeCom and
sends signed /help callbacks at a fixed rate and records how long each takes to be answered.

It runs twice: against kpibot with waitress's old defaults (connection_limit 100, channel_timeout
120 s, no request deadline, 1 GiB body limit) and with kpibot's edge settings (config.example.toml).
Bounded in connections, rate and time; loopback only.

    python benchmarks/slowloris.py [--connections 500] [--seconds 30] [--rate 10] [--connection-limit N]
"""
from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import requests  # noqa: E402

from bot.sandbox import demo_org  # noqa: E402
from bot.fakes.wecom import FakeWeCom  # noqa: E402
from bot.fakes.callbacks import CallbackSender  # noqa: E402
from callback import AES_KEY, AGENT_ID, CORP_ID, SECRET, TOKEN, free_port, percentile, start_kpibot  # noqa: E402

OLD_DEFAULTS = """connection_limit = 100
channel_timeout = 120
request_timeout = 3600
max_body_bytes = 10485760"""
CALLBACK_TIMEOUT = 6.0  # WeCom gives up after 5 s


class Attacker:
    """Keeps `count` abusive connections open to 127.0.0.1:port until stopped."""

    def __init__(self, port: int, count: int, trickle_every: float = 3.0) -> None:
        self.port = port
        self.count = count
        self.trickle_every = trickle_every
        self.sockets: list[tuple[socket.socket, bool]] = []
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, big_body: bool) -> socket.socket:
        conn = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        conn.setblocking(False)
        if big_body:
            head = (b"POST /wecom/callback?msg_signature=x&timestamp=1&nonce=1 HTTP/1.1\r\nHost: kpibot\r\n"
                    b"Content-Length: 1073741824\r\n\r\n")
            conn.send(head + b"A" * 100)
        else:
            conn.send(b"POST /wecom/callback?msg_signature=x&timestamp=1&nonce=1 HTTP/1.1\r\nHost: kpibot\r\n")
        return conn

    def start(self) -> None:
        for number in range(self.count):
            big_body = number % 5 == 0  # one in five announces a huge body
            self.sockets.append((self._open(big_body), big_body))
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.trickle_every):
            for index, (conn, big_body) in enumerate(self.sockets):
                if self._stop.is_set():
                    return
                closed = False
                try:
                    conn.recv(4096)
                    closed = True  # any answer (a 413) or EOF: the server is done with it
                except BlockingIOError:
                    pass
                except OSError:
                    closed = True
                if not closed:
                    try:
                        conn.send(b"X-Slow: 1\r\n" if not big_body else b"A" * 100)
                        continue
                    except OSError:
                        closed = True
                conn.close()
                self.reopened += 1
                try:
                    self.sockets[index] = (self._open(big_body), big_body)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for conn, _ in self.sockets:
            conn.close()


def callbacks(url: str, rate: float, seconds: float) -> tuple[list[float], int]:
    """Signed /help callbacks at `rate` per second; each one's answer time (a failure counts as the timeout)."""
    sender = CallbackSender(url, token=TOKEN, encoding_aes_key=AES_KEY, corp_id=CORP_ID, agent_id=AGENT_ID,
                            timeout=CALLBACK_TIMEOUT)
    total = int(rate * seconds)
    deliveries = [sender.prepare_text(f"bench{number % 50:04d}", "/help") for number in range(total)]
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()

    def fire(index: int) -> None:
        started = time.perf_counter()
        try:
            ok = sender.send(deliveries[index]).status == 200
        except requests.RequestException:
            ok = False
        with lock:
            latencies.append(time.perf_counter() - started if ok else CALLBACK_TIMEOUT)
            failures[0] += 0 if ok else 1

    start = time.perf_counter()
    with ThreadPoolExecutor(64) as pool:
        for index in range(total):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(fire, index)
    return latencies, failures[0]


def report(label: str, latencies: list[float], failures: int) -> None:
    print(f"  {label:28s} p50 {percentile(latencies, 0.5) * 1000:7.1f} ms  p99 {percentile(latencies, 0.99) * 1000:7.1f} ms"
          f"  max {max(latencies) * 1000:7.1f} ms  unanswered {failures}/{len(latencies)}")


def run(name: str, server_extra: str, fake: FakeWeCom, args: argparse.Namespace) -> None:
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="kpibot-slowloris-"))
    server = start_kpibot(port, fake, workdir, server_extra)
    url = f"http://127.0.0.1:{port}/wecom/callback"
    try:
        print(f"\n{name}")
        report("no attack", *callbacks(url, args.rate, 5))
        attacker = Attacker(port, args.connections)
        attacker.start()
        time.sleep(1)
        latencies, failures = callbacks(url, args.rate, args.seconds)
        reopened = attacker.reopened
        attacker.stop()
        report(f"{args.connections} slowloris connections", latencies, failures)
        print(f"  attack connections the server dropped (and the attacker reopened): {reopened}")
        try:
            metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10, proxies={"http": "", "https": ""})
            refused = [line for line in metrics.text.splitlines() if line.startswith("kpibot_requests_refused_total")]
            print("  server's refusal counts: " + ("; ".join(refused) if refused else "(none)"))
        except requests.RequestException:
            pass
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=10)
    parser.add_argument("--skip-old", action="store_true", help="only the edge settings")
    parser.add_argument("--connection-limit", type=int, default=None,
                        help="the edge run's [server] connection_limit (default: config.example.toml's)")
    args = parser.parse_args()
    if not 1 <= args.connections <= 2000 or not 1 <= args.seconds <= 300 or not 0 < args.rate <= 200:
        raise SystemExit("bounded campaign: connections 1..2000, seconds 1..300, rate 0..200")
    fake = FakeWeCom(corp_id=CORP_ID, corp_secret=SECRET, agent_id=AGENT_ID)
    demo_org.populate(fake)
    for number in range(50):
        fake.add_user(f"bench{number:04d}", f"压测{number:04d}", departments=(3,), main_department=3)
    fake.start()
    try:
        print(f"slowloris: {args.connections} connections (4/5 trickle headers every 3 s, 1/5 announce 1 GiB),"
              f" signed /help callbacks at {args.rate:.0f}/s for {args.seconds:.0f} s, answer timeout {CALLBACK_TIMEOUT:.0f} s")
        if not args.skip_old:
            run("waitress's old defaults (connection_limit 100, channel_timeout 120 s, no deadline)", OLD_DEFAULTS,
                fake, args)
        limit = args.connection_limit
        run(f"kpibot's edge (connection_limit {limit or 1000}, channel_timeout 30 s, request_timeout 10 s)",
            f"connection_limit = {limit}" if limit else "", fake, args)
        print("\ntarget: callback p99 < 1 s during the attack, 0 unanswered")
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
