"""Opening a data dir: the archive folder, the catalog, the station key and the custody log."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from archiver.archive.datadir import (
    RESERVE_BYTES,
    check_data_dir,
    keep_reserve,
    open_archive,
    release_reserve,
    trusted_owners,
)
from archiver.archive.store import Archive
from archiver.catalog import Catalog
from archiver.config import Config
from archiver.errors import DataDirError
from archiver.i18n import _
from archiver.ledger.custody import CustodyLog, local_actor
from archiver.ledger.keys import StationKey, ensure_station_key, load_station_key

log = logging.getLogger(__name__)


@dataclass
class Workspace:
    cfg: Config
    archive: Archive
    catalog: Catalog
    custody: CustodyLog
    station_key: StationKey
    schema_before: str | None = None  # the catalog's schema before this open upgraded it

    def close(self) -> None:
        self.catalog.close()

    def make_room(self) -> None:
        """On a nearly full disk, give the reserve up so lookups go on (the daemon before each request)."""
        make_room(self.cfg.data_dir)

    def acting(self, actor: dict) -> Workspace:
        """This workspace, its custody events naming `actor` (a person the station service serves)."""
        return dataclasses.replace(self, custody=self.custody.as_actor(actor))


def make_room(data_dir: Path) -> bool:
    """Give the data dir's reserve up if the disk is nearly full, saying so in the log; whether it was."""
    if not release_reserve(data_dir):
        return False
    log.warning("disk full data_dir=%s: the reserve of %d bytes was given up so lookups go on; free space, then "
                "the next ingest makes it again", data_dir, RESERVE_BYTES)
    return True


def open_workspace(cfg: Config, *, upgrade: bool) -> Workspace:
    """Open the data dir. With `upgrade`, create it, its key and catalog and bring the schema up to date
    (what `init`, `ingest` and the daemon do); without, refuse a missing or outdated catalog."""
    owners = trusted_owners(cfg)
    room_made = cfg.data_dir.is_dir() and make_room(cfg.data_dir)
    if upgrade:
        archive = open_archive(cfg)
        catalog = Catalog.for_config(cfg)
        before, _after = catalog.upgrade()
        created = ensure_station_key(cfg.data_dir)
    else:
        if not cfg.data_dir.is_dir():
            raise DataDirError(_("data dir {data_dir} does not exist: run 'archiver init' or set --data-dir").format(
                                 data_dir=cfg.data_dir))
        check_data_dir(cfg.data_dir, owners)
        archive = Archive(cfg.data_dir)
        catalog = Catalog.for_config(cfg)
        catalog.require_current()
        before, created = catalog.revision(), False
    key = load_station_key(cfg.data_dir, owners)
    custody = CustodyLog(cfg.data_dir, key, catalog, local_actor(cfg.access.service_user))
    if created:  # the custody log starts with the station key it is signed with
        custody.append("init", {"data_dir": str(cfg.data_dir)},
                       {"station_key": custody.public_key.text, "schema": catalog.revision()})
    if upgrade and not room_made:
        keep_reserve(cfg.data_dir)
    return Workspace(cfg, archive, catalog, custody, key, before)
