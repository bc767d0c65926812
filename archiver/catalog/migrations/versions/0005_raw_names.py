"""The original bytes of a path that is not valid UTF-8 (kept exactly; original_path holds it escaped).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 13:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('recordings') as batch:
        batch.add_column(sa.Column('original_path_bytes', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('recordings') as batch:
        batch.drop_column('original_path_bytes')
