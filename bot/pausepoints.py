"""Test-only pause points: a process told so by KPIBOT_TEST_PAUSE_AT stops for good at a named point, to be killed there.

Crash tests start `kpibot serve` or `kpibot jobs run` with KPIBOT_TEST_PAUSE_AT set to a point's name, or to
`name#N` for the N-th time a point of that name is reached (a name ending in `*` matches every point it begins);
or to `file:PATH`, a file holding such a name that the test may write and empty while the process runs (so it
can start processes before it knows which of them will hold the scheduler lease).
On reaching it the process prints `KPIBOT_TEST_PAUSED <point>` on stdout and the thread that reached it waits
forever (other threads go on, as in a process that is merely slow), until the test sends SIGKILL. Unset, as in
production, `reached` only counts nothing and returns at once.

The points: `schedule.seen:<job>` (a fire time noticed, nothing written), `schedule.planned:<job>` (the planned run
with its due time is committed: the jitter wait),
`outbox.enqueue:<key>` (a message queued in the open transaction) and `results.<stage>` (a chunk of the month
close or the publication committed; stages save, drafts, publish, summaries); on the message path
`callback.stored` (the update stored, WeCom not yet answered), `inbox.claimed` (a row claimed, its handler not run),
`inbox.handled` (the handler ran, its transaction not committed), `sender.claimed` (a pass's rows claimed, none sent)
and `sender.answered` (WeCom answered a send, the outcome not recorded).
"""
from __future__ import annotations

import os
import sys
import threading

PAUSE_VARIABLE = "KPIBOT_TEST_PAUSE_AT"

_lock = threading.Lock()
_hits = 0


def _matches(pattern: str, point: str) -> bool:
    return point.startswith(pattern[:-1]) if pattern.endswith("*") else point == pattern


def reached(point: str) -> None:
    """Pause here for good if the test asked for this point (and this is the asked-for time it is reached)."""
    wanted = os.environ.get(PAUSE_VARIABLE)
    if wanted and wanted.startswith("file:"):
        try:
            with open(wanted[len("file:"):], encoding="utf-8") as handle:
                wanted = handle.read().strip()
        except FileNotFoundError:
            return
    if not wanted:
        return
    pattern, _, nth = wanted.partition("#")
    if not _matches(pattern, point):
        return
    global _hits
    with _lock:
        _hits += 1
        if _hits != (int(nth) if nth else 1):
            return
    print(f"KPIBOT_TEST_PAUSED {point}", file=sys.stdout, flush=True)
    threading.Event().wait()
