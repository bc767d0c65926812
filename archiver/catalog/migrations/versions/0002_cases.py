"""Cases, their actions and officers, automatic and manual links; indexes for linking by officer and time.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:40:18
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_no', sa.String(length=200), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('imported_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('case_no')
    )
    op.create_table('actions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('stage', sa.String(length=100), nullable=False),
    sa.Column('start', sa.DateTime(), nullable=False),
    sa.Column('end', sa.DateTime(), nullable=False),
    sa.Column('recording_required', sa.Boolean(), nullable=False),
    sa.Column('link_from', sa.DateTime(), nullable=False),
    sa.Column('link_to', sa.DateTime(), nullable=False),
    sa.Column('scan_from', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_actions_case_id'), ['case_id'], unique=False)
        batch_op.create_index('ix_actions_link_window', ['link_from', 'link_to'], unique=False)

    op.create_table('action_links',
    sa.Column('action_id', sa.Integer(), nullable=False),
    sa.Column('recording_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['action_id'], ['actions.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ),
    sa.PrimaryKeyConstraint('action_id', 'recording_id')
    )
    with op.batch_alter_table('action_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_action_links_recording_id'), ['recording_id'], unique=False)

    op.create_table('action_officers',
    sa.Column('action_id', sa.Integer(), nullable=False),
    sa.Column('officer_no', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['action_id'], ['actions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('action_id', 'officer_no')
    )
    with op.batch_alter_table('action_officers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_action_officers_officer_no'), ['officer_no'], unique=False)

    op.create_table('case_links',
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('recording_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('by', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ),
    sa.PrimaryKeyConstraint('case_id', 'recording_id')
    )
    with op.batch_alter_table('case_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_links_recording_id'), ['recording_id'], unique=False)

    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.create_index('ix_recordings_device_start', ['device_serial', 'start'], unique=False)
        batch_op.create_index('ix_recordings_officer_start', ['officer_no', 'start'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.drop_index('ix_recordings_officer_start')
        batch_op.drop_index('ix_recordings_device_start')

    with op.batch_alter_table('case_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_links_recording_id'))

    op.drop_table('case_links')
    with op.batch_alter_table('action_officers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_action_officers_officer_no'))

    op.drop_table('action_officers')
    with op.batch_alter_table('action_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_action_links_recording_id'))

    op.drop_table('action_links')
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_index('ix_actions_link_window')
        batch_op.drop_index(batch_op.f('ix_actions_case_id'))

    op.drop_table('actions')
    op.drop_table('cases')
