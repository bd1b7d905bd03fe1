"""sender: per-row duplicate-check sequence, the shared sending pause, company-wide call counts

Revision ID: 0008_sender
Revises: 0007_sched
Create Date: 2026-12-02 01:00:00.000000
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import bot.storage.models


revision = '0008_sender'
down_revision = '0007_sched'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dup_seq', sa.Integer(), nullable=True))
        batch_op.create_index('ix_outbox_touser_id', ['touser', 'id'], unique=False)
    op.create_table('sending_pauses',
    sa.Column('scope', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('since', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('next_attempt_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('retry_seconds', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('scope')
    )
    op.create_table('api_call_counts',
    sa.Column('api', sa.String(length=64), nullable=False),
    sa.Column('bucket_start', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('calls', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('api', 'bucket_start')
    )


def downgrade() -> None:
    op.drop_table('api_call_counts')
    op.drop_table('sending_pauses')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_touser_id')
        batch_op.drop_column('dup_seq')
