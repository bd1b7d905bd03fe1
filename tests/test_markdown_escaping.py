"""Every markdown template, fed hostile values in every variable, prints them as text: no markup survives."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jinja2
import pytest
from jinja2 import meta

from bot.templates import MarkdownSafe, environment, is_markdown_template, markdown_text, render, template_names

# What a member could type as a weekly report, or an admin could set as a WeCom display name.
HOSTILE = (
    '<font color="warning">RED</font> [点我](http://evil.example/x) **粗** `code` ~~删~~ &lt;b&gt;\\'
    "\n# 标题\n> 引用\r\n- 列表"
)
SURVIVING_MARKUP = (
    '<font color="warning">RED', "](http://evil", "**粗**", "`code`", "~~删~~", "&lt;", "\n# 标题",
    "\n> 引用", "\n- 列表", "\\",
)
MARKDOWN_TEMPLATES = [name for name in template_names() if is_markdown_template(name)]


class Hostile:
    """Stands in for any value a template reads: every attribute, item, call and element is hostile text.

    `equal` decides how `status == "submitted"` and friends come out, so rendering twice walks both sides
    of each branch; `arity` is how many elements it unpacks into (`for member, status, report in rows`)."""

    def __init__(self, equal: bool, arity: int = 2) -> None:
        self._equal = equal
        self._arity = arity

    def _more(self) -> Hostile:
        return Hostile(self._equal, self._arity)

    def __str__(self) -> str:
        return HOSTILE

    def __getattr__(self, name: str) -> Hostile:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._more()

    def __call__(self, *args: Any, **kwargs: Any) -> Hostile:
        return self._more()

    def __getitem__(self, key: object) -> Hostile:
        return self._more()

    def __iter__(self) -> Iterator[Hostile]:
        return iter([self._more() for _ in range(self._arity)])

    def __len__(self) -> int:
        return 2

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return self._equal

    def __hash__(self) -> int:
        return 0

    def __lt__(self, other: object) -> bool:
        return False

    def __ge__(self, other: object) -> bool:
        return True

    __le__ = __lt__
    __gt__ = __ge__

    def __index__(self) -> int:
        return 1

    def __float__(self) -> float:
        return 1.0

    def __sub__(self, other: object) -> Hostile:
        return self._more()

    __add__ = __rsub__ = __radd__ = __sub__


def variables_of(name: str) -> set[str]:
    """The variables `name` and every template it includes or imports read from their caller."""
    env = environment()
    source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
    tree = env.parse(source)
    found = set(meta.find_undeclared_variables(tree))
    for referenced in meta.find_referenced_templates(tree):
        if referenced and is_markdown_template(referenced):
            found |= variables_of(referenced)
    return found


def test_the_markdown_templates_are_the_ones_sent_as_markdown() -> None:
    assert len(MARKDOWN_TEMPLATES) >= 16
    assert all(name.endswith(".md.j2") for name in MARKDOWN_TEMPLATES)


@pytest.mark.parametrize("equal", [True, False], ids=["branches-equal", "branches-other"])
@pytest.mark.parametrize("name", MARKDOWN_TEMPLATES)
def test_markdown_template_prints_hostile_values_as_text(name: str, equal: bool) -> None:
    texts = []
    for arity in (2, 3):  # loops unpack pairs or triples; each template reads one kind or the other
        try:
            texts.append(render(name, **{variable: Hostile(equal, arity) for variable in variables_of(name)}))
        except ValueError as error:
            assert "values to unpack" in str(error)
    assert texts, f"{name} could not be rendered"
    for text in texts:
        assert "RED" in text, f"{name} printed none of its values"
        for markup in SURVIVING_MARKUP:
            assert markup not in text, f"{name}: {markup!r} survived in {text!r}"


def test_a_markdown_template_keeps_its_own_markup() -> None:
    text = environment().from_string("**{{ name }}** <font color=\"warning\">{{ n }}</font>",
                                     globals={}).render(name="x", n=1)
    assert text == '**x** <font color="warning">1</font>'  # from_string has no name: not a markdown file
    template = environment().get_template("results/promotion.md.j2")
    text = template.render(period_label="2026年", admin="**管理员**", candidates=[])
    assert text.startswith("**2026年晋升候选名单**")
    assert "＊＊管理员＊＊" in text


def test_markdown_safe_values_are_printed_as_they_are() -> None:
    text = render("results/promotion.md.j2", period_label=MarkdownSafe("**2026年**"), admin="a", candidates=[])
    assert text.startswith("****2026年**晋升候选名单**")


def test_text_templates_are_left_alone() -> None:
    assert "**粗**" in render("cancelled.txt.j2") + markdown_text("") + "**粗**"
    text = render("unknown_command.txt.j2", command="**/x**", suggestions=[])
    assert "**/x**" in text


def test_markdown_text_keeps_what_the_person_wrote_readable() -> None:
    assert markdown_text("张伟 <b>[x](y)</b> *a* `c` #1 ~s~ key_name &amp;\\\nB") == (
        "张伟 ＜b＞［x］(y)＜/b＞ ＊a＊ ｀c｀ ＃1 ～s～ key_name ＆amp;＼ B"
    )


def test_a_missing_variable_is_still_an_error_in_markdown_templates() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render("results/promotion.md.j2", admin="a", candidates=[])
