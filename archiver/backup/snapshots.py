"""Snapshots of the station on a target that keeps them (`SnapshotTarget`), written against the `Target` protocol:
the catalog, the custody log and the station keys, each encrypted, then a signed descriptor that binds them to the
station key; the newest backup.keep_snapshots kept. A whole-station restore (`backup/restore.py`) trusts a
snapshot only through its descriptor."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import tempfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select

from archiver.archive.workspace import Workspace
from archiver.backup.age import Recipient
from archiver.backup.objects import filler
from archiver.backup.targets import Target, object_row, record, remove
from archiver.catalog import BackupObject
from archiver.catalog.db import CATALOG_FILE
from archiver.errors import ArchiverError
from archiver.fs import Folder
from archiver.ledger.custody import LOG_NAME, Head, log_head, open_log
from archiver.ledger.keys import KEY_DIR, sign_record

DESCRIPTOR = "snapshot.json"
SNAPSHOT_FORMAT = "archiver-snapshot/1"
SNAPSHOT_PARTS = ("catalog", "custody", "station.key", "station.pub")
STAMP = re.compile(r"^\d{8}T\d{12}Z$")  # a snapshot folder's name: its UTC time to the microsecond


def take_snapshot(ws: Workspace, target: Target, to: list[Recipient], counts: dict[str, int]) -> None:
    """The catalog first (SQLite backup API: consistent), then the custody log, then the keys; then the
    descriptor that binds them to the station key, and that restore checks before trusting any of it. Then
    the oldest snapshots past backup.keep_snapshots removed."""
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
                fill = filler(ws.station_key, name, part, sources[part](), to)
                row = record(ws, object_row(target, target.put(name, fill, None)))
                parts[part] = {"object": name, "plain_sha256": row.plain_sha256,
                               "ciphertext_sha256": row.ciphertext_sha256, "size": row.size}
                counts["snapshot_parts"] += 1
    descriptor = sign_record(ws.station_key, {
        "format": SNAPSHOT_FORMAT, "stamp": stamp, "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "station_key": ws.station_key.public.text, "parts": parts,
        "custody_head": {"seq": head.seq, "hash": head.hash} if head else None})
    data = json.dumps(descriptor, sort_keys=True, ensure_ascii=False, indent=1).encode() + b"\n"
    name = f"snapshots/{stamp}/{DESCRIPTOR}"
    fill = filler(ws.station_key, name, "descriptor", io.BytesIO(data), None)
    record(ws, object_row(target, target.put(name, fill, None)))
    counts["snapshots_pruned"] = prune_snapshots(ws, target, ws.cfg.backup.keep_snapshots)


def snapshot_head(ws: Workspace, target: Target) -> Head | None | bool:
    """The custody head that the newest snapshot this station wrote to `target` holds (None: the log was
    empty then); False when there is none, or it is not as written (then a new one is due)."""
    with ws.catalog.reading() as session:
        row = session.scalars(select(BackupObject).where(BackupObject.target == target.name,
                                                         BackupObject.kind == "descriptor")
                              .order_by(BackupObject.at.desc(), BackupObject.id.desc()).limit(1)).first()
    if row is None:
        return False
    try:
        with target.open(row.name, row.version_id) as fh:
            data = fh.read(1 << 20)
        if hashlib.sha256(data).hexdigest() != row.plain_sha256:
            return False
        head = json.loads(data).get("custody_head")
        return None if head is None else Head(int(head["seq"]), str(head["hash"]))
    except (OSError, ArchiverError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _stamp(name: str) -> str | None:
    """The snapshot an object belongs to (its folder's stamp), or None for an object outside snapshots."""
    path = PurePosixPath(name)
    return path.parent.name if path.parent.parent.name == "snapshots" and STAMP.match(path.parent.name) else None


def prune_snapshots(ws: Workspace, target: Target, keep: int) -> int:
    """This station's snapshots on `target` but the newest `keep` removed: each object's removal listed
    (signed) before it goes, then forgotten by the catalog, the descriptors first, so a folder half removed is
    never taken for a whole snapshot; a run killed half-way is finished by the next. Only snapshots this station
    recorded writing are touched; recordings never. How many snapshots were removed."""
    with ws.catalog.reading() as session:
        rows = list(session.scalars(select(BackupObject).where(
            BackupObject.target == target.name, BackupObject.kind.in_(("descriptor", *SNAPSHOT_PARTS)))))
    old = set(sorted({s for s in map(_stamp, (r.name for r in rows)) if s}, reverse=True)[keep:])
    if not old:
        return 0
    remove(ws, target, sorted((r for r in rows if _stamp(r.name) in old), key=lambda r: r.kind != "descriptor"))
    ws.custody.append("backup_prune", {"target": target.name}, {"snapshots": sorted(old), "kept": keep})
    return len(old)
