"""The catalog schema: Alembic migrations match the models; init creates, then finds it current."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from archiver.catalog import Catalog
from archiver.catalog.db import SCHEMA_HEAD, head_revision
from archiver.catalog.models import Base


def test_the_schema_head_constant_is_alembics_head():
    assert SCHEMA_HEAD == head_revision()


def test_migrations_build_exactly_the_models(tmp_path: Path):
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    before, after = catalog.upgrade()
    assert (before, after) == (None, head_revision())
    with catalog.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    catalog.close()


def test_init_creates_then_reports_current_and_uses_wal(cli, data_dir: Path):
    first = cli("init")
    assert first.exit_code == 0
    assert first.stdout == (f"Data dir {data_dir}: catalog created at schema {head_revision()}; "
                            f"archive in {data_dir / 'archive'}.\n")
    second = cli("init")
    assert "catalog up to date" in second.stdout
    db = sqlite3.connect(data_dir / "catalog.db")
    assert db.execute("pragma journal_mode").fetchone() == ("wal",)


def test_lookup_refuses_an_outdated_catalog(cli, data_dir: Path):
    assert cli("init").exit_code == 0
    db = sqlite3.connect(data_dir / "catalog.db")
    db.execute("update alembic_version set version_num = '0000'")
    db.commit()
    result = cli("recordings", "list")
    assert result.exit_code == 2
    assert "run 'archiver init' to upgrade it" in result.stderr
