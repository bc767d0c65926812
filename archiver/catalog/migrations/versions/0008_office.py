"""The office as it is: a case's party (当事人) and kind (案件类型), the personnel register (姓名 -> 执法证号,
the OS user, the recorders each carries).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 10:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cases') as batch:
        batch.add_column(sa.Column('party', sa.Text(), nullable=True))
        batch.add_column(sa.Column('kind', sa.String(64), nullable=True))
    op.create_table(
        'people',
        sa.Column('officer_no', sa.String(64), primary_key=True),
        sa.Column('name', sa.String(64), nullable=False),
        sa.Column('user', sa.String(64), nullable=True),
        sa.Column('serials', sa.JSON(), nullable=False),
        sa.Column('imported_at', sa.DateTime(), nullable=False),
    )
    op.create_index('ix_people_name', 'people', ['name'])


def downgrade() -> None:
    op.drop_index('ix_people_name', 'people')
    op.drop_table('people')
    with op.batch_alter_table('cases') as batch:
        batch.drop_column('kind')
        batch.drop_column('party')
