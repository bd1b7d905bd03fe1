"""UserFacingError: the one error a person reads, carrying the template that says what went wrong."""
from __future__ import annotations

from typing import Any


class UserFacingError(Exception):
    """A problem the person should read about: rendered from its template, nothing else happens.

    Raised anywhere below the handlers (domain services, parsers); the dispatcher renders it as the reply
    and rolls the message's transaction back, so nothing is half-written."""

    def __init__(self, template: str, **variables: Any) -> None:
        super().__init__(template)
        self.template = template
        self.variables = variables
