"""A station's database login at the centre (PostgreSQL): it may append lines to the inbox for its own station
(through `archiver_hand_in`, which takes the station from the login, never from the caller; row-level security
on the inbox besides), read its own head, receipts and refusals through three views, and nothing else: no
table of the county's catalog, no other station's row. The centre's own process, as the tables' owner, does
the rest."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from archiver.catalog import StationLogin

# What the login is granted, beyond connecting (all made by migration 0009): handing lines in for its own
# station through one function, and reading its own head, receipts and refusals. No table at all.
_GRANTS = (
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT EXECUTE ON FUNCTION archiver_hand_in(jsonb) TO {role}",
    "GRANT SELECT ON station_self, station_own_receipts, station_own_refusals, alembic_version TO {role}",
    "GRANT EXECUTE ON FUNCTION archiver_login_station() TO {role}",
)


def role_name(station_id: str) -> str:
    """A login name of the station's own, unique in the server (roles are shared by its databases)."""
    return f"arcv_{re.sub(r'[^a-z0-9_]', '_', station_id.lower())[:40]}_{secrets.token_hex(4)}"


def make_login(session: Session, station_id: str) -> str:
    """Make the station's login in this transaction; the URL the station sets as [central] url (with its
    password: shown once)."""
    role, password = role_name(station_id), secrets.token_hex(24)
    quoted = f'"{role}"'
    session.execute(text(f"CREATE ROLE {quoted} LOGIN NOINHERIT PASSWORD '{password}'"))
    database = session.execute(text("SELECT current_database()")).scalar_one()
    session.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO {quoted}'))
    for grant in _GRANTS:
        session.execute(text(grant.format(role=quoted)))
    session.add(StationLogin(role=role, station=station_id))
    url = make_url(session.get_bind().url.render_as_string(hide_password=False))
    return url.set(username=role, password=password).render_as_string(hide_password=False)
