"""data sources: WeCom statistics, OKR, 360

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 10:25:18.729770

Only this issue's tables: daily WeCom statistics, OKR objectives/key results/progress, 360 rounds.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import bot.storage.models


revision = '0003'
# Chained after 0002 (weekly reports) because two heads would stop `upgrade head` for everyone;
# it only creates its own tables, so it can be re-chained freely.
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('feedback360_rounds',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('period', sa.String(length=16), nullable=False),
    sa.Column('indicator_key', sa.String(length=64), nullable=False),
    sa.Column('indicator_name', sa.String(length=128), nullable=False),
    sa.Column('anchors', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('deadline', sa.Date(), nullable=False),
    sa.Column('opened_by', sa.String(length=64), nullable=False),
    sa.Column('opened_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('closed_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('okr_objectives',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('quarter', sa.String(length=8), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('okr_objectives', schema=None) as batch_op:
        batch_op.create_index('ix_okr_objectives_quarter_department', ['quarter', 'department_id'], unique=False)

    op.create_table('wecom_behavior_days',
    sa.Column('userid', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('chat_cnt', sa.Integer(), nullable=False),
    sa.Column('message_cnt', sa.Integer(), nullable=False),
    sa.Column('reply_percentage', sa.Numeric(precision=7, scale=2), nullable=True),
    sa.Column('avg_reply_time', sa.Numeric(precision=10, scale=2), nullable=True),
    sa.Column('negative_feedback_cnt', sa.Integer(), nullable=False),
    sa.Column('new_apply_cnt', sa.Integer(), nullable=False),
    sa.Column('new_contact_cnt', sa.Integer(), nullable=False),
    sa.Column('fetched_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('userid', 'day')
    )
    with op.batch_alter_table('wecom_behavior_days', schema=None) as batch_op:
        batch_op.create_index('ix_wecom_behavior_days_day', ['day'], unique=False)

    op.create_table('wecom_customer_counts',
    sa.Column('userid', sa.String(length=64), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('customers', sa.Integer(), nullable=False),
    sa.Column('fetched_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('userid', 'as_of')
    )
    op.create_table('wecom_group_days',
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('new_chat_cnt', sa.Integer(), nullable=False),
    sa.Column('chat_total', sa.Integer(), nullable=False),
    sa.Column('chat_has_msg', sa.Integer(), nullable=False),
    sa.Column('new_member_cnt', sa.Integer(), nullable=False),
    sa.Column('member_total', sa.Integer(), nullable=False),
    sa.Column('member_has_msg', sa.Integer(), nullable=False),
    sa.Column('msg_total', sa.Integer(), nullable=False),
    sa.Column('fetched_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('owner', 'day')
    )
    with op.batch_alter_table('wecom_group_days', schema=None) as batch_op:
        batch_op.create_index('ix_wecom_group_days_day', ['day'], unique=False)

    op.create_table('feedback360_asks',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('rater', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('asked_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('reminded_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['round_id'], ['feedback360_rounds.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('round_id', 'subject', 'rater', name='uq_feedback360_asks_round_subject_rater')
    )
    with op.batch_alter_table('feedback360_asks', schema=None) as batch_op:
        batch_op.create_index('ix_feedback360_asks_rater_status', ['rater', 'status'], unique=False)

    op.create_table('feedback360_nominations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('raters', sa.JSON(), nullable=False),
    sa.Column('proposed_by', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('proposed_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('confirmed_by', sa.String(length=64), nullable=True),
    sa.Column('confirmed_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['round_id'], ['feedback360_rounds.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('round_id', 'subject', name='uq_feedback360_nominations_round_subject')
    )
    op.create_table('feedback360_ratings',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['round_id'], ['feedback360_rounds.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('feedback360_ratings', schema=None) as batch_op:
        batch_op.create_index('ix_feedback360_ratings_round_subject', ['round_id', 'subject'], unique=False)

    op.create_table('okr_key_results',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('objective_id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('quarter', sa.String(length=8), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('target', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('unit', sa.String(length=16), nullable=False),
    sa.Column('current', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('review_note', sa.Text(), nullable=True),
    sa.Column('reviewed_by', sa.String(length=64), nullable=True),
    sa.Column('reviewed_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.Column('score', sa.Numeric(precision=4, scale=2), nullable=True),
    sa.Column('scored_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.Column('created_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('updated_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['objective_id'], ['okr_objectives.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('okr_key_results', schema=None) as batch_op:
        batch_op.create_index('ix_okr_key_results_objective', ['objective_id'], unique=False)
        batch_op.create_index('ix_okr_key_results_owner_quarter', ['owner', 'quarter'], unique=False)

    op.create_table('okr_progress',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kr_id', sa.Integer(), nullable=False),
    sa.Column('value', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('recorded_by', sa.String(length=64), nullable=False),
    sa.Column('recorded_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['kr_id'], ['okr_key_results.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('okr_progress', schema=None) as batch_op:
        batch_op.create_index('ix_okr_progress_kr', ['kr_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('okr_progress', schema=None) as batch_op:
        batch_op.drop_index('ix_okr_progress_kr')

    op.drop_table('okr_progress')
    with op.batch_alter_table('okr_key_results', schema=None) as batch_op:
        batch_op.drop_index('ix_okr_key_results_owner_quarter')
        batch_op.drop_index('ix_okr_key_results_objective')

    op.drop_table('okr_key_results')
    with op.batch_alter_table('feedback360_ratings', schema=None) as batch_op:
        batch_op.drop_index('ix_feedback360_ratings_round_subject')

    op.drop_table('feedback360_ratings')
    op.drop_table('feedback360_nominations')
    with op.batch_alter_table('feedback360_asks', schema=None) as batch_op:
        batch_op.drop_index('ix_feedback360_asks_rater_status')

    op.drop_table('feedback360_asks')
    with op.batch_alter_table('wecom_group_days', schema=None) as batch_op:
        batch_op.drop_index('ix_wecom_group_days_day')

    op.drop_table('wecom_group_days')
    op.drop_table('wecom_customer_counts')
    with op.batch_alter_table('wecom_behavior_days', schema=None) as batch_op:
        batch_op.drop_index('ix_wecom_behavior_days_day')

    op.drop_table('wecom_behavior_days')
    with op.batch_alter_table('okr_objectives', schema=None) as batch_op:
        batch_op.drop_index('ix_okr_objectives_quarter_department')

    op.drop_table('okr_objectives')
    op.drop_table('feedback360_rounds')
