"""The crash campaign (benchmarks/crash_campaign.py) at a small count: real processes killed on the message path and
inside the month close and the publication lose nothing, show nothing twice and publish every result once."""
from __future__ import annotations

from pathlib import Path

from benchmarks.crash_campaign import failed, plan, report, run_campaign

KILLS, INSIDE, SEED = 6, 3, 12


def test_a_short_campaign_covers_both_sides_of_the_kill() -> None:
    chosen = plan(KILLS, INSIDE, SEED)
    families = {family for family, _, _ in chosen}
    assert families == {"message", "month_close", "publish"}
    assert sum(1 for family, _, _ in chosen if family != "message") == INSIDE


# SQLite only: each kill copies one prepared database file instead of seeding a month again, and the killed
# process and its successor share that file, so the campaign has no server-backend form.
def test_processes_killed_at_random_points_lose_nothing_and_publish_once(tmp_path: Path) -> None:
    outcomes = run_campaign(KILLS, INSIDE, SEED, tmp_path, echo=False)
    figures = report(outcomes)
    assert not failed(outcomes), figures + "\n" + "\n".join(o.problem for o in outcomes if o.problem)
    assert figures.splitlines()[-1] == (f"kills {KILLS} (close/publish {INSIDE}): lost 0, shown twice 0, "
                                        "results published once: yes")
