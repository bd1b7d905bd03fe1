"""Named leases in the database: one holder at a time, until it lets go or its time runs out."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from bot.storage.models import Lease
from bot.storage.sqlutil import insert_ignoring_duplicates


def take_lease(session: Session, name: str, holder: str, now: datetime, duration: timedelta) -> bool:
    """Take (or renew) the lease if it is free, expired or already ours; safe when processes race."""
    insert_ignoring_duplicates(session, Lease.__table__, [{"name": name, "holder": None, "expires_at": None}])
    taken = session.execute(
        update(Lease).where(Lease.name == name)
        .where((Lease.holder.is_(None)) | (Lease.holder == holder) | (Lease.expires_at < now))
        .values(holder=holder, expires_at=now + duration)).rowcount
    return taken == 1


def release_lease(session: Session, name: str, holder: str) -> None:
    session.execute(update(Lease).where(Lease.name == name, Lease.holder == holder).values(holder=None, expires_at=None))
