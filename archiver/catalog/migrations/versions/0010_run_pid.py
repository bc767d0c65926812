"""An ingest run names the process that runs it, so that the next start closes the row of a run whose process was
killed (status `interrupted`) instead of leaving it `running` for good.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 14:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ingest_runs') as batch:
        batch.add_column(sa.Column('pid', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ingest_runs') as batch:
        batch.drop_column('pid')
