"""Restoring from a backup target with an identity: recordings, or a whole station."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select

from archiver.backup.age import AgeError, Identity, decrypt
from archiver.backup.targets import BackupError, HashingWriter, read_manifest
from archiver.catalog import Catalog, Recording
from archiver.catalog.db import CATALOG_FILE
from archiver.fs import fsync_dir, temp_name
from archiver.ingest.manifests import write_day_manifests
from archiver.ingest.store import Archive
from archiver.ledger.custody import LOG_NAME
from archiver.ledger.keys import KEY_DIR


def restore_object(target: Path, name: str, plain_sha256: str, dest: Path, identities: list[Identity],
                   mode: int = 0o444) -> None:
    """Decrypt one object to `dest` (temp + fsync + rename), refusing bytes that do not hash right."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_name(temp_name(dest.name))
    try:
        with (target / name).open("rb") as src, temp.open("wb") as fh:
            out = HashingWriter(fh)
            decrypt(src, out, identities)
            fh.flush()
            os.fsync(fh.fileno())
        if out.sha256.hexdigest() != plain_sha256:
            raise BackupError(f"{target / name} decrypts to other bytes than were backed up: try another target")
        temp.chmod(mode)
        os.replace(temp, dest)
        fsync_dir(dest.parent)
    except FileNotFoundError:
        raise BackupError(f"{target / name} is missing from the backup target") from None
    except AgeError as exc:
        raise BackupError(f"cannot decrypt {target / name}: {exc}") from exc
    finally:
        temp.unlink(missing_ok=True)


def _objects(target: Path) -> dict[str, dict]:
    return {e["plain_sha256"]: e for e in read_manifest(target) if e["kind"] == "recording"}


def restore_recordings(target: Path, recordings: list[Recording], dest: Path, identities: list[Identity]) -> int:
    """Restore recordings under `dest`, each at its archive path."""
    objects = _objects(target)
    for rec in recordings:
        entry = objects.get(rec.sha256)
        if entry is None:
            raise BackupError(f"recording #{rec.id} ({rec.sha256[:16]}...) is not on {target}: run 'archiver backup "
                              "run' or restore from another target")
        restore_object(target, entry["object"], rec.sha256, dest / rec.archive_path, identities)
    return len(recordings)


def restore_station(target: Path, dest: Path, identities: list[Identity], hashes: tuple[str, ...]) -> int:
    """Rebuild a whole data dir in `dest`: the newest snapshot (catalog, custody log, keys), then every
    recording the snapshot's catalog lists, then the day manifests."""
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty: restore a whole station into a new or empty folder")
    snapshots = {}
    for entry in read_manifest(target):
        if entry["object"].startswith("snapshots/"):
            snapshots.setdefault(entry["object"].split("/")[1], {})[entry["kind"]] = entry
    complete = sorted(stamp for stamp, parts in snapshots.items() if len(parts) == 4)
    if not complete:
        raise BackupError(f"{target} holds no complete station snapshot: run 'archiver backup run' first")
    parts = snapshots[complete[-1]]
    places = {"catalog": (dest / CATALOG_FILE, 0o640), "custody": (dest / LOG_NAME, 0o640),
              "station.key": (dest / KEY_DIR / "station.key", 0o600),
              "station.pub": (dest / KEY_DIR / "station.pub", 0o644)}
    for kind, (path, mode) in places.items():
        restore_object(target, parts[kind]["object"], parts[kind]["plain_sha256"], path, identities, mode)
    catalog = Catalog.for_data_dir(dest)
    try:
        with catalog.session() as session:
            recordings = list(session.scalars(select(Recording).order_by(Recording.id)))
        count = restore_recordings(target, recordings, dest, identities)
        archive = Archive(dest)
        write_day_manifests(archive, catalog, {(dest / r.archive_path).parent.parent for r in recordings}, hashes)
    finally:
        catalog.close()
    return count
