"""Who is appraised: every active member with their scheme, their team (their manager) and their department."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.appraisal.assignment import cached_scheme, department_parents, scheme_name_for
from bot.appraisal.people import Org
from bot.config import Config
from bot.storage.models import Department
from scoring import Scheme


@dataclass
class Roster:
    """The appraised members (every active member) with their scheme, team (their manager) and department
    (the first-level department under the company their main department belongs to)."""

    org: Org
    scheme_names: dict[str, str]
    departments: dict[str, str | None]
    department_names: dict[str, str]
    main_departments: dict[str, str | None] = field(default_factory=dict)  # the member's own (team's) department

    @classmethod
    def load(cls, session: Session, config: Config) -> Roster:
        org = Org.load(session, config)
        parents = department_parents(session)
        names = {str(d.id): d.name for d in session.scalars(select(Department))}
        scheme_names: dict[str, str] = {}
        departments: dict[str, str | None] = {}
        mains: dict[str, str | None] = {}
        for userid, member in org.members.items():
            department_ids = list(member.department_ids or ())
            scheme_names[userid] = scheme_name_for(userid, department_ids, parents, config.appraisal)
            main = member.main_department or (department_ids[0] if department_ids else None)
            departments[userid] = str(_first_level(main, parents)) if main is not None else None
            mains[userid] = str(main) if main is not None else None
        return cls(org, scheme_names, departments, names, mains)

    @property
    def userids(self) -> list[str]:
        return list(self.org.members)

    @property
    def admins(self) -> list[str]:
        return sorted(self.org.admins)

    def scheme(self, userid: str) -> Scheme:
        return cached_scheme(self.scheme_names[userid])

    def team(self, userid: str) -> str | None:
        return self.org.manager_of(userid)

    def managers_of(self, userids: Iterable[str]) -> list[str]:
        """The managers who rate any of these members, each once."""
        return sorted({manager for manager in (self.team(u) for u in userids) if manager})

    def rated_by(self, manager: str) -> list[str]:
        """The manager's direct reports, as far as the manager may see them: the rows of a message about the team."""
        return self.org.only_visible(manager, self.org.direct_team(manager))

    def department_name(self, department: str | None) -> str:
        return self.department_names.get(department or "", department or "")


def _first_level(department: int, parents: Mapping[int, int | None]) -> int:
    chain = [department]
    while parents.get(chain[-1]) not in (None, 0) and chain[-1] in parents and len(chain) < 64:
        chain.append(parents[chain[-1]])  # type: ignore[arg-type]
    return chain[-2] if len(chain) >= 2 else chain[-1]
