"""Every text a person reads: Jinja2 templates per locale under templates/<locale>/."""
from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from typing import Any

import jinja2

from bot.shipped_files import TEMPLATES_DIR

TEMPLATE_ROOT = TEMPLATES_DIR
DEFAULT_LOCALE = "zh_CN"


@lru_cache(maxsize=None)
def environment(locale: str = DEFAULT_LOCALE) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_ROOT / locale)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,
        finalize=_finalize,
    )
    env.filters["money"] = lambda value: f"{value:,}"
    return env


class MarkdownSafe(str):
    """Markdown our own code built on purpose: a markdown template prints it as it is."""


# WeCom markdown (doc 90236) knows headings, bold, links, inline code, quotes and <font> (no `_`
# italics, so identifiers such as content_output stay as they are); WeCom
# documents no escape character, so the characters that open markup become their full-width twins:
# the person still reads what was written, and no client can render it as markup.
_MARKDOWN_NEUTRAL = str.maketrans({
    "<": "＜", ">": "＞", "[": "［", "]": "］", "*": "＊", "`": "｀",
    "#": "＃", "~": "～", "&": "＆", "\\": "＼", "\r": " ", "\n": " ",
})


def markdown_text(value: object) -> str:
    """`value` as plain text inside WeCom markdown: no character of it can open or close markup."""
    return str(value).translate(_MARKDOWN_NEUTRAL)


def is_markdown_template(name: str | None) -> bool:
    """`*.md.j2` templates go out as WeCom markdown (bot/chat/routing.py picks the msgtype the same way)."""
    return name is not None and ".md." in name


@jinja2.pass_context
def _finalize(context: jinja2.runtime.Context, value: Any) -> Any:
    # Every {{ expression }} of a markdown template is a value from the data, never markup: only the
    # template's own literal text (and MarkdownSafe values) may carry markup. Macros imported from
    # shared files run in their own context, so their output is escaped once where it is printed.
    if is_markdown_template(context.name) and not isinstance(value, MarkdownSafe):
        return markdown_text(value)
    return value


def trim(text: object, limit: int) -> str:
    """`text` on one line and at most `limit` characters, with … where it was cut (snippets in lists)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def render(template: str, locale: str = DEFAULT_LOCALE, /, **variables: object) -> str:
    """Render templates/<locale>/<template>; surrounding blank lines are trimmed.

    Positional-only, so a template may have variables called `template` or `locale` too."""
    return environment(locale).get_template(template).render(**variables).strip()


@lru_cache(maxsize=None)
def words(name: str, locale: str = DEFAULT_LOCALE) -> tuple[str, ...]:
    """The words a person may type for one thing (`scoring.skip`: 跳过, 略过, skip...), in their given order.

    Input vocabulary lives beside the texts, in templates/<locale>/words/<family>.toml (one list per key),
    so that no Chinese is written in Python and a locale brings its own words with its own texts."""
    family, _, key = name.partition(".")
    path = TEMPLATE_ROOT / locale / "words" / f"{family}.toml"
    with path.open("rb") as handle:
        table = tomllib.load(handle)
    if key not in table:
        raise KeyError(f"{path} has no list {key!r}")
    return tuple(str(word) for word in table[key])


def words_pattern(name: str, locale: str = DEFAULT_LOCALE) -> str:
    """`words(name)` as a regex alternation, for a parser that finds them inside longer text ("12月1日至12月5日")."""
    return "|".join(re.escape(word) for word in words(name, locale))


def template_names(locale: str = DEFAULT_LOCALE) -> list[str]:
    return sorted(environment(locale).list_templates(filter_func=lambda n: n.endswith(".j2")))


def render_error(template: str, fallback: str, locale: str = DEFAULT_LOCALE, /, **variables: object) -> str:
    """An error message: the template when it renders, else one plain line built in code.

    An error message must never depend on the thing that failed: when the templates themselves are missing
    (an incomplete install) or broken, the fallback still names the cause and carries every variable."""
    try:
        return render(template, locale, **variables)
    except Exception as error:  # noqa: BLE001 - any failure here would hide the error being reported
        details = "; ".join(f"{name}={value}" for name, value in variables.items())
        return f"{fallback}{': ' + details if details else ''} (message template {template} unavailable: " \
               f"{type(error).__name__}: {error})"
