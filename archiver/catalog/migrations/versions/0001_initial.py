"""Initial schema: devices, ingest runs, recordings, sightings (times stored as naive UTC).

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-26 09:56:39
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('devices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('serial', sa.String(length=64), nullable=False),
    sa.Column('officer_no', sa.String(length=64), nullable=True),
    sa.Column('label', sa.String(length=128), nullable=True),
    sa.Column('uuid', sa.String(length=128), nullable=True),
    sa.Column('first_seen', sa.DateTime(), nullable=False),
    sa.Column('last_docked', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('serial')
    )
    op.create_table('ingest_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('device_serial', sa.String(length=64), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('files_seen', sa.Integer(), nullable=False),
    sa.Column('ingested', sa.Integer(), nullable=False),
    sa.Column('already_archived', sa.Integer(), nullable=False),
    sa.Column('flagged', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('bytes_copied', sa.BigInteger(), nullable=False),
    sa.Column('failures', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('recordings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('sm3', sa.String(length=64), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('media_type', sa.String(length=8), nullable=False),
    sa.Column('original_path', sa.Text(), nullable=False),
    sa.Column('device_serial', sa.String(length=64), nullable=True),
    sa.Column('officer_no', sa.String(length=64), nullable=True),
    sa.Column('start', sa.DateTime(), nullable=True),
    sa.Column('end', sa.DateTime(), nullable=True),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('archive_path', sa.Text(), nullable=False),
    sa.Column('ingested_at', sa.DateTime(), nullable=False),
    sa.Column('verified_at', sa.DateTime(), nullable=False),
    sa.Column('flags', sa.JSON(), nullable=False),
    sa.Column('media', sa.JSON(), nullable=True),
    sa.Column('ingest_run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['ingest_run_id'], ['ingest_runs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('archive_path'),
    sa.UniqueConstraint('sha256')
    )
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recordings_device_serial'), ['device_serial'], unique=False)
        batch_op.create_index(batch_op.f('ix_recordings_officer_no'), ['officer_no'], unique=False)
        batch_op.create_index(batch_op.f('ix_recordings_start'), ['start'], unique=False)

    op.create_table('sightings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recording_id', sa.Integer(), nullable=False),
    sa.Column('ingest_run_id', sa.Integer(), nullable=True),
    sa.Column('device_key', sa.String(length=64), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('original_path', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('mtime_ns', sa.BigInteger(), nullable=False),
    sa.Column('seen_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['ingest_run_id'], ['ingest_runs.id'], ),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sightings', schema=None) as batch_op:
        batch_op.create_index('ix_sightings_key', ['device_key', 'original_path', 'size', 'mtime_ns'], unique=False)
        batch_op.create_index(batch_op.f('ix_sightings_recording_id'), ['recording_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('sightings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sightings_recording_id'))
        batch_op.drop_index('ix_sightings_key')

    op.drop_table('sightings')
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recordings_start'))
        batch_op.drop_index(batch_op.f('ix_recordings_officer_no'))
        batch_op.drop_index(batch_op.f('ix_recordings_device_serial'))

    op.drop_table('recordings')
    op.drop_table('ingest_runs')
    op.drop_table('devices')
