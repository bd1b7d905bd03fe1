"""results: data entries, calibrations, period results, IDPs

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 11:00:00.000000

Only this issue's tables. Chained after 0003 for now because two heads would stop `upgrade head` for
everyone; it creates nothing the other revisions touch, so it can be re-chained freely.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import bot.storage.models


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False)


def upgrade() -> None:
    op.create_table('data_entries',
    _id(),
    sa.Column('userid', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('value', sa.String(length=40), nullable=True),
    sa.Column('waived', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('entered_by', sa.String(length=64), nullable=False),
    sa.Column('entered_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('data_entries', schema=None) as batch_op:
        batch_op.create_index('ix_data_entries_period_user', ['period', 'userid'], unique=False)

    op.create_table('result_calibrations',
    _id(),
    sa.Column('userid', sa.String(length=64), nullable=False),
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('adjusted_total', sa.String(length=16), nullable=False),
    sa.Column('original_total', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('author', sa.String(length=64), nullable=False),
    sa.Column('created_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('result_calibrations', schema=None) as batch_op:
        batch_op.create_index('ix_result_calibrations_period_user', ['period', 'userid'], unique=False)

    op.create_table('result_periods',
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('closed_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.Column('published_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('period')
    )
    op.create_table('period_results',
    _id(),
    sa.Column('userid', sa.String(length=64), nullable=False),
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('scheme_key', sa.String(length=128), nullable=False),
    sa.Column('team', sa.String(length=64), nullable=True),
    sa.Column('department', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('total', sa.String(length=16), nullable=False),
    sa.Column('grade', sa.String(length=8), nullable=False),
    sa.Column('complete', sa.Boolean(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('computed_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('published_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('userid', 'period', name='uq_period_results_user_period')
    )
    with op.batch_alter_table('period_results', schema=None) as batch_op:
        batch_op.create_index('ix_period_results_period_status', ['period', 'status'], unique=False)

    op.create_table('idps',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('userid', sa.String(length=64), nullable=False),
    sa.Column('manager_userid', sa.String(length=64), nullable=True),
    sa.Column('opened_for', sa.String(length=8), nullable=False),
    sa.Column('periods', sa.JSON(), nullable=False),
    sa.Column('totals', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('opened_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('closed_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('userid', 'opened_for', name='uq_idps_user_period')
    )
    op.create_table('idp_items',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('idp_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('indicator', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('done_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['idp_id'], ['idps.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('idp_items', schema=None) as batch_op:
        batch_op.create_index('ix_idp_items_idp', ['idp_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('idp_items', schema=None) as batch_op:
        batch_op.drop_index('ix_idp_items_idp')
    op.drop_table('idp_items')
    op.drop_table('idps')
    with op.batch_alter_table('period_results', schema=None) as batch_op:
        batch_op.drop_index('ix_period_results_period_status')
    op.drop_table('period_results')
    op.drop_table('result_periods')
    with op.batch_alter_table('result_calibrations', schema=None) as batch_op:
        batch_op.drop_index('ix_result_calibrations_period_user')
    op.drop_table('result_calibrations')
    with op.batch_alter_table('data_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_data_entries_period_user')
    op.drop_table('data_entries')
