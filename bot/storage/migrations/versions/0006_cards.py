"""cards: the card registry (finished cards, text forms) and members' visits (welcome once)

Revision ID: 0006_cards
Revises: 0005_stats
Create Date: 2026-12-02 01:00:00.000000

Only this branch's tables; chained after 0004 so it can be re-chained freely at merge.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import bot.storage.models


revision = '0006_cards'
down_revision = '0005_stats'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('template_cards',
    sa.Column('task_id', sa.String(length=128), nullable=False),
    sa.Column('subject', sa.String(length=191), nullable=False),
    sa.Column('touser', sa.String(length=64), nullable=False),
    sa.Column('outbox_key', sa.String(length=191), nullable=True),
    sa.Column('actions', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('finished_label', sa.String(length=64), nullable=True),
    sa.Column('finished_by', sa.String(length=64), nullable=True),
    sa.Column('finished_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('task_id')
    )
    with op.batch_alter_table('template_cards', schema=None) as batch_op:
        batch_op.create_index('ix_template_cards_subject_status', ['subject', 'status'], unique=False)
        batch_op.create_index('ix_template_cards_touser_status', ['touser', 'status'], unique=False)

    op.create_table('member_visits',
    sa.Column('userid', sa.String(length=64), nullable=False),
    sa.Column('last_entered_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('welcomed_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('userid')
    )


def downgrade() -> None:
    op.drop_table('member_visits')
    with op.batch_alter_table('template_cards', schema=None) as batch_op:
        batch_op.drop_index('ix_template_cards_touser_status')
        batch_op.drop_index('ix_template_cards_subject_status')
    op.drop_table('template_cards')
