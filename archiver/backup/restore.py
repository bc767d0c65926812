"""Restoring from a backup target with an identity: recordings, or a whole station.

A target may be in hostile hands, so nothing it says is taken on its word. A whole station comes
only from a snapshot whose descriptor is signed by the station key the operator pins (or, with
`trust_target`, by whatever key the target's newest snapshot names, shown to the operator); each
part must hash as the descriptor says, before and after decryption; each recording must decrypt
to the SHA-256 the signed catalog holds. Every path is confined to DEST and written without
following symlinks; a whole-station restore is built in a staging folder and only renamed to
DEST once complete, so a failure leaves nothing half-restored.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from archiver.archive.manifests import write_day_manifests
from archiver.archive.store import FOOTAGE_MODE, Archive
from archiver.backup.age import AgeError, Identity, decrypt
from archiver.backup.disk import open_object
from archiver.backup.objects import HashingReader, HashingWriter, object_name
from archiver.backup.snapshots import DESCRIPTOR, SNAPSHOT_FORMAT, SNAPSHOT_PARTS, STAMP
from archiver.catalog import Catalog, Recording
from archiver.catalog.db import CATALOG_FILE
from archiver.errors import ArchiverError, BackupError
from archiver.fs import NAME_MAX, Folder, new_or_empty
from archiver.fs.sweep import staged_folder
from archiver.i18n import _
from archiver.ledger.custody import LOG_NAME, log_head
from archiver.ledger.keys import KEY_DIR, PublicKey, signed_by

_ARCHIVE_PATH = re.compile(r"^archive/\d{4}/\d{2}/\d{2}/[^/]+/[^/]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PLACES = {"catalog": (CATALOG_FILE, 0o640), "custody": (LOG_NAME, 0o640),
           "station.key": (f"{KEY_DIR}/station.key", 0o600), "station.pub": (f"{KEY_DIR}/station.pub", 0o640)}


def confined(rel: str) -> PurePosixPath:
    """`rel` as a path that stays inside the folder it is restored to: relative, no '..', no empty or
    dot component, no NUL, each name short enough for the filesystem. Anything else is refused."""
    path = PurePosixPath(rel)
    if not rel or "\0" in rel or path.is_absolute() or any(
            part in ("", ".", "..") or part.startswith(".") or len(part.encode()) > NAME_MAX for part in path.parts) \
            or str(path) != rel:
        raise BackupError(_("refusing to restore to {rel!r}: not a plain path inside the destination").format(
                            rel=rel))
    return path


def restore_object(target: Path, name: str, dest: Folder, filename: str, identities: list[Identity],
                   plain_sha256: str, ciphertexts: set[str] | None, mode: int = FOOTAGE_MODE) -> None:
    """Decrypt one object into `dest/filename` (temp, fsync, rename), refusing it unless its plaintext
    (and, where the station recorded them, its ciphertext) hashes as expected."""
    try:
        src = open_object(target, name)
    except (FileNotFoundError, NotADirectoryError):
        raise BackupError(_("{value} is missing from the backup target: try another target").format(
                            value=target / name)) from None
    try:
        with src, dest.new_file(filename, mode) as out:  # committed only if every check below passes
            reader, plain = HashingReader(src), HashingWriter(out)
            try:
                decrypt(reader, plain, identities)
            except AgeError as exc:
                raise BackupError(_("cannot decrypt {value}: {exc}").format(value=target / name, exc=exc)) from exc
            if ciphertexts is not None and reader.drain() not in ciphertexts:
                raise BackupError(_("{value} is not the object the station wrote (its ciphertext hash differs): "
                                    "try another target").format(
                                    value=target / name))
            if plain.sha256.hexdigest() != plain_sha256:
                raise BackupError(_("{value} decrypts to other bytes than were backed up: try another target").format(
                                    value=target / name))
    except OSError as exc:
        raise BackupError(_("cannot write {value}: {value2}").format(
                            value=dest.path / filename, value2=exc.strerror or exc)) from exc


def restore_recordings(target: Path, recordings: list[Recording], dest: Path, identities: list[Identity],
                       ciphertexts: dict[int, set[str]]) -> int:
    """Restore recordings under `dest`, each at its archive path; `ciphertexts` holds, per recording id,
    the ciphertext hashes the station recorded for its objects."""
    for rec in recordings:
        rel = confined(rec.archive_path)
        with Folder.open(dest, rel.parent, create=True) as folder:
            if folder.exists(rel.name):
                raise BackupError(_("{value} already exists: restore into a new or empty folder").format(
                                    value=dest / rel))
            restore_object(target, object_name(rec.sha256), folder, rel.name, identities, rec.sha256,
                           ciphertexts.get(rec.id) or None)
    return len(recordings)


@dataclass(frozen=True)
class Snapshot:
    stamp: str
    key: PublicKey
    parts: dict[str, dict[str, Any]]
    custody_head: dict[str, Any] | None


def find_snapshot(target: Path, pinned: PublicKey | None) -> tuple[Snapshot | None, int]:
    """The newest snapshot signed by `pinned` (or, without a pin, by the key it names itself), and how
    many snapshot folders were passed over (unsigned, signed by another key, malformed)."""
    try:
        with Folder.open(target, "snapshots") as folder:
            stamps = sorted((n for n in os.listdir(folder.fd) if STAMP.match(n)), reverse=True)
    except FileNotFoundError:
        return None, 0
    skipped = 0
    for stamp in stamps:
        snapshot = _read_descriptor(target, stamp, pinned)
        if snapshot is not None:
            return snapshot, skipped
        skipped += 1
    return None, skipped


def _read_descriptor(target: Path, stamp: str, pinned: PublicKey | None) -> Snapshot | None:
    try:
        with Folder.open(target, f"snapshots/{stamp}") as folder:
            descriptor = json.loads(folder.read_bytes(DESCRIPTOR))
        key = PublicKey.parse(descriptor["station_key"])
        parts = descriptor["parts"]
    except (OSError, ArchiverError, ValueError, KeyError, TypeError):
        return None
    if descriptor.get("format") != SNAPSHOT_FORMAT or descriptor.get("stamp") != stamp \
            or (pinned is not None and key != pinned) or not signed_by(descriptor, key) \
            or not isinstance(parts, dict) or set(parts) != set(SNAPSHOT_PARTS):
        return None
    for part, entry in parts.items():
        if not isinstance(entry, dict) or entry.get("object") != f"snapshots/{stamp}/{part}.age" \
                or not all(_SHA256.match(str(entry.get(k, ""))) for k in ("plain_sha256", "ciphertext_sha256")):
            return None
    return Snapshot(stamp, key, parts, descriptor.get("custody_head"))


def restore_station(target: Path, dest: Path, identities: list[Identity], hashes: tuple[str, ...],
                    pinned: PublicKey | None, trust_target: bool = False, group: int | None = None,
                    log: Callable[[Path, Snapshot], None] | None = None) -> tuple[int, Snapshot]:
    """Rebuild a whole data dir in `dest` from the newest snapshot signed by the pinned station key:
    catalog, custody log, keys, every recording its catalog lists, the day manifests. `log` writes the
    restore's custody event into the restored station's own log, before the data dir appears at `dest`."""
    if pinned is None and not trust_target:
        raise BackupError(_("give the station's public key with --station-key (ed25519:..., its station.pub, or "
                            "an export of it) so that a forged snapshot cannot be restored; --trust-target "
                            "restores whatever the target's newest snapshot claims, signed by any key"))
    if not new_or_empty(dest):
        raise BackupError(_("{dest} is not a new or empty folder: restore a whole station into a new or empty "
                            "folder").format(dest=dest))
    snapshot, skipped = find_snapshot(target, pinned)
    if snapshot is None:
        whose = f"the station key {pinned.fingerprint}" if pinned else "the key it names"
        raise BackupError(_("{target} holds no snapshot signed by {whose} ({skipped} passed over as unsigned, "
                            "signed by another key or malformed): nothing restored; check the key and the "
                            "target").format(target=target, whose=whose, skipped=skipped))
    with staged_folder(dest, "restore", group) as staging:
        count = _restore_into(target, staging, snapshot, identities, hashes)
        if log is not None:
            log(staging, snapshot)
    return count, snapshot


def _restore_into(target: Path, root: Path, snapshot: Snapshot, identities: list[Identity],
                  hashes: tuple[str, ...]) -> int:
    for part in SNAPSHOT_PARTS:
        entry = snapshot.parts[part]
        rel, mode = _PLACES[part]
        where = PurePosixPath(rel)
        with Folder.open(root, where.parent, create=True) as folder:
            restore_object(target, entry["object"], folder, where.name, identities, entry["plain_sha256"],
                           {entry["ciphertext_sha256"]}, mode)
    if PublicKey.parse((root / KEY_DIR / "station.pub").read_text()) != snapshot.key:
        raise BackupError(_("the snapshot's station.pub is not the key that signed it: nothing restored"))
    head = log_head(root / LOG_NAME)
    expected = snapshot.custody_head
    if (head is None) != (expected is None) or (head and (head.seq, head.hash) != (expected["seq"], expected["hash"])):
        raise BackupError(_("the snapshot's custody log does not end at the head its descriptor names: nothing "
                            "restored"))
    recordings, ciphertexts = _catalogued(root / CATALOG_FILE)
    count = restore_recordings(target, recordings, root, identities, ciphertexts)
    catalog = Catalog.for_data_dir(root)
    try:
        write_day_manifests(Archive(root), catalog, {(root / r.archive_path).parent.parent for r in recordings},
                            hashes)
    finally:
        catalog.close()
    return count


def _catalogued(path: Path) -> tuple[list[Recording], dict[int, set[str]]]:
    """The recordings of a restored catalog and the ciphertext hashes recorded for their objects, read
    with plain SQL (the catalog may be of an older schema than this program)."""
    db = sqlite3.connect(path)
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(recordings)")}
        live = " WHERE purged_at IS NULL" if "purged_at" in columns else ""  # tombstones have no file
        rows = db.execute(f"SELECT id, sha256, archive_path FROM recordings{live} ORDER BY id").fetchall()
        objects = db.execute("SELECT recording_id, ciphertext_sha256 FROM backup_objects "
                             "WHERE kind = 'recording'").fetchall()
    except sqlite3.Error as exc:
        raise BackupError(_("the snapshot's catalog cannot be read ({exc}): nothing restored").format(exc=exc)) from exc
    finally:
        db.close()
    recordings = []
    for rec_id, sha256, archive_path in rows:
        if not isinstance(sha256, str) or not _SHA256.match(sha256) or not isinstance(archive_path, str) \
                or not _ARCHIVE_PATH.match(archive_path):
            raise BackupError(_("the snapshot's catalog names recording #{rec_id} at {archive_path!r}: not a "
                                "path in the archive; nothing restored").format(
                                rec_id=rec_id, archive_path=archive_path))
        confined(archive_path)
        recordings.append(Recording(id=rec_id, sha256=sha256, archive_path=archive_path))
    ciphertexts: dict[int, set[str]] = {}
    for rec_id, digest in objects:
        ciphertexts.setdefault(rec_id, set()).add(digest)
    return recordings, ciphertexts
