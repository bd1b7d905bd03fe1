"""The sender: delivers outbox rows through WeCom in order per person, within WeCom's limits, exactly once."""
from bot.wecom.sender.loop import Sender
from bot.wecom.sender.pause import current_pause

__all__ = ["Sender", "current_pause"]
