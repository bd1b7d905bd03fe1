"""Every text a person reads: Jinja2 templates per locale under templates/<locale>/."""
from __future__ import annotations

from functools import lru_cache

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
    )
    env.filters["money"] = lambda value: f"{value:,}"
    return env


def render(template: str, locale: str = DEFAULT_LOCALE, /, **variables: object) -> str:
    """Render templates/<locale>/<template>; surrounding blank lines are trimmed.

    Positional-only, so a template may have variables called `template` or `locale` too."""
    return environment(locale).get_template(template).render(**variables).strip()


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
