"""A backup target on a folder (a second disk, a NAS mount): the `Target` protocol on files.

An object is written to a temp name, fsynced and renamed; only then is it listed, with the entry the station signed
for it, in the target's append-only manifest (`backup-manifest.jsonl`), and only then recorded in the catalog. An
object taken off is first listed as removed (a signed line), then deleted. Snapshots live here too
(`backup/snapshots.py`), and the station's published custody head.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from archiver.archive.workspace import Workspace
from archiver.backup.age import Identity
from archiver.backup.objects import REMOVED, Lock, Placed, check_stream
from archiver.catalog import BackupObject
from archiver.errors import ArchiverError, BackupTargetError
from archiver.fs import Folder
from archiver.fs.appendlog import appending, set_aside
from archiver.fs.sweep import sweep_temp_files
from archiver.i18n import N_, _
from archiver.ledger.anchor import publish_head
from archiver.ledger.keys import PublicKey, signed_by
from archiver.problems import MADE, Finding, Kind

MANIFEST = "backup-manifest.jsonl"
_ENTRY_KEYS = {"object": str, "kind": str, "plain_sha256": str, "ciphertext_sha256": str, "size": int, "time": str}


class DiskTarget:
    """A folder as a backup target (`SnapshotTarget`): objects, the signed manifest, snapshots, the published head."""

    locks = False

    def __init__(self, ws: Workspace, path: Path, group: int | None) -> None:
        self.ws, self.path, self.name, self.group = ws, path, str(path), group
        self._listing = threading.Lock()  # two objects are put at a time; their manifest lines one by one
        self._index: dict[str, list[dict[str, Any]]] | None = None

    def prepare(self) -> None:
        """Refused when missing or not writable; the temp objects a killed run left swept."""
        _usable(self.path)
        sweep_temp_files(self.path)
        self._index = None

    def present(self) -> bool | None:
        return self.path.is_dir()

    def put(self, name: str, fill: Callable[[BinaryIO], dict[str, Any]], lock: Lock | None = None) -> Placed:
        folder, _sep, base = name.rpartition("/")
        with self._writing(), Folder.open(self.path, folder, create=True, group=self.group) as where:
            with where.new_file(base, group=self.group) as out:
                entry = fill(out)
            self._list(entry)
        return Placed(name, entry)

    def list(self, name: str | None = None) -> list[Placed]:
        """What the manifest lists and does not list as removed since (read once a run)."""
        if self._index is None:
            index: dict[str, list[dict[str, Any]]] = {}
            for entry in read_manifest(self.path)[0]:
                if entry["kind"] == REMOVED:
                    index.pop(entry["object"], None)
                else:
                    index.setdefault(entry["object"], []).append(entry)
            self._index = index
        if name is not None:
            return [Placed(name, entry) for entry in self._index.get(name, [])]
        return [Placed(n, entries[-1]) for n, entries in self._index.items()]

    def open(self, name: str, version: str | None = None) -> BinaryIO:
        return open_object(self.path, name)

    def check(self, row: BackupObject, identities: list[Identity] | None) -> list[Finding]:
        subject = str(self.path / row.name)
        try:
            fh = self.open(row.name)
        except (FileNotFoundError, NotADirectoryError):
            return [Finding(Kind.BACKUP_MISSING, subject, N_("written by this station but not on the target"))]
        except ArchiverError as exc:
            return [Finding(Kind.BACKUP_UNSAFE, subject, MADE, {"detail": str(exc)})]
        found = check_stream(fh, row, identities if row.kind != "descriptor" else None, subject)
        return [found] if found else []

    def drop(self, row: BackupObject, entry: dict[str, Any]) -> bool:
        """The removal listed, then the file gone (and a snapshot's folder, once empty)."""
        name = PurePosixPath(row.name)
        with self._writing():
            self._list(entry)
            try:
                with Folder.open(self.path, str(name.parent)) as folder:
                    folder.unlink(name.name)
                    folder.sync()
            except FileNotFoundError:
                return True
            if name.parent.parent.name == "snapshots":  # the snapshot's last object: its folder goes too
                with Folder.open(self.path, str(name.parent.parent)) as snapshots, suppress(OSError):
                    os.rmdir(name.parent.name, dir_fd=snapshots.fd)
                    snapshots.sync()
        return True

    def lock(self, row: BackupObject, until: datetime | None, hold: bool | None) -> None:
        """A folder keeps no locks: what protects it is its owner and the signed manifest."""

    def audit(self, rows: list[BackupObject]) -> list[Finding]:
        return audit_manifest(self.path, {r.name: r for r in rows}, self.ws.station_key.public)

    def publish_head(self) -> None:
        with self._writing():
            publish_head(self.ws.custody.path, self.ws.station_key, self.path, self.group)

    def _list(self, entry: dict[str, Any]) -> None:
        """One signed line appended to the manifest (a torn last line set aside first)."""
        with self._listing, appending(self.path, MANIFEST, group=self.group) as fh:
            fh.write(json.dumps(entry, sort_keys=True, ensure_ascii=False).encode() + b"\n")
        self._index = None

    def _writing(self):
        return _writes_to(self.path)


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


# -- the manifest ---------------------------------------------------------------------------------
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


def audit_manifest(target: Path, rows: dict[str, BackupObject], key: PublicKey) -> list[Finding]:
    """The manifest against the catalog (`rows` by name) and the station key: lines torn, malformed or set
    aside; lines not signed by the station; objects listed that the station never recorded, or listed with
    other hashes than it recorded; objects it recorded that the manifest does not list."""
    problems: list[Finding] = []

    def problem(kind: Kind, path: Path, text: str, **values: Any) -> None:
        problems.append(Finding(kind, str(path), text, values))

    entries, bad_lines = read_manifest(target)
    for number, what in bad_lines:
        problem(Kind.BACKUP_MANIFEST, target / MANIFEST, N_("line {number}: {what}"), number=number, what=what)
    for name in set_aside(target, MANIFEST):
        problem(Kind.BACKUP_MANIFEST, target / name, N_("the manifest's torn last line, set aside here: an append "
                                                        "that never completed (a run killed mid-write)"))
    listed: set[str] = set()
    # objects the station took off the target (only its own signed word counts)
    removed = {e["object"] for e in entries if e["kind"] == REMOVED and signed_by(e, key)}
    for entry in entries:
        if not signed_by(entry, key):
            problem(Kind.BACKUP_MANIFEST_SIGNATURE, target / MANIFEST,
                    N_("{object}: the line is not signed by this station's key (forged or edited)"),
                    object=entry["object"])
        if entry["kind"] == REMOVED or entry["object"] in removed:
            continue
        listed.add(entry["object"])
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
    for name in sorted(rows.keys() - listed):
        problem(Kind.BACKUP_UNLISTED, target / name, N_("recorded in the catalog but not in the target's manifest"))
    return problems
