"""The layers hold: pyproject's import contracts, no import cycle, function-level imports that say why, small modules."""
from __future__ import annotations

import ast
import io
import tokenize
from copy import deepcopy
from functools import lru_cache
from pathlib import Path

import grimp
import pytest
from importlinter.application.use_cases import read_user_options
from importlinter.configuration import configure
from importlinter.contracts.acyclic_siblings import AcyclicSiblingsContract
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.layers import LayersContract
from importlinter.domain.contract import Contract

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "handlers", "scoring")
MAX_LINES = 500
# The fakes are a whole pretend WeCom, and the models one table after another: long by nature, not by mixing.
LONG_BY_NATURE = {"bot/storage/models.py"}
LONG_BY_NATURE_FOLDERS = ("bot/fakes/",)
CONTRACT_TYPES: dict[str, type[Contract]] = {
    "forbidden": ForbiddenContract, "layers": LayersContract, "acyclic_siblings": AcyclicSiblingsContract}

@lru_cache(maxsize=1)
def import_graph() -> grimp.ImportGraph:
    """Every import of the app, function-level and type-only ones included."""
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def contracts() -> list[Contract]:
    configure()  # import-linter's settings, as lint-imports sets them up
    options = read_user_options(str(ROOT / "pyproject.toml"))
    return [CONTRACT_TYPES[raw["type"]](name=raw["name"], session_options=options.session_options,
                                        contract_options=raw) for raw in options.contracts_options]


@pytest.mark.parametrize("contract", contracts(), ids=lambda contract: contract.name)
def test_the_import_contract_holds(contract: Contract) -> None:
    check = contract.check(deepcopy(import_graph()), verbose=False)  # a contract may edit the graph it is given
    assert check.kept, f"`lint-imports` shows what breaks {contract.name!r}: {check.metadata}"


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, imported = work[-1]
            step = next(imported, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph.find_modules_directly_imported_by(step)))))
                elif step in on_stack:
                    low[module] = min(low[module], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_itself_back_through_others() -> None:
    # acyclic_siblings looks inside one package at a time; this looks across bot, handlers and scoring.
    assert cycles(import_graph()) == []


def test_the_cycle_check_sees_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for importer, imported in (("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")):
        graph.add_import(importer=importer, imported=imported)
    assert cycles(graph) == [["a", "b", "c"]]


def application_modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def name_of(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def too_long(path: Path) -> bool:
    name = name_of(path)
    if name in LONG_BY_NATURE or name.startswith(LONG_BY_NATURE_FOLDERS):
        return False
    return len(path.read_text(encoding="utf-8").splitlines()) > MAX_LINES


def test_no_module_is_over_500_lines() -> None:
    found = {name_of(path) for path in application_modules() if too_long(path)}
    assert sorted(found) == []


def unexplained_late_imports(source: str) -> list[int]:
    """Lines of imports inside a function with no comment on their line or just above (a comment above a run
    of imports explains the run)."""
    commented = {token.start[0] for token in tokenize.generate_tokens(io.StringIO(source).readline)
                 if token.type == tokenize.COMMENT}
    late: dict[int, int] = {}  # first line -> last line of each import inside a function
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    late[inner.lineno] = inner.end_lineno or inner.lineno
    starts_by_end = {last: first for first, last in late.items()}
    explained: dict[int, bool] = {}
    for first, last in sorted(late.items()):
        above = starts_by_end.get(first - 1)  # the import just above, in a run of imports
        explained[first] = bool(commented & set(range(first - 1, last + 1))) or bool(above and explained[above])
    unexplained = [first for first, ok in explained.items() if not ok]
    return unexplained


def test_every_function_level_import_says_why() -> None:
    found = {name_of(path) for path in application_modules()
             if unexplained_late_imports(path.read_text(encoding="utf-8"))}
    assert sorted(found) == []


def test_the_late_import_check_wants_a_comment_on_the_line_or_above_the_run() -> None:
    source = ("import os\n\n"
              "def explained():\n"
              "    # loading it costs 300 ms at every --help\n"
              "    import json\n"
              "    from csv import reader\n\n"
              "def unexplained():\n"
              "    x = 1\n"
              "    import json\n\n"
              "def on_the_line():\n"
              "    import json  # a cycle otherwise\n")
    assert unexplained_late_imports(source) == [10]
