"""Which appraisal scheme applies to a member, and which behaviour indicators their monthly self-review covers."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import AppraisalConfig
from bot.storage.models import Department
from bot.config.schemes import load_scheme
from scoring import Cycle, Dimension, Indicator, Scheme


@lru_cache(maxsize=64)
def cached_scheme(name: str) -> Scheme:
    """Schemes are data read once per process (config validation already proved they load)."""
    return load_scheme(name)


def scheme_name_for(userid: str, department_ids: Iterable[int], parents: Mapping[int, int | None],
                    config: AppraisalConfig) -> str:
    """The scheme assigned to this userid; else to the nearest of the member's departments or their
    ancestors (nearest wins, then the first listed assignment); else the default scheme."""
    for assignment in config.assign:
        if userid in assignment.userids:
            return assignment.scheme
    best: tuple[int, int, str] | None = None  # (distance up the tree, position in config, scheme)
    for department in department_ids:
        distance, current, seen = 0, department, set()
        while current is not None and current not in seen:
            seen.add(current)
            for position, assignment in enumerate(config.assign):
                if current in assignment.departments:
                    candidate = (distance, position, assignment.scheme)
                    if best is None or candidate < best:
                        best = candidate
            current = parents.get(current)
            distance += 1
    return best[2] if best is not None else config.default_scheme


def department_parents(session: Session) -> dict[int, int | None]:
    return {department.id: department.parent_id for department in session.scalars(select(Department))}


def scheme_for(session: Session, userid: str, department_ids: Iterable[int], config: AppraisalConfig) -> Scheme:
    return cached_scheme(scheme_name_for(userid, department_ids, department_parents(session), config))


def cycles_due(month: int) -> frozenset[Cycle]:
    """Monthly indicators every month, quarterly ones in a quarter's last month, annual ones in December."""
    cycles = {Cycle.MONTH}
    if month % 3 == 0:
        cycles.add(Cycle.QUARTER)
    if month == 12:
        cycles.add(Cycle.YEAR)
    return frozenset(cycles)


def behaviour_indicators_due(scheme: Scheme, month: int) -> tuple[Indicator, ...]:
    """The behaviour indicators a member rates themselves on in the self-review of that month."""
    due = cycles_due(month)
    return tuple(indicator for indicator in scheme.indicators
                 if indicator.dimension == Dimension.BEHAVIOR and indicator.cycle in due)
