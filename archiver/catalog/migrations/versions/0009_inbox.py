"""The centre checks for itself: stations hand their signed lines into an inbox they may only append to, the
centre's own process applies them and signs a receipt of each station's head; a station keeps the receipts.

On PostgreSQL (a centre) the inbox is guarded by row-level security, and a station's login sees only its own
head, receipts and refusals, through views; `stations add` makes the login and grants exactly that.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 11:15:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# What a station's login may call and read (created on PostgreSQL only).
_POSTGRES = [
    # the station whose login this is (NULL for any other): the one thing the policies and views ask
    """CREATE FUNCTION archiver_login_station() RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
       SET search_path = public AS $$ SELECT station FROM station_logins WHERE role = session_user $$""",
    "REVOKE ALL ON FUNCTION archiver_login_station() FROM PUBLIC",
    # the one way in: lines appended for the login's own station (never one it names), each line once
    """CREATE FUNCTION archiver_hand_in(batch jsonb) RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
       SET search_path = public AS $$
       DECLARE
         own text := archiver_login_station();
         added integer;
       BEGIN
         IF own IS NULL THEN
           RAISE EXCEPTION 'no station has the login %', session_user USING ERRCODE = '42501';
         END IF;
         INSERT INTO station_inbox (station, hash, line, facts, at)
           SELECT own, encode(sha256(convert_to(item->>'line', 'UTF8')), 'hex'), item->>'line',
                  (item->'facts')::json, now() AT TIME ZONE 'UTC'
           FROM jsonb_array_elements(batch) AS item
           ON CONFLICT (station, hash) DO NOTHING;
         GET DIAGNOSTICS added = ROW_COUNT;
         RETURN added;
       END $$""",
    "REVOKE ALL ON FUNCTION archiver_hand_in(jsonb) FROM PUBLIC",
    "ALTER TABLE station_inbox ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY own_lines ON station_inbox FOR INSERT WITH CHECK (station = archiver_login_station())",
    """CREATE VIEW station_self AS SELECT id, seq, hash, public_key FROM stations
       WHERE id = archiver_login_station()""",
    """CREATE VIEW station_own_receipts AS SELECT seq, hash, time, receipt FROM receipts
       WHERE station = archiver_login_station()""",
    """CREATE VIEW station_own_refusals AS SELECT id, seq, kind, detail, at FROM station_refusals
       WHERE station = archiver_login_station()""",
]


def upgrade() -> None:
    op.create_table(
        'station_inbox',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True, autoincrement=True),
        sa.Column('station', sa.String(64), nullable=False),
        sa.Column('hash', sa.String(64), nullable=False),
        sa.Column('line', sa.Text(), nullable=False),
        sa.Column('facts', sa.JSON(), nullable=True),
        sa.Column('at', sa.DateTime(), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint('station', 'hash', name='uq_station_inbox_line'),
    )
    op.create_table(
        'station_logins',
        sa.Column('role', sa.String(64), primary_key=True),
        sa.Column('station', sa.String(64), sa.ForeignKey('stations.id'), nullable=False, unique=True),
    )
    op.create_table(
        'receipts',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('station', sa.String(64), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('hash', sa.String(64), nullable=False),
        sa.Column('time', sa.DateTime(), nullable=False),
        sa.Column('receipt', sa.Text(), nullable=False),  # the signed receipt, one canonical JSON line
    )
    op.create_index('ix_receipts_station_seq', 'receipts', ['station', 'seq'])
    if op.get_bind().dialect.name == 'postgresql':
        for statement in _POSTGRES:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for view in ('station_own_refusals', 'station_own_receipts', 'station_self'):
            op.execute(f"DROP VIEW {view}")
        op.execute("DROP POLICY own_lines ON station_inbox")
        op.execute("DROP FUNCTION archiver_hand_in(jsonb)")
        op.execute("DROP FUNCTION archiver_login_station()")
    op.drop_index('ix_receipts_station_seq', 'receipts')
    op.drop_table('receipts')
    op.drop_table('station_logins')
    op.drop_table('station_inbox')
