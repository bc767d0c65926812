"""Opening a data dir: the archive folder, the catalog, the station key and the custody log."""

from __future__ import annotations

from dataclasses import dataclass

from archiver.catalog import Catalog
from archiver.config import Config
from archiver.errors import DataDirError
from archiver.ingest.store import Archive, prepare_data_dir
from archiver.ledger.custody import CustodyLog
from archiver.ledger.keys import ensure_station_key, load_station_key


@dataclass
class Workspace:
    cfg: Config
    archive: Archive
    catalog: Catalog
    custody: CustodyLog
    schema_before: str | None = None  # the catalog's schema before this open upgraded it

    def close(self) -> None:
        self.catalog.close()


def open_workspace(cfg: Config, *, upgrade: bool) -> Workspace:
    """Open the data dir. With `upgrade`, create it, its key and catalog and bring the schema up to date
    (what `init`, `ingest` and the daemon do); without, refuse a missing or outdated catalog."""
    if upgrade:
        archive = prepare_data_dir(cfg.data_dir)
        catalog = Catalog.for_data_dir(cfg.data_dir)
        before, _ = catalog.upgrade()
        created = ensure_station_key(cfg.data_dir)
    else:
        if not cfg.data_dir.is_dir():
            raise DataDirError(f"data dir {cfg.data_dir} does not exist: run 'archiver init' or set --data-dir")
        archive = Archive(cfg.data_dir)
        catalog = Catalog.for_data_dir(cfg.data_dir)
        catalog.require_current()
        before, created = catalog.revision(), False
    custody = CustodyLog(cfg.data_dir, load_station_key(cfg.data_dir), catalog)
    if created:  # the custody log starts with the station key it is signed with
        custody.append("init", {"data_dir": str(cfg.data_dir)},
                       {"station_key": custody.public_key.text, "schema": catalog.revision()})
    return Workspace(cfg, archive, catalog, custody, before)
