"""weekly reports, self-reviews and leave

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:20:47.447744
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import bot.storage.models


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('leaves',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('userid', sa.String(length=64), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=False),
    sa.Column('created_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('cancelled_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('leaves', schema=None) as batch_op:
        batch_op.create_index('ix_leaves_user_dates', ['userid', 'start_date', 'end_date'], unique=False)

    op.create_table('self_reviews',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('userid', sa.String(length=64), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('scheme_key', sa.String(length=128), nullable=False),
    sa.Column('ratings', sa.JSON(), nullable=False),
    sa.Column('achievements', sa.Text(), nullable=False),
    sa.Column('improvements', sa.Text(), nullable=False),
    sa.Column('created_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('updated_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('submitted_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('userid', 'month', name='uq_self_reviews_user_month')
    )
    op.create_table('weekly_reports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('userid', sa.String(length=64), nullable=False),
    sa.Column('week', sa.String(length=8), nullable=False),
    sa.Column('answers', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('created_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('updated_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('submitted_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.Column('edited_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('userid', 'week', name='uq_weekly_reports_user_week')
    )
    with op.batch_alter_table('weekly_reports', schema=None) as batch_op:
        batch_op.create_index('ix_weekly_reports_week_status', ['week', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('weekly_reports', schema=None) as batch_op:
        batch_op.drop_index('ix_weekly_reports_week_status')

    op.drop_table('weekly_reports')
    op.drop_table('self_reviews')
    with op.batch_alter_table('leaves', schema=None) as batch_op:
        batch_op.drop_index('ix_leaves_user_dates')

    op.drop_table('leaves')
