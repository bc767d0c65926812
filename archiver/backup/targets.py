"""Write-only backups: every recording as one age object on every target, plus station snapshots.

A target holds
    objects/<sha256[:2]>/<sha256>.age          one recording, encrypted to backup.recipients
    snapshots/<time>/<part>.age                catalog (SQLite backup API), custody log, station keys
    backup-manifest.jsonl                      plaintext: object, kind, plain and ciphertext SHA-256, size, time
Objects are written to a temp name, fsynced and renamed; only then are they listed in the manifest
and the catalog. Killed mid-run, the next run redoes only what is not listed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import tempfile
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import func, select

from archiver.backup.age import AgeError, Identity, Recipient, decrypt, encrypt, read_identities
from archiver.catalog import BackupObject, Recording
from archiver.catalog.db import CATALOG_FILE, commit
from archiver.config import Config
from archiver.errors import ArchiverError, ArchiveStorageError
from archiver.fs import fsync_dir, sweep_temp_files, temp_name
from archiver.ledger.custody import LOG_NAME
from archiver.ledger.keys import KEY_DIR
from archiver.workspace import Workspace

MANIFEST = "backup-manifest.jsonl"
SNAPSHOT_PARTS = ("catalog", "custody", "station.key", "station.pub")
WORKERS = 2


class BackupError(ArchiverError):
    """Backups cannot run as configured (no recipients, a private key in the config, no targets)."""


class BackupTargetError(ArchiveStorageError):
    """A backup target is missing, full or failing; what was written before stays recorded."""


def recipients(cfg: Config) -> list[Recipient]:
    """The configured recipients; refuses a configuration that holds any private key."""
    for path in cfg.files:
        if "AGE-SECRET-KEY-" in path.read_text(errors="replace").upper():
            raise BackupError(f"{path} contains an age private key (AGE-SECRET-KEY-...): remove it; the station "
                              "must only hold the recipients' public keys (age1...)")
    if not cfg.backup.recipients:
        raise BackupError("backup.recipients is empty: add the age1... public keys that may decrypt the backups "
                          "(e.g. the county office's and a sealed escrow key)")
    try:
        return [Recipient.parse(r) for r in cfg.backup.recipients]
    except AgeError as exc:
        raise BackupError(f"backup.recipients: {exc}") from exc


def _targets(cfg: Config) -> tuple[Path, ...]:
    if not cfg.backup.targets:
        raise BackupError("backup.targets is empty: add the folders (second disk, NAS mount) to back up to")
    return cfg.backup.targets


def _usable(target: Path) -> None:
    if not target.is_dir():
        raise BackupTargetError(f"backup target {target} is missing (not mounted?): mount it, then run the "
                                "backup again; nothing was marked backed up there")
    if not os.access(target, os.W_OK):
        raise BackupTargetError(f"backup target {target} is not writable: fix its permissions")


def _target_error(exc: OSError, target: Path) -> BackupTargetError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return BackupTargetError(f"backup target {target} is full: free space or add a disk, then run the backup "
                                 "again; objects written before stay recorded")
    return BackupTargetError(f"cannot write to backup target {target}: {exc.strerror or exc}")


class HashingWriter:
    """A write-only sink that hashes and counts what goes through it, passing it on to `fh` if given."""

    def __init__(self, fh: BinaryIO | None = None) -> None:
        self._fh, self.sha256, self.size = fh, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self._fh.write(data) if self._fh is not None else len(data)


def _put(target: Path, name: str, source: Path, to: list[Recipient]) -> tuple[str, int]:
    """Encrypt `source` to `target/name` atomically. Returns (ciphertext sha256, size)."""
    final = target / name
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.with_name(temp_name(final.name))
    try:
        with source.open("rb") as src, temp.open("wb") as out:
            sink = HashingWriter(out)
            encrypt(src, sink, to)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, final)
        fsync_dir(final.parent)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return sink.sha256.hexdigest(), sink.size


def _list(target: Path, entry: dict[str, Any]) -> None:
    with (target / MANIFEST).open("ab") as fh:
        fh.write(json.dumps(entry, sort_keys=True, ensure_ascii=False).encode() + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


@dataclass
class BackupReport:
    targets: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"targets": self.targets}


def backup_run(ws: Workspace, cancel=None) -> BackupReport:
    """Put every recording not yet on a target there, then a fresh snapshot of the station."""
    to = recipients(ws.cfg)
    report = BackupReport()
    for target in _targets(ws.cfg):
        _usable(target)
        sweep_temp_files(target)  # left by a run that was killed
        counts = report.targets.setdefault(str(target), {"objects": 0, "bytes": 0, "snapshot_parts": 0})
        try:
            _reconcile(ws, target)
            _backup_recordings(ws, target, to, counts, cancel)
            _snapshot(ws, target, to, counts)
        except OSError as exc:
            raise _target_error(exc, target) from exc
    return report


def _backup_recordings(ws: Workspace, target: Path, to: list[Recipient], counts: dict[str, int], cancel) -> None:
    """Two objects are encrypted at a time (reading, ChaCha20 and SHA-256 all leave the GIL); each is
    listed and recorded as soon as it is complete on the target."""
    with ws.catalog.session() as session:
        done = set(session.scalars(select(BackupObject.recording_id).where(
            BackupObject.target == str(target), BackupObject.kind == "recording")))
        todo = [r for r in session.scalars(select(Recording).order_by(Recording.id)) if r.id not in done]
    queue = iter(todo)
    running: dict[Future, tuple[Recording, str]] = {}
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="backup") as pool:
        try:
            while True:
                while len(running) < WORKERS and not (cancel is not None and cancel.is_set()):
                    rec = next(queue, None)
                    if rec is None:
                        break
                    name = f"objects/{rec.sha256[:2]}/{rec.sha256}.age"
                    running[pool.submit(_put, target, name, ws.archive.data_dir / rec.archive_path, to)] = (rec, name)
                if not running:
                    return
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    rec, name = running.pop(future)
                    digest, size = future.result()
                    _record(ws, target, name, "recording", rec.id, rec.sha256, digest, size)
                    ws.custody.append("backup", {"sha256": rec.sha256, "device": rec.device_serial},
                                      {"target": str(target), "object": name, "ciphertext_sha256": digest,
                                       "size": size})
                    counts["objects"] += 1
                    counts["bytes"] += size
        finally:
            for future in running:  # let the other writer finish or clean up its temp file
                future.cancel()
            wait(running)


def _reconcile(ws: Workspace, target: Path) -> None:
    """Objects a killed run listed on the target but did not record in the catalog: adopt them (the
    manifest line is written only after the object is complete), so they are not written twice."""
    with ws.catalog.session() as session:
        known = set(session.scalars(select(BackupObject.name).where(BackupObject.target == str(target))))
        by_hash = {r.sha256: r for r in session.scalars(select(Recording))}
    for entry in read_manifest(target):
        rec = by_hash.get(entry["plain_sha256"])
        path = target / entry["object"]
        if entry["kind"] != "recording" or entry["object"] in known or rec is None or not path.is_file() \
                or path.stat().st_size != entry["size"]:
            continue
        with ws.catalog.session() as session:
            session.add(BackupObject(target=str(target), name=entry["object"], kind="recording", recording_id=rec.id,
                                     plain_sha256=rec.sha256, ciphertext_sha256=entry["ciphertext_sha256"],
                                     size=entry["size"], at=datetime.fromisoformat(entry["time"])))
            commit(session)
        known.add(entry["object"])
        ws.custody.append("backup", {"sha256": rec.sha256, "device": rec.device_serial},
                          {"target": str(target), "object": entry["object"], "adopted": True,
                           "ciphertext_sha256": entry["ciphertext_sha256"], "size": entry["size"]})


def _record(ws: Workspace, target: Path, name: str, kind: str, recording_id: int | None, plain: str,
            digest: str, size: int) -> None:
    now = datetime.now(UTC)
    _list(target, {"object": name, "kind": kind, "plain_sha256": plain, "ciphertext_sha256": digest,
                   "size": size, "time": now.isoformat(timespec="seconds")})
    with ws.catalog.session() as session:
        session.add(BackupObject(target=str(target), name=name, kind=kind, recording_id=recording_id,
                                 plain_sha256=plain, ciphertext_sha256=digest, size=size, at=now))
        commit(session)


def _snapshot(ws: Workspace, target: Path, to: list[Recipient], counts: dict[str, int]) -> None:
    """The catalog first (SQLite backup API: consistent), then the custody log, then the keys."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    with tempfile.TemporaryDirectory(dir=ws.cfg.data_dir, prefix=".tmp-snapshot-") as scratch:
        copy = Path(scratch) / CATALOG_FILE
        with sqlite3.connect(ws.cfg.data_dir / CATALOG_FILE) as live, sqlite3.connect(copy) as snap:
            live.backup(snap)
        log = Path(scratch) / LOG_NAME
        log.write_bytes(ws.custody.path.read_bytes() if ws.custody.path.exists() else b"")
        sources = {"catalog": copy, "custody": log, "station.key": ws.cfg.data_dir / KEY_DIR / "station.key",
                   "station.pub": ws.cfg.data_dir / KEY_DIR / "station.pub"}
        for part in SNAPSHOT_PARTS:
            name = f"snapshots/{stamp}/{part}.age"
            plain = hashlib.sha256(sources[part].read_bytes()).hexdigest()
            digest, size = _put(target, name, sources[part], to)
            _record(ws, target, name, part, None, plain, digest, size)
            counts["snapshot_parts"] += 1


# -- checking the targets ------------------------------------------------------------------
def read_manifest(target: Path) -> list[dict[str, Any]]:
    try:
        lines = (target / MANIFEST).read_bytes().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def backup_verify(ws: Workspace, identities: list[Identity] | None) -> tuple[int, list[dict[str, str]]]:
    """Every listed object present with its size and ciphertext hash; with identities, decrypted too."""
    problems: list[dict[str, str]] = []
    checked = 0
    for target in _targets(ws.cfg):
        if not target.is_dir():
            problems.append({"kind": "backup_target", "path": str(target), "detail": "missing (not mounted?)"})
            continue
        listed = read_manifest(target)
        names = {e["object"] for e in listed}
        with ws.catalog.session() as session:
            for (name,) in session.execute(select(BackupObject.name).where(BackupObject.target == str(target))):
                if name not in names:
                    problems.append({"kind": "backup_unlisted", "path": str(target / name),
                                     "detail": "recorded in the catalog but not in the target's manifest"})
        for entry in listed:
            checked += 1
            path = target / entry["object"]
            problem = _check_object(path, entry, identities)
            if problem:
                problems.append({"kind": problem[0], "path": str(path), "detail": problem[1]})
    return checked, problems


def _check_object(path: Path, entry: dict[str, Any], identities: list[Identity] | None) -> tuple[str, str] | None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "backup_missing", "listed in the manifest but not on the target"
    if size != entry["size"]:
        return "backup_size", f"{size} bytes, the manifest says {entry['size']}"
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    if digest.hexdigest() != entry["ciphertext_sha256"]:
        return "backup_mismatch", "ciphertext SHA-256 differs from the manifest (bit rot or tampering)"
    if identities is None:
        return None
    plain = HashingWriter()
    try:
        with path.open("rb") as fh:
            decrypt(fh, plain, identities)
    except AgeError as exc:
        return "backup_decrypt", str(exc)
    if plain.sha256.hexdigest() != entry["plain_sha256"]:
        return "backup_plaintext", "decrypts to other bytes than were backed up"
    return None


def backup_status(ws: Workspace) -> list[dict[str, Any]]:
    tz = ws.cfg.timezone
    rows = []
    with ws.catalog.session() as session:
        total = session.scalar(select(func.count()).select_from(Recording))
        for target in ws.cfg.backup.targets:
            where = BackupObject.target == str(target)
            objects, size, last = session.execute(select(func.count(), func.coalesce(func.sum(BackupObject.size), 0),
                                                         func.max(BackupObject.at)).where(where)).one()
            done = select(BackupObject.recording_id).where(where, BackupObject.kind == "recording")
            missing = select(Recording).where(Recording.id.not_in(done))
            lag = session.scalar(select(func.count()).select_from(missing.subquery()))
            oldest = session.scalar(select(func.min(Recording.ingested_at)).where(Recording.id.not_in(done)))
            rows.append({"target": str(target), "present": target.is_dir(), "objects": objects, "bytes": int(size),
                         "last_run": last.replace(tzinfo=UTC).astimezone(tz).isoformat() if last else None,
                         "recordings": total, "not_backed_up": lag,
                         "oldest_not_backed_up": oldest.astimezone(tz).isoformat() if oldest else None})
    return rows


def on_every_target(ws: Workspace, recording_id: int) -> bool:
    """Whether a recording has an object on every configured target (for clear_after = backed_up)."""
    targets = [str(t) for t in ws.cfg.backup.targets]
    if not targets:
        return False
    with ws.catalog.session() as session:
        have = set(session.scalars(select(BackupObject.target).where(BackupObject.recording_id == recording_id)))
    return all(t in have for t in targets)


def load_identities(path: Path) -> list[Identity]:
    try:
        return read_identities(path.read_text())
    except OSError as exc:
        raise BackupError(f"cannot read identity file {path}: {exc.strerror}") from exc
    except AgeError as exc:
        raise BackupError(f"{path}: {exc}") from exc
