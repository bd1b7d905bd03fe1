"""data-quality gate: admins' acceptances of findings

Revision ID: 0009_gate
Revises: 0008_sender
Create Date: 2026-12-02 01:00:00.000000
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import bot.storage.models


revision = '0009_gate'
down_revision = '0008_sender'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('quality_acceptances',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('userid', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('accepted_by', sa.String(length=64), nullable=False),
    sa.Column('accepted_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('released_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('quality_acceptances', schema=None) as batch_op:
        batch_op.create_index('ix_quality_acceptances_period', ['period'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('quality_acceptances', schema=None) as batch_op:
        batch_op.drop_index('ix_quality_acceptances_period')
    op.drop_table('quality_acceptances')
