"""A backup target on a folder (a second disk, a NAS mount); its layout is the package's (`archiver.backup`).

Objects are written to a temp name, fsynced and renamed; only then are they listed in the signed manifest and
recorded in the catalog. Killed mid-run, the next run adopts what was listed but not recorded and redoes the rest.
Snapshots of the station (catalog, custody log, keys, a signed descriptor) live here too, the newest
backup.keep_snapshots kept.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from sqlalchemy import delete, select

from archiver.archive.workspace import Workspace
from archiver.backup.age import Identity, Recipient, encrypt
from archiver.backup.objects import HashingReader, HashingWriter, check_stream, object_name
from archiver.catalog import BackupObject, Recording
from archiver.catalog.db import CATALOG_FILE, commit
from archiver.errors import ArchiverError, BackupTargetError
from archiver.fs import Folder
from archiver.fs.appendlog import appending, set_aside
from archiver.fs.sweep import sweep_temp_files
from archiver.i18n import N_, _
from archiver.ledger.anchor import publish_head
from archiver.ledger.custody import LOG_NAME, Head, log_head, open_log
from archiver.ledger.keys import KEY_DIR, sign_record, signed_by
from archiver.problems import MADE, Finding, Kind

log = logging.getLogger(__name__)

MANIFEST = "backup-manifest.jsonl"
DESCRIPTOR = "snapshot.json"
SNAPSHOT_FORMAT = "archiver-snapshot/1"
SNAPSHOT_PARTS = ("catalog", "custody", "station.key", "station.pub")
WORKERS = 2
REMOVED = "removed"  # the manifest line's kind for an object the station took off the target (old snapshots)
STAMP = re.compile(r"^\d{8}T\d{12}Z$")  # a snapshot folder's name: its UTC time to the microsecond
_ENTRY_KEYS = {"object": str, "kind": str, "plain_sha256": str, "ciphertext_sha256": str, "size": int, "time": str}



class DiskTarget:
    """A folder as a backup target (`Target`): objects, the signed manifest, snapshots, the published head."""

    def __init__(self, ws: Workspace, path: Path, group: int | None) -> None:
        self.ws, self.path, self.name, self.group = ws, path, str(path), group

    def _writing(self):
        return _writes_to(self.path)

    def prepare(self) -> None:
        """Refused when missing or not writable; what a killed run left finished: its temp objects swept, the
        objects it listed but did not record adopted."""
        _usable(self.path)
        sweep_temp_files(self.path)
        with self._writing():
            _reconcile(self.ws, self.path)

    def drop_purged(self, counts: dict[str, int]) -> None:
        with self._writing():
            counts["purged_dropped"] = drop_purged(self.ws, self.path, self.group)

    def put(self, to: list[Recipient], counts: dict[str, int], cancel,
            rotten: Callable[[Recording, str], None]) -> None:
        with self._writing():
            _backup_recordings(self.ws, self.path, to, counts, cancel, self.group, rotten)

    def snapshot_head(self) -> Head | None | bool:
        return _snapshot_head(self.ws, self.path)

    def snapshot(self, to: list[Recipient], counts: dict[str, int]) -> None:
        with self._writing():
            _snapshot(self.ws, self.path, to, counts, self.group)
            counts["snapshots_pruned"] = _prune_snapshots(self.ws, self.path, self.ws.cfg.backup.keep_snapshots,
                                                          self.group)

    def publish_head(self) -> None:
        with self._writing():
            publish_head(self.ws.custody.path, self.ws.station_key, self.path, self.group)

    def verify(self, identities: list[Identity] | None) -> tuple[int, list[Finding]]:
        return verify(self.ws, self.path, identities)

    def present(self) -> bool | None:
        return self.path.is_dir()

    def holds(self, row: BackupObject) -> bool:
        """Whether the object is there as the station wrote it (read back and hashed)."""
        return ciphertext_digest(self.path, row.name) == (row.ciphertext_sha256, row.size)


@contextmanager
def _writes_to(target: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise _target_error(exc, target) from exc


def _usable(target: Path) -> None:
    if not target.is_dir():
        raise BackupTargetError(_("backup target {target} is missing (not mounted?): mount it, then run the "
                                  "backup again; nothing was marked backed up there").format(
                                  target=target))
    if not os.access(target, os.W_OK):
        raise BackupTargetError(_("backup target {target} is not writable: fix its permissions").format(
                                  target=target))


def _target_error(exc: OSError, target: Path) -> BackupTargetError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return BackupTargetError(_("backup target {target} is full: free space or add a disk, then run the "
                                   "backup again; objects written before stay recorded").format(
                                   target=target))
    return BackupTargetError(_("cannot write to backup target {target}: {value}").format(
                               target=target, value=exc.strerror or exc))


def open_object(target: Path, name: str) -> BinaryIO:
    """An object on a target, opened without following symlinks on the way."""
    folder, _sep, base = name.rpartition("/")
    with Folder.open(target, folder) as where:
        return os.fdopen(where.open_file(base), "rb")


class _Rotten(Exception):
    """The archived file no longer hashes as catalogued: it is not backed up as that recording."""


def _put(target: Path, name: str, src: BinaryIO, to: list[Recipient], group: int | None,
         expect: str | None = None) -> tuple[str, str, int]:
    """Encrypt `src` to `target/name` atomically, hashing the plaintext in the same read. Returns
    (plaintext sha256, ciphertext sha256, size). With `expect`, a plaintext of another hash is not
    written (the temp object is dropped) but raises _Rotten."""
    folder, _sep, base = name.rpartition("/")
    with src, Folder.open(target, folder, create=True, group=group) as where, where.new_file(base) as out:
        plain, sink = HashingReader(src), HashingWriter(out)
        encrypt(plain, sink, to)
        if expect is not None and plain.sha256.hexdigest() != expect:
            raise _Rotten(plain.sha256.hexdigest())
    return plain.sha256.hexdigest(), sink.sha256.hexdigest(), sink.size


def _list(target: Path, entry: dict[str, Any], group: int | None) -> None:
    """Append one signed line to the target's manifest (a torn last line set aside first)."""
    with appending(target, MANIFEST, group=group) as fh:
        fh.write(json.dumps(entry, sort_keys=True, ensure_ascii=False).encode() + b"\n")


def _backup_recordings(ws: Workspace, target: Path, to: list[Recipient], counts: dict[str, int], cancel,
                       group: int | None, rotten: Callable[[Recording, str], None]) -> None:
    """Two objects are encrypted at a time (reading, ChaCha20 and SHA-256 all leave the GIL); each is
    listed and recorded as soon as it is complete on the target. An archived file whose bytes no
    longer hash as catalogued (bit rot) is not backed up: it is reported, and stays not backed up."""
    with ws.catalog.session() as session:
        done = set(session.scalars(select(BackupObject.recording_id).where(
            BackupObject.target == str(target), BackupObject.kind == "recording")))
        todo = [r for r in session.scalars(select(Recording).where(Recording.purged_at.is_(None))
                                           .order_by(Recording.id)) if r.id not in done]
    queue = iter(todo)
    running: dict[Future, tuple[Recording, str]] = {}
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="backup") as pool:
        try:
            while True:
                while len(running) < WORKERS and not (cancel is not None and cancel.is_set()):
                    rec = next(queue, None)
                    if rec is None:
                        break
                    name = object_name(rec.sha256)
                    src = ws.archive.open(ws.archive.data_dir / rec.archive_path)
                    running[pool.submit(_put, target, name, src, to, group, rec.sha256)] = (rec, name)
                if not running:
                    return
                finished, _pending = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    rec, name = running.pop(future)
                    try:
                        _plain, digest, size = future.result()
                    except _Rotten as exc:
                        rotten(rec, str(exc))
                        log.error("not backed up: the archived file no longer hashes as catalogued path=%s",
                                  rec.archive_path)
                        continue
                    _record(ws, target, name, "recording", rec.id, rec.sha256, digest, size, group)
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
    manifest line is written only after the object is complete), so they are not written twice. Only
    lines the station signed, for objects that hash as the line says, are adopted."""
    key = ws.station_key.public
    with ws.catalog.session() as session:
        known = set(session.scalars(select(BackupObject.name).where(BackupObject.target == str(target))))
        by_hash = {r.sha256: r for r in session.scalars(select(Recording))}
    entries, _problems = read_manifest(target)
    for entry in entries:
        rec = by_hash.get(entry["plain_sha256"])
        if entry["kind"] != "recording" or entry["object"] in known or rec is None or not signed_by(entry, key) \
                or entry["object"] != object_name(rec.sha256) \
                or ciphertext_digest(target, entry["object"]) != (entry["ciphertext_sha256"], entry["size"]):
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
            digest: str, size: int, group: int | None) -> None:
    now = datetime.now(UTC)
    entry = sign_record(ws.station_key, {"object": name, "kind": kind, "plain_sha256": plain,
                                         "ciphertext_sha256": digest, "size": size,
                                         "time": now.isoformat(timespec="seconds")})
    _list(target, entry, group)
    with ws.catalog.session() as session:
        session.add(BackupObject(target=str(target), name=name, kind=kind, recording_id=recording_id,
                                 plain_sha256=plain, ciphertext_sha256=digest, size=size, at=now))
        commit(session)


def _snapshot(ws: Workspace, target: Path, to: list[Recipient], counts: dict[str, int], group: int | None) -> None:
    """The catalog first (SQLite backup API: consistent), then the custody log, then the keys; then the
    descriptor that binds them to the station key, and that restore checks before trusting any of it."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    data_dir = ws.cfg.data_dir
    parts: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".tmp-snapshot-") as scratch:
        copy = Path(scratch) / CATALOG_FILE
        with sqlite3.connect(data_dir / CATALOG_FILE) as live, sqlite3.connect(copy) as snap:
            live.backup(snap)
        log = Path(scratch) / LOG_NAME
        with open_log(ws.custody.path) as fh, log.open("wb") as out:
            shutil.copyfileobj(fh, out, 1 << 20)
        head = log_head(log)
        with Folder.open(data_dir, KEY_DIR) as keys:
            sources = {"catalog": lambda: copy.open("rb"), "custody": lambda: log.open("rb"),
                       "station.key": lambda: os.fdopen(keys.open_file("station.key"), "rb"),
                       "station.pub": lambda: os.fdopen(keys.open_file("station.pub"), "rb")}
            for part in SNAPSHOT_PARTS:
                name = f"snapshots/{stamp}/{part}.age"
                plain, digest, size = _put(target, name, sources[part](), to, group)
                _record(ws, target, name, part, None, plain, digest, size, group)
                parts[part] = {"object": name, "plain_sha256": plain, "ciphertext_sha256": digest, "size": size}
                counts["snapshot_parts"] += 1
    descriptor = sign_record(ws.station_key, {
        "format": SNAPSHOT_FORMAT, "stamp": stamp, "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "station_key": ws.station_key.public.text, "parts": parts,
        "custody_head": {"seq": head.seq, "hash": head.hash} if head else None})
    data = json.dumps(descriptor, sort_keys=True, ensure_ascii=False, indent=1).encode() + b"\n"
    with Folder.open(target, f"snapshots/{stamp}") as folder:
        folder.write_file(DESCRIPTOR, data, group=group)
    digest = hashlib.sha256(data).hexdigest()
    _record(ws, target, f"snapshots/{stamp}/{DESCRIPTOR}", "descriptor", None, digest, digest, len(data), group)


def _snapshot_head(ws: Workspace, target: Path) -> Head | None | bool:
    """The custody head that the newest snapshot this station wrote to `target` holds (None: the log was
    empty then); False when there is none, or it is not as written (then a new one is due)."""
    with ws.catalog.session() as session:
        row = session.scalars(select(BackupObject).where(BackupObject.target == str(target),
                                                         BackupObject.kind == "descriptor")
                              .order_by(BackupObject.at.desc(), BackupObject.id.desc()).limit(1)).first()
    if row is None:
        return False
    try:
        with Folder.open(target, str(Path(row.name).parent)) as folder:
            data = folder.read_bytes(DESCRIPTOR)
        if hashlib.sha256(data).hexdigest() != row.plain_sha256:
            return False
        head = json.loads(data).get("custody_head")
        return None if head is None else Head(int(head["seq"]), str(head["hash"]))
    except (OSError, ArchiverError, ValueError, KeyError, TypeError, AttributeError):
        return False


def drop_purged(ws: Workspace, target: Path, group: int | None) -> int:
    """Take the objects of purged recordings off `target` (unless backup.keep_purged names it): a signed
    `removed` manifest line, the file, the catalog row, then one custody event. How many objects."""
    if target in ws.cfg.backup.keep_purged or not target.is_dir():
        return 0
    with ws.catalog.session() as session:
        rows = list(session.scalars(select(BackupObject).join(Recording, Recording.id == BackupObject.recording_id)
                                    .where(BackupObject.target == str(target), BackupObject.kind == "recording",
                                           Recording.purged_at.is_not(None))))
    if not rows:
        return 0
    _remove_objects(ws, target, rows, group)
    ws.custody.append("backup_drop_purged", {"target": str(target)},
                      {"objects": [{"object": r.name, "plain_sha256": r.plain_sha256} for r in rows]})
    return len(rows)


def _remove_objects(ws: Workspace, target: Path, rows: list[BackupObject], group: int | None) -> None:
    """Signed `removed` manifest lines first, then the files, then the catalog rows: killed anywhere, the
    next run does it again, and `backup verify` never sees an object gone that the manifest still lists."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for row in rows:
        _list(target, sign_record(ws.station_key, {
            "object": row.name, "kind": REMOVED, "plain_sha256": row.plain_sha256,
            "ciphertext_sha256": row.ciphertext_sha256, "size": row.size, "time": now}), group)
    for row in rows:
        name = PurePosixPath(row.name)
        try:
            with Folder.open(target, str(name.parent)) as folder:
                folder.unlink(name.name)
                folder.sync()
        except FileNotFoundError:
            continue
    with ws.catalog.session() as session:
        session.execute(delete(BackupObject).where(BackupObject.id.in_([row.id for row in rows])))
        commit(session)


def _prune_snapshots(ws: Workspace, target: Path, keep: int, group: int | None) -> int:
    """Remove this station's snapshots on `target` but the newest `keep`: each object is marked removed
    in the manifest (a signed line) before it is deleted, then forgotten by the catalog; a run killed
    half-way is finished by the next. Only snapshot folders this station recorded writing are touched.
    Recordings are never removed. How many snapshots were removed."""
    with ws.catalog.session() as session:
        rows = list(session.scalars(select(BackupObject).where(
            BackupObject.target == str(target), BackupObject.kind.in_(("descriptor", *SNAPSHOT_PARTS)))))
    stamps = sorted({Path(row.name).parent.name for row in rows
                     if STAMP.match(Path(row.name).parent.name) and Path(row.name).parent.parent.name == "snapshots"},
                    reverse=True)
    old = set(stamps[keep:])
    if not old:
        return 0
    # the descriptors first: a folder half removed is never taken for a whole snapshot
    doomed = sorted((row for row in rows if Path(row.name).parent.name in old), key=lambda r: r.kind != "descriptor")
    _remove_objects(ws, target, doomed, group)
    with Folder.open(target, "snapshots") as snapshots:
        for stamp in sorted(old):
            try:
                os.rmdir(stamp, dir_fd=snapshots.fd)
            except FileNotFoundError:
                continue
            except OSError as exc:  # something else was put in that folder: left there, and said
                log.warning("old snapshot folder not removed target=%s snapshot=%s error=%s", target, stamp, exc)
        snapshots.sync()
    ws.custody.append("backup_prune", {"target": str(target)}, {"snapshots": sorted(old), "kept": keep})
    return len(old)


# -- checking the targets ------------------------------------------------------------------
def read_manifest(target: Path) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """(well-formed entries, [(line number, what is wrong)]): a torn or edited line is named, not fatal."""
    try:
        with Folder.open(target) as folder:
            lines = folder.read_bytes(MANIFEST).split(b"\n")
    except FileNotFoundError:
        return [], []
    entries, problems = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            problems.append((number, _("not a JSON line (torn or edited)")))
            continue
        if not isinstance(entry, dict) or any(not isinstance(entry.get(k), t) for k, t in _ENTRY_KEYS.items()):
            problems.append((number, _("not a manifest entry (fields missing or of the wrong type)")))
            continue
        entries.append(entry)
    return entries, problems


def ciphertext_digest(target: Path, name: str) -> tuple[str, int] | None:
    """(SHA-256, size) of an object as it is on the target; None if it is not there."""
    try:
        with open_object(target, name) as fh:
            reader = HashingReader(fh)
            return reader.drain(), reader.size
    except (FileNotFoundError, NotADirectoryError):
        return None


def verify(ws: Workspace, target: Path, identities: list[Identity] | None) -> tuple[int, list[Finding]]:
    """Every object the station recorded as written to `target`, checked against the hashes the station recorded
    (not against what the target lists); every manifest line against the station key; with identities, every
    object decrypted and its plaintext compared with the catalog. (objects checked, findings)."""
    problems: list[Finding] = []
    checked = 0
    key = ws.station_key.public

    def problem(kind: Kind, path: Path | str, text: str, **values: Any) -> None:
        problems.append(Finding(kind, str(path), text, values))

    if not target.is_dir():
        problem(Kind.BACKUP_TARGET, target, N_("missing (not mounted?)"))
        return 0, problems
    with ws.catalog.session() as session:
        rows = {r.name: r for r in session.scalars(select(BackupObject).where(BackupObject.target == str(target)))}
    entries, bad_lines = read_manifest(target)
    for number, what in bad_lines:
        problem(Kind.BACKUP_MANIFEST, target / MANIFEST, N_("line {number}: {what}"), number=number, what=what)
    for name in set_aside(target, MANIFEST):
        problem(Kind.BACKUP_MANIFEST, target / name, N_("the manifest's torn last line, set aside here: an append "
                                                        "that never completed (a run killed mid-write)"))
    listed: dict[str, dict[str, Any]] = {}
    # old snapshots' objects the station took off the target (only its own signed word counts)
    removed = {e["object"] for e in entries if e["kind"] == REMOVED and signed_by(e, key)}
    for entry in entries:
        if not signed_by(entry, key):
            problem(Kind.BACKUP_MANIFEST_SIGNATURE, target / MANIFEST,
                    N_("{object}: the line is not signed by this station's key (forged or edited)"),
                    object=entry["object"])
        if entry["kind"] == REMOVED or entry["object"] in removed:
            continue
        listed[entry["object"]] = entry
        row = rows.get(entry["object"])
        if row is None:
            problem(Kind.BACKUP_UNKNOWN, target / MANIFEST, N_("{object} is listed but this station never "
                                                               "recorded writing it (planted, or a run killed "
                                                               "a moment after listing it: the next backup "
                                                               "run adopts it)"), object=entry["object"])
        elif (entry["ciphertext_sha256"], entry["size"]) != (row.ciphertext_sha256, row.size):
            problems.append(Finding(Kind.BACKUP_MANIFEST, str(target / MANIFEST),
                                    N_("{object}: hashes or size differ from what the station recorded when it "
                                       "wrote the object"), {"object": entry["object"]},
                                    {"ciphertext_sha256": row.ciphertext_sha256, "size": row.size},
                                    {"ciphertext_sha256": entry["ciphertext_sha256"], "size": entry["size"]}))
    for name, row in sorted(rows.items()):
        checked += 1
        if name not in listed:
            problem(Kind.BACKUP_UNLISTED, target / name, N_("recorded in the catalog but not in the target's "
                                                            "manifest"))
        found = _check_object(target, row, identities)
        if found:
            problems.append(found)
    return checked, problems


def _check_object(target: Path, row: BackupObject, identities: list[Identity] | None) -> Finding | None:
    subject = str(target / row.name)
    try:
        fh = open_object(target, row.name)
    except (FileNotFoundError, NotADirectoryError):
        return Finding(Kind.BACKUP_MISSING, subject, N_("written by this station but not on the target"))
    except ArchiverError as exc:
        return Finding(Kind.BACKUP_UNSAFE, subject, MADE, {"detail": str(exc)})
    return check_stream(fh, row, identities if row.kind != "descriptor" else None, subject)
