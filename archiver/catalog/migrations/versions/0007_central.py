"""Many stations, one county: registered stations, their applied custody events and refusals (in a
central catalog), the station a recording lives at, a station's own sync state, and the version, lock
and legal hold of an object on an S3 target.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 20:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('recordings') as batch:
        batch.add_column(sa.Column('station', sa.String(64), nullable=True))
        batch.create_index('ix_recordings_station', ['station'])
    with op.batch_alter_table('backup_objects') as batch:
        batch.add_column(sa.Column('version_id', sa.String(255), nullable=True))
        batch.add_column(sa.Column('locked_until', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('legal_hold', sa.Boolean(), nullable=True))
    op.create_table(
        'stations',
        sa.Column('id', sa.String(64), primary_key=True),
        sa.Column('public_key', sa.String(128), nullable=False),
        sa.Column('added_by', sa.String(64), nullable=False),
        sa.Column('added_at', sa.DateTime(), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('hash', sa.String(64), nullable=False),
        sa.Column('synced_at', sa.DateTime(), nullable=True),
    )
    op.create_table(
        'station_events',
        sa.Column('station', sa.String(64), sa.ForeignKey('stations.id'), primary_key=True),
        sa.Column('seq', sa.BigInteger(), primary_key=True),
        sa.Column('hash', sa.String(64), nullable=False),
        sa.Column('time', sa.DateTime(), nullable=False),
        sa.Column('action', sa.String(64), nullable=False),
        sa.Column('line', sa.Text(), nullable=False),
        sa.Column('received_at', sa.DateTime(), nullable=False),
    )
    op.create_table(
        'station_refusals',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('station', sa.String(64), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=True),
        sa.Column('kind', sa.String(32), nullable=False),
        sa.Column('detail', sa.Text(), nullable=False),
        sa.Column('hash', sa.String(64), nullable=False),
        sa.Column('line', sa.Text(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
    )
    op.create_index('ix_station_refusals_station_seq', 'station_refusals', ['station', 'seq'])
    op.create_table(
        'sync_state',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('central_seq', sa.BigInteger(), nullable=False),
        sa.Column('synced_at', sa.DateTime(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('error_at', sa.DateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table('sync_state')
    op.drop_table('station_refusals')
    op.drop_table('station_events')
    op.drop_table('stations')
    with op.batch_alter_table('backup_objects') as batch:
        batch.drop_column('legal_hold')
        batch.drop_column('locked_until')
        batch.drop_column('version_id')
    with op.batch_alter_table('recordings') as batch:
        batch.drop_index('ix_recordings_station')
        batch.drop_column('station')
