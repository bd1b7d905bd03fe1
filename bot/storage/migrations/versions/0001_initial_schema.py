"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-27 09:49:09.048037
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import bot.storage.models


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=191), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_subject'), ['subject'], unique=False)

    op.create_table('cached_tokens',
    sa.Column('key', sa.String(length=191), nullable=False),
    sa.Column('value', sa.Text(), nullable=True),
    sa.Column('expires_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('conversations',
    sa.Column('userid', sa.String(length=64), nullable=False),
    sa.Column('flow', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=64), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('updated_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('expires_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('userid')
    )
    op.create_table('departments',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('leaders', sa.JSON(), nullable=False),
    sa.Column('sort_order', sa.BigInteger(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('synced_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('inbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('dedupe_key', sa.String(length=191), nullable=False),
    sa.Column('from_user', sa.String(length=64), nullable=False),
    sa.Column('msg_type', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('received_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('processed_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe_key')
    )
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_member_pending', ['from_user', 'status', 'id'], unique=False)

    op.create_table('job_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.String(length=64), nullable=False),
    sa.Column('period', sa.String(length=64), nullable=False),
    sa.Column('scheduled_for', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('started_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('finished_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('job_id', 'period', name='uq_job_runs_job_period')
    )
    op.create_table('leases',
    sa.Column('name', sa.String(length=191), nullable=False),
    sa.Column('holder', sa.String(length=191), nullable=True),
    sa.Column('expires_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('members',
    sa.Column('userid', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('department_ids', sa.JSON(), nullable=False),
    sa.Column('main_department', sa.Integer(), nullable=True),
    sa.Column('position', sa.String(length=128), nullable=False),
    sa.Column('direct_leaders', sa.JSON(), nullable=False),
    sa.Column('manager_userid', sa.String(length=64), nullable=True),
    sa.Column('is_admin', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('wecom_status', sa.Integer(), nullable=False),
    sa.Column('synced_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('deactivated_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('userid')
    )
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_members_manager_userid'), ['manager_userid'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('idempotency_key', sa.String(length=191), nullable=False),
    sa.Column('touser', sa.String(length=64), nullable=False),
    sa.Column('msgtype', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('next_attempt_at', bot.storage.models.UTCDateTime(), nullable=False),
    sa.Column('claimed_until', bot.storage.models.UTCDateTime(), nullable=True),
    sa.Column('sent_at', bot.storage.models.UTCDateTime(), nullable=True),
    sa.Column('wecom_msgid', sa.String(length=128), nullable=True),
    sa.Column('response_code', sa.String(length=191), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_status_id', ['status', 'id'], unique=False)
        batch_op.create_index('ix_outbox_touser_sent', ['touser', 'sent_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_touser_sent')
        batch_op.drop_index('ix_outbox_status_id')

    op.drop_table('outbox')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_members_manager_userid'))

    op.drop_table('members')
    op.drop_table('leases')
    op.drop_table('job_runs')
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_member_pending')

    op.drop_table('inbox')
    op.drop_table('departments')
    op.drop_table('conversations')
    op.drop_table('cached_tokens')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_subject'))

    op.drop_table('audit_log')
