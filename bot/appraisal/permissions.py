"""Who may see and change whose results now lives on bot.appraisal.people.Org; this name stays until its importers move.

Kept for bot/appraisal/results.py and handlers/results.py until they import Org from bot.appraisal.people."""
from __future__ import annotations

from bot.appraisal.people import Org

__all__ = ["Org"]
