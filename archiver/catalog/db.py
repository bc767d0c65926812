"""Opening the catalog: engine, sessions, schema upgrades through Alembic."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from sqlalchemy import ARRAY, Engine, any_, create_engine, event, literal, make_url, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from archiver.errors import ArchiveStorageError, DataDirError
from archiver.i18n import _

if TYPE_CHECKING:
    from archiver.config import Config

CATALOG_FILE = "catalog.db"
_MIGRATIONS = Path(__file__).parent / "migrations"


# The newest migration; tests/test_catalog.py checks it against Alembic's own head. Kept as a
# constant so that commands that only read the catalog need not import Alembic (start-up time).
SCHEMA_HEAD = "0010"


def _alembic_config():
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head() or ""


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Transactions are begun by us (see _sqlite_begin), not by the driver.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # evidence: a committed row survives power loss
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn) -> None:
    # A writer takes the write lock when its transaction starts: two ingests writing at once then queue on
    # busy_timeout instead of failing with "database is locked" when a read turns into a write. A reader
    # (Catalog.reading) starts deferred: under WAL it reads a snapshot, and neither waits for a writer nor
    # holds one up, so lookups through the station service never slow an ingest down.
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("archiver_read_only") else "BEGIN IMMEDIATE")


class Catalog:
    """A catalog database: the engine plus a session factory."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url)
        self.url = shown_url(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readers = sessionmaker(self.engine.execution_options(archiver_read_only=True), expire_on_commit=False)

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> Catalog:
        return cls(f"sqlite:///{data_dir / CATALOG_FILE}")

    @classmethod
    def for_config(cls, cfg: Config) -> Catalog:
        """The catalog a config names: `catalog.url` (the centre's PostgreSQL), else SQLite in the data dir."""
        return cls(cfg.catalog_url) if cfg.catalog_url else cls.for_data_dir(cfg.data_dir)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def session(self) -> Session:
        return self._sessions()

    def reading(self) -> Session:
        """A session that only reads (on SQLite: a deferred transaction, no write lock)."""
        return self._readers()

    def revision(self) -> str | None:
        with self.engine.connect() as conn:
            if not self.engine.dialect.has_table(conn, "alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def upgrade(self) -> tuple[str | None, str]:
        """Create or upgrade the schema to the newest migration. Returns (before, after)."""
        before = self.revision()
        if before == SCHEMA_HEAD:
            return before, SCHEMA_HEAD  # the usual case: no need to load Alembic (a tenth of a second)
        from alembic import command

        cfg = _alembic_config()
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        return before, SCHEMA_HEAD

    def require_current(self) -> None:
        """Refuse to work on a catalog that is missing or older than this program."""
        try:
            current = self.revision()
        except SQLAlchemyError as exc:
            raise DataDirError(_("cannot open the catalog {url}: {value}").format(
                                 url=self.url, value=exc.orig or exc)) from exc
        if current is None:
            raise DataDirError(_("no catalog at {url}: run 'archiver init' first").format(url=self.url))
        if current != SCHEMA_HEAD:
            raise DataDirError(_("the catalog {url} is at schema {current}, this program needs {schema_head}: "
                                 "run 'archiver init' to upgrade it").format(
                                 url=self.url, current=current, schema_head=SCHEMA_HEAD))

    def close(self) -> None:
        self.engine.dispose()


def one_of(session: Session, column, values: list):
    """`column IN (values)`. On PostgreSQL, `= ANY(array)`: one parameter, not one per value, so a batch of
    thousands of ids is not compiled and parsed value by value (it was most of `cases check --all`)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(list(values), ARRAY(column.type)))
    return column.in_(values)


def shown_url(url: str) -> str:
    """A database URL as messages may show it: without its password."""
    return unquote(make_url(url).render_as_string(hide_password=True))  # ?host=/run/... as written, not %2F


def commit(session: Session) -> None:
    """Commit; a constraint violation is re-raised as is, any other failure becomes a storage error."""
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise
    except SQLAlchemyError as exc:
        session.rollback()
        raise catalog_error(exc) from exc


def catalog_error(exc: SQLAlchemyError) -> ArchiveStorageError:
    """What a failed catalog operation means, in one line."""
    text = str(getattr(exc, "orig", exc))
    if "full" in text.lower():
        return ArchiveStorageError(_("catalog disk full ({text}): free space, then run again").format(text=text))
    if "locked" in text.lower() or "busy" in text.lower():
        return ArchiveStorageError(_("the catalog is held by another process ({text}) for longer than 30 s: wait "
                                     "for it to finish (or stop it), then run again").format(
                                     text=text))
    return ArchiveStorageError(_("cannot write the catalog: {text}").format(text=text))
