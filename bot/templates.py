"""Every text a person reads: Jinja2 templates per locale under templates/<locale>/."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

TEMPLATE_ROOT = Path(__file__).resolve().parent.parent / "templates"
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
    )
    env.filters["money"] = lambda value: f"{value:,}"
    return env


def render(template: str, locale: str = DEFAULT_LOCALE, /, **variables: object) -> str:
    """Render templates/<locale>/<template>; surrounding blank lines are trimmed.

    Positional-only, so a template may have variables called `template` or `locale` too."""
    return environment(locale).get_template(template).render(**variables).strip()


def template_names(locale: str = DEFAULT_LOCALE) -> list[str]:
    return sorted(environment(locale).list_templates(filter_func=lambda n: n.endswith(".j2")))
