"""stats: days WeCom would not give for a member (84074), for the data-quality check

Revision ID: 0005_stats
Revises: 0004
Create Date: 2026-12-02 01:00:00.000000
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import bot.storage.models


revision = '0005_stats'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('wecom_stats_gaps',
    sa.Column('userid', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('errcode', sa.Integer(), nullable=False),
    sa.Column('noted_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('userid', 'day')
    )


def downgrade() -> None:
    op.drop_table('wecom_stats_gaps')
