"""Who is sent plain text instead of markdown or cards (people using WeCom through WeChat), and the plain-text
form of a markdown message."""
from __future__ import annotations

import re

from bot.config import Config

# WeCom's markdown subset (wecom.md §2) as our templates use it: bold, coloured spans, quotes, headings,
# links and inline code. Their text form keeps every word and line and drops only the markup.
_FONT = re.compile(r"</?font\b[^>]*>")
_BOLD = re.compile(r"\*\*(.+?)\*\*", re.S)
_LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+", re.M)
_QUOTE = re.compile(r"^>[ \t]?", re.M)
_CODE = re.compile(r"`([^`\n]*)`")


def markdown_as_text(content: str) -> str:
    """The same message without markdown: what a WeChat user can read."""
    text = _FONT.sub("", content)
    text = _BOLD.sub(r"\1", text)
    text = _LINK.sub(r"\1 \2", text)
    text = _HEADING.sub("", text)
    text = _QUOTE.sub("  ", text)  # a quote stays set off from the lines around it
    return _CODE.sub(r"\1", text)


def gets_cards(config: Config, userid: str) -> bool:
    """Whether template cards go to this person at all (WeChat shows them as an unsupported message)."""
    return userid not in config.bot.wechat_users


def gets_text_form(config: Config, userid: str) -> bool:
    """Whether this person is sent the plain-text form of markdown, and a text copy of each card."""
    return config.bot.text_fallback or userid in config.bot.wechat_users

