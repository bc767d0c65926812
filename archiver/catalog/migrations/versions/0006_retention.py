"""Retention: a case's class and closing date, a person's class for a recording, tombstones of purged
recordings, legal holds, and two-person purge requests.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 18:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cases') as batch:
        batch.add_column(sa.Column('retention_class', sa.String(64), nullable=True))
        batch.add_column(sa.Column('closed_at', sa.DateTime(), nullable=True))
    op.create_table(
        'purge_requests',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('requested_by', sa.String(64), nullable=False),
        sa.Column('requested_at', sa.DateTime(), nullable=False),
        sa.Column('items', sa.JSON(), nullable=False),
        sa.Column('bytes', sa.BigInteger(), nullable=False),
        sa.Column('approved_by', sa.String(64), nullable=True),
        sa.Column('approved_at', sa.DateTime(), nullable=True),
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
    )
    with op.batch_alter_table('recordings') as batch:
        batch.add_column(sa.Column('retention_class', sa.String(64), nullable=True))
        batch.add_column(sa.Column('purged_at', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('purge_request_id', sa.Integer(), nullable=True))  # purge_requests.id
    op.create_table(
        'holds',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('case_id', sa.Integer(), sa.ForeignKey('cases.id'), nullable=True),
        sa.Column('recording_id', sa.Integer(), sa.ForeignKey('recordings.id'), nullable=True),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('placed_by', sa.String(64), nullable=False),
        sa.Column('placed_at', sa.DateTime(), nullable=False),
        sa.Column('lifted_by', sa.String(64), nullable=True),
        sa.Column('lifted_at', sa.DateTime(), nullable=True),
        sa.Column('lift_reason', sa.Text(), nullable=True),
    )
    op.create_index('ix_holds_case_id', 'holds', ['case_id'])
    op.create_index('ix_holds_recording_id', 'holds', ['recording_id'])


def downgrade() -> None:
    op.drop_table('holds')
    with op.batch_alter_table('recordings') as batch:
        batch.drop_column('purge_request_id')
        batch.drop_column('purged_at')
        batch.drop_column('retention_class')
    op.drop_table('purge_requests')
    with op.batch_alter_table('cases') as batch:
        batch.drop_column('closed_at')
        batch.drop_column('retention_class')
