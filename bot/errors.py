"""UserFacingError: the one error a person reads, carrying the template that says what went wrong."""
from __future__ import annotations

from typing import Any, ClassVar


class UserFacingError(Exception):
    """A problem the person should read about: rendered from its template, nothing else happens.

    Raised anywhere below the handlers (domain services, parsers), before anything is written; the dispatcher
    renders it as the reply in one place. What the handler wrote before raising (ending a conversation) stays."""

    def __init__(self, template: str, **variables: Any) -> None:
        super().__init__(template)
        self.template = template
        self.variables = variables


class CodedError(UserFacingError):
    """A family's refusals, all in one template: `code` picks the sentence and `params` fill it (as `p`).

    A subclass names its TEMPLATE; `code` and `params` stay readable for callers that answer in their own words."""

    TEMPLATE: ClassVar[str]

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(self.TEMPLATE, code=code, p=params)
        self.code = code
        self.params = params
