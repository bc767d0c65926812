"""Opening a data dir: the archive folder and the catalog, created or checked."""

from __future__ import annotations

from dataclasses import dataclass

from archiver.catalog import Catalog
from archiver.config import Config
from archiver.errors import DataDirError
from archiver.store import Archive, prepare_data_dir


@dataclass
class Workspace:
    cfg: Config
    archive: Archive
    catalog: Catalog
    schema_before: str | None = None  # the catalog's schema before this open upgraded it

    def close(self) -> None:
        self.catalog.close()


def open_workspace(cfg: Config, *, upgrade: bool) -> Workspace:
    """Open the data dir. With `upgrade`, create it and bring the catalog schema up to date
    (what `init`, `ingest` and the daemon do); without, refuse a missing or outdated catalog."""
    if upgrade:
        archive = prepare_data_dir(cfg.data_dir)
        catalog = Catalog.for_data_dir(cfg.data_dir)
        before, _ = catalog.upgrade()
        return Workspace(cfg, archive, catalog, before)
    if not cfg.data_dir.is_dir():
        raise DataDirError(f"data dir {cfg.data_dir} does not exist: run 'archiver init' or set --data-dir")
    catalog = Catalog.for_data_dir(cfg.data_dir)
    catalog.require_current()
    return Workspace(cfg, Archive(cfg.data_dir), catalog, catalog.revision())
