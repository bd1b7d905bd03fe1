"""Reading what a member writes into a weekly report: a pasted report's sections, a question's title, a KR note."""
from __future__ import annotations

import re
from collections.abc import Sequence

from bot.config import ReportQuestion

_NUMBERING = r"(?:[0-9０-９]{1,2}|[一二三四五六七八九十]{1,3})"
_PREFIX = re.compile(rf"^\s*(?:#+\s*|\*\*|(?:{_NUMBERING}\s*[.、．)）:：]\s*)|[（(]{_NUMBERING}[)）]\s*)*")
_OPEN_BRACKETS = "【[「《〔"
_CLOSE_BRACKETS = "】]」》〕"
_LEADING_NUMBER = re.compile(r"^\s*[+]?\d[\d,，]*(?:\.\d+)?[^\s，,。；;]*[\s，,。；;]*")  # "3场，" before a note


def squash(text: str) -> str:
    """Text without any white space, lower-cased: how headings and titles are compared."""
    return re.sub(r"\s+", "", text).lower()


def _heading_names(questions: Sequence[ReportQuestion]) -> list[tuple[str, str]]:
    """(normalised heading, question key), longest first so "本周关键动作" wins over "关键动作"."""
    names: list[tuple[str, str]] = []
    for question in questions:
        for name in (question.title, *question.aliases):
            names.append((squash(name), question.key))
    return sorted(names, key=lambda item: len(item[0]), reverse=True)


def _match_heading(line: str, names: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
    """(question key, rest of the line) when the line starts a section, e.g. "【结果与数据】…",
    "1. 本周关键动作", "KR 进展：…" or a heading alone on its line."""
    text = _PREFIX.sub("", line).strip()
    bracketed = bool(text) and text[0] in _OPEN_BRACKETS
    if bracketed:
        text = text[1:]
    squashed_positions = [i for i, ch in enumerate(text) if not ch.isspace()]
    squashed = "".join(text[i] for i in squashed_positions).lower()
    for name, key in names:
        if not squashed.startswith(name):
            continue
        end = squashed_positions[len(name) - 1] + 1  # where the heading ends in the original text
        rest = text[end:].lstrip()
        rest = rest.removeprefix("**").lstrip()
        closed = bool(rest) and rest[0] in _CLOSE_BRACKETS
        if closed:
            rest = rest[1:].lstrip()
        if rest[:1] in (":", "："):
            return key, rest[1:].strip()
        if bracketed and closed:
            return key, rest.strip(" :：")
        if not rest:
            return key, ""
    return None


def parse_pasted_report(text: str, questions: Sequence[ReportQuestion]) -> dict[str, str]:
    """Split a report pasted in one message into sections by their headings; text before the first
    heading is ignored, a heading repeated adds to its section."""
    names = _heading_names(questions)
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        found = _match_heading(line, names)
        if found is not None:
            current, rest = found
            sections.setdefault(current, [])
            if rest:
                sections[current].append(rest)
        elif current is not None:
            sections[current].append(line.rstrip())
    return {key: "\n".join(lines).strip() for key, lines in sections.items()}


def looks_pasted(sections: dict[str, str]) -> bool:
    """Two sections or more: a whole report, not the answer to one question that happens to start with a title."""
    return len(sections) >= 2


def question_named(text: str, questions: Sequence[ReportQuestion]) -> int | None:
    """The index of the question whose title or alias the text is, spaces and case aside."""
    squashed = squash(text)
    return next((i for i, q in enumerate(questions)
                 if squashed in (squash(q.title), *(squash(a) for a in q.aliases))), None)


def kr_progress_note(text: str) -> str:
    """What follows the number in a KR's progress answer ("3场，场地已定" → "场地已定")."""
    return _LEADING_NUMBER.sub("", text, count=1).strip()
