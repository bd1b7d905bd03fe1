"""The bulk SQL of the sender's passes: claim a row, record an attempt, update without the identity map."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, String, Text, bindparam, case, func, update

from bot.storage.models import OutboxMessage, UTCDateTime

UNSENT = ("pending", "sending")  # the statuses of rows still to go out

_OUTBOX = OutboxMessage.__table__
# Claim one row if nobody changed it since it was read; its sequence number is set on its first claim only.
CLAIM_ROW = (update(_OUTBOX)
             .where(_OUTBOX.c.id == bindparam("b_id"), _OUTBOX.c.status == bindparam("b_status"),
                    _OUTBOX.c.attempts == bindparam("b_attempts"))
             .values(status="sending", claimed_until=bindparam("b_until", type_=UTCDateTime()),
                     dup_seq=func.coalesce(_OUTBOX.c.dup_seq, bindparam("b_seq", type_=Integer()))))
# Record one attempt's outcome; the columns an outcome does not set keep their value.
RECORD_ROW = (update(_OUTBOX)
              .where(_OUTBOX.c.id == bindparam("b_id"))
              .values(status=bindparam("b_status"), attempts=bindparam("b_attempts"), claimed_until=None,
                      last_error=bindparam("b_error", type_=Text()),
                      sent_at=func.coalesce(bindparam("b_sent_at", type_=UTCDateTime()), _OUTBOX.c.sent_at),
                      wecom_msgid=func.coalesce(bindparam("b_msgid", type_=String()), _OUTBOX.c.wecom_msgid),
                      response_code=func.coalesce(bindparam("b_response_code", type_=String()),
                                                  _OUTBOX.c.response_code),
                      next_attempt_at=func.coalesce(bindparam("b_next", type_=UTCDateTime()),
                                                    _OUTBOX.c.next_attempt_at)))


def count_when(condition: Any, value: Any = 1) -> Any:
    """`value` where `condition` holds, else 0: summed, a count (or total) over only some of the rows."""
    return case((condition, value), else_=0)


def unsynchronised(statement: Any) -> Any:
    # These rows are never held as objects in the session, so SQLAlchemy need not evaluate the
    # criteria against its identity map (which costs more than the UPDATE itself).
    return statement.execution_options(synchronize_session=False)
