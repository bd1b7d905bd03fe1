"""The sample organisation the built-in fake WeCom serves: a community-operations department of eleven."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoPerson:
    userid: str
    name: str
    department: int
    position: str
    direct_leader: tuple[str, ...] = ()
    leads: tuple[int, ...] = ()
    scheme: str = "seed-executor"


DEMO_DEPARTMENTS: tuple[tuple[int, str, int], ...] = (
    (1, "星河科技", 0),
    (2, "社群运营部", 1),
    (3, "社群一组", 2),
    (4, "社群二组", 2),
)

DEMO_PEOPLE: tuple[DemoPerson, ...] = (
    DemoPerson("zhoumin", "周敏", 2, "社群运营总监", leads=(2,), scheme="seed-manager"),
    DemoPerson("lina", "李娜", 3, "社群一组组长", direct_leader=("zhoumin",), leads=(3,), scheme="seed-manager"),
    DemoPerson("wangqiang", "王强", 4, "社群二组组长", direct_leader=("zhoumin",), leads=(4,), scheme="seed-manager"),
    DemoPerson("zhangwei", "张伟", 3, "社群运营专员", direct_leader=("lina",)),
    DemoPerson("liuyang", "刘洋", 3, "社群运营专员", direct_leader=("lina",)),
    DemoPerson("chenjing", "陈静", 3, "内容运营专员"),
    DemoPerson("yangfan", "杨帆", 3, "用户增长专员"),
    DemoPerson("zhaolei", "赵磊", 4, "社群运营专员", direct_leader=("wangqiang",)),
    DemoPerson("huangli", "黄丽", 4, "活动运营专员", direct_leader=("wangqiang",)),
    DemoPerson("wuhao", "吴昊", 4, "客服专员"),
    DemoPerson("sunyue", "孙悦", 4, "社群运营专员"),
)

DEMO_ADMINS: tuple[str, ...] = ("zhoumin",)


def populate(fake: object) -> None:
    """Load the sample organisation into a FakeWeCom."""
    leaders: dict[int, list[str]] = {}
    for person in DEMO_PEOPLE:
        for department in person.leads:
            leaders.setdefault(department, []).append(person.userid)
    for department_id, name, parent in DEMO_DEPARTMENTS:
        fake.add_department(department_id, name, parentid=parent, leaders=tuple(leaders.get(department_id, ())))  # type: ignore[attr-defined]
    for person in DEMO_PEOPLE:
        fake.add_user(person.userid, person.name, departments=(person.department,),  # type: ignore[attr-defined]
                      main_department=person.department, direct_leader=person.direct_leader,
                      leader_in=person.leads, position=person.position)
