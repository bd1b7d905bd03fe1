"""scheduler failover: a job run's planned start, its claim and how often it was taken over

Revision ID: 0007_sched
Revises: 0006_cards
Create Date: 2026-12-02 01:00:00.000000

Only columns on job_runs, so it can be re-chained freely.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import bot.storage.models


revision = '0007_sched'
down_revision = '0006_cards'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('due_at', bot.storage.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('holder', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('claimed_until', bot.storage.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('takeovers', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.drop_column('takeovers')
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('holder')
        batch_op.drop_column('due_at')
