"""Backup objects: what is on which target, with plaintext and ciphertext hashes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 11:12:01
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('backup_objects',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('target', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('recording_id', sa.Integer(), nullable=True),
    sa.Column('plain_sha256', sa.String(length=64), nullable=False),
    sa.Column('ciphertext_sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('backup_objects', schema=None) as batch_op:
        batch_op.create_index('ix_backup_objects_target_recording', ['target', 'recording_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('backup_objects', schema=None) as batch_op:
        batch_op.drop_index('ix_backup_objects_target_recording')

    op.drop_table('backup_objects')
