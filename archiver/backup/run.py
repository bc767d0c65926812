"""A backup run, written once against the `Target` protocol: on each target, what a killed run put but never
recorded adopted, the objects of purged recordings dropped, every recording not there yet put (two at a time),
locks and legal holds brought up to date where the target locks; then, if the station moved since, a signed
snapshot on every target that keeps them (`backup/snapshots.py`).

Each object is complete on the target, and listed there with the entry the station signed for it, before the
catalog records it; a custody event follows. Killed anywhere, the next run finishes the job and writes nothing
twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from archiver.archive.workspace import Workspace
from archiver.backup.age import Recipient
from archiver.backup.objects import Lock, Placed, Rotten, check_stream, filler, object_name
from archiver.backup.snapshots import snapshot_head, take_snapshot
from archiver.backup.targets import SnapshotTarget, Target, object_row, recipients, record, remove, targets
from archiver.catalog import BackupObject, Recording
from archiver.catalog.db import commit
from archiver.errors import ArchiverError, BackupError
from archiver.fs.owners import reader_gid
from archiver.i18n import _
from archiver.ledger.custody import log_head
from archiver.ledger.keys import signed_by
from archiver.retention.plan import gather
from archiver.retention.rules import due

log = logging.getLogger(__name__)
WORKERS = 2  # objects encrypted at a time: reading, ChaCha20 and SHA-256 all leave the GIL


@dataclass
class BackupReport:
    targets: dict[str, dict[str, int]] = field(default_factory=dict)
    # archived files that no longer hash as catalogued: not backed up (run `archiver verify`)
    not_backed_up: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"targets": self.targets, "not_backed_up": self.not_backed_up}


def backup_run(ws: Workspace, cancel=None) -> BackupReport:
    """Every recording not yet on a target put there. Then, if anything happened since the newest snapshot on
    some target (a recording backed up, a case imported, a lookup logged: the custody log moved), a `backup_run`
    custody event and a fresh signed snapshot on every target that keeps them, the newest backup.keep_snapshots
    kept there. A run that finds nothing to do writes nothing."""
    if not ws.catalog.is_sqlite:  # a snapshot would copy an empty SQLite file made beside it
        raise BackupError(_("the catalog is on {url}, not in the data dir: back it up with the database's own "
                            "tools; 'backup run' is for a station").format(url=ws.catalog.url))
    to = recipients(ws.cfg)
    report = BackupReport()
    every = targets(ws, reader_gid(ws.cfg.access.reader_group))
    now = datetime.now(UTC)
    for target in every:
        counts = report.targets.setdefault(target.name, {"objects": 0, "bytes": 0, "snapshot_parts": 0,
                                                         "snapshots_pruned": 0, "purged_dropped": 0})
        target.prepare()
        adopt(ws, target, counts)
        dropped, kept = drop_purged(ws, target)
        counts["purged_dropped"] = dropped
        if target.locks:
            counts["purged_locked"] = kept
        put_recordings(ws, target, to, counts, cancel, now, lambda rec, found, where=target.name:
                       report.not_backed_up.append(_rotten(where, rec, found)))
        if target.locks:
            counts["locks_extended"], counts["holds_changed"] = maintain_locks(ws, target, now)
    keeping = [t for t in every if isinstance(t, SnapshotTarget)]
    head = log_head(ws.custody.path)
    if all(snapshot_head(ws, t) == head for t in keeping):
        return report  # every target's newest snapshot already holds the station as it is
    ws.custody.append("backup_run", {"targets": [t.name for t in keeping]},
                      {"objects": {t: c["objects"] for t, c in report.targets.items()},
                       "bytes": {t: c["bytes"] for t, c in report.targets.items()},
                       "not_backed_up": report.not_backed_up})
    for target in keeping:
        take_snapshot(ws, target, to, report.targets[target.name])
    for target in keeping:  # the head after every target's events, on every target
        target.publish_head()
    return report


def _rotten(target: str, rec: Recording, found: str) -> dict[str, str]:
    return {"target": target, "path": rec.archive_path, "detail": _(
        "recording #{id} hashes as {found} now, the catalog says {sha256}: run 'archiver verify'").format(
        id=rec.id, found=found, sha256=rec.sha256)}


# -- one recording ------------------------------------------------------------------------------------
def _backed_up(ws: Workspace, target: Target, rec: Recording, row: BackupObject, counts: dict[str, int],
               adopted: bool = False) -> None:
    details: dict[str, Any] = {"target": target.name, "object": row.name}
    if target.locks:
        details |= {"version": row.version_id, "locked_until": row.locked_until.isoformat() if row.locked_until
                    else None, "legal_hold": row.legal_hold}
    details |= {"ciphertext_sha256": row.ciphertext_sha256, "size": row.size, **({"adopted": True} if adopted else {})}
    ws.custody.append("backup", {"sha256": rec.sha256, "device": rec.device_serial}, details)
    counts["objects"] += 1
    counts["bytes"] += row.size


def _send(ws: Workspace, target: Target, rec: Recording, to: list[Recipient], lock: Lock | None) -> Placed:
    name = object_name(rec.sha256)
    src = ws.archive.open(ws.archive.data_dir / rec.archive_path)
    return target.put(name, filler(ws.station_key, name, "recording", src, to, rec.sha256), lock)


def backup_one(ws: Workspace, target: Target, rec: Recording, to: list[Recipient], lock: Lock | None,
               counts: dict[str, int]) -> BackupObject:
    """One recording put, recorded and logged (what `put_recordings` does two at a time)."""
    row = record(ws, object_row(target, _send(ws, target, rec, to, lock), rec.id))
    _backed_up(ws, target, rec, row, counts)
    return row


# -- the run's steps on one target --------------------------------------------------------------------
def adopt(ws: Workspace, target: Target, counts: dict[str, int]) -> None:
    """Objects a killed run put on the target but did not record (the put answered, the catalog never heard):
    adopted, so they are not written twice. Only what the station signed, for a recording it holds, that reads
    back as the entry says; planted objects (unsigned, or not as signed) are not."""
    with ws.catalog.reading() as session:
        recorded = set(session.scalars(select(BackupObject.name).where(BackupObject.target == target.name)))
        lacking = {object_name(r.sha256): r for r in session.scalars(select(Recording))}
    key = ws.station_key.public
    for name in sorted(({p.name for p in target.list()} - recorded) & lacking.keys()):
        rec = lacking[name]
        for placed in target.list(name):
            entry = placed.entry
            if not isinstance(entry, dict) or not signed_by(entry, key) or entry.get("kind") != "recording" \
                    or entry.get("object") != name or entry.get("plain_sha256") != rec.sha256:
                continue
            row = object_row(target, placed, rec.id)
            try:
                if check_stream(target.open(name, placed.version), row, None) is not None:
                    continue
            except (OSError, ArchiverError):
                continue
            row.at = datetime.fromisoformat(entry["time"])
            _backed_up(ws, target, rec, record(ws, row), counts, adopted=True)
            break


def drop_purged(ws: Workspace, target: Target) -> tuple[int, int]:
    """The objects of purged recordings taken off the target (unless backup.keep_purged names it): each removal
    listed (signed) on the target, the object gone, the catalog row gone; then one custody event. An object the
    target keeps (its lock runs on, a legal hold) stays recorded, and the next run tries again. (dropped, kept)."""
    if target.name in {str(p) for p in ws.cfg.backup.keep_purged} or target.present() is False:
        return 0, 0
    rows = _recordings_objects(ws, target, purged=True)
    dropped = remove(ws, target, rows)
    for row in rows:
        if row not in dropped:
            log.warning("purged recording's object kept by the target target=%s object=%s locked_until=%s",
                        target.name, row.name, row.locked_until)
    if dropped:
        ws.custody.append("backup_drop_purged", {"target": target.name}, {"objects": [
            {"object": r.name, **({"version": r.version_id} if r.version_id else {}), "plain_sha256": r.plain_sha256}
            for r in dropped]})
    return len(dropped), len(rows) - len(dropped)


def _recordings_objects(ws: Workspace, target: Target, purged: bool) -> list[BackupObject]:
    """The target's objects of recordings purged since (or of live ones)."""
    gone = Recording.purged_at.is_not(None) if purged else Recording.purged_at.is_(None)
    with ws.catalog.reading() as session:
        return list(session.scalars(select(BackupObject).join(Recording, Recording.id == BackupObject.recording_id)
                                    .where(BackupObject.target == target.name, BackupObject.kind == "recording",
                                           gone)))


def put_recordings(ws: Workspace, target: Target, to: list[Recipient], counts: dict[str, int], cancel,
                   now: datetime, rotten: Callable[[Recording, str], None]) -> None:
    """Every live recording not on the target yet, two at a time, each recorded as soon as it is complete
    there. An archived file whose bytes no longer hash as catalogued (bit rot) is not backed up: it is
    reported, and stays not backed up."""
    with ws.catalog.reading() as session:
        done = set(session.scalars(select(BackupObject.recording_id).where(
            BackupObject.target == target.name, BackupObject.kind == "recording")))
        todo = [r for r in session.scalars(select(Recording).where(Recording.purged_at.is_(None))
                                           .order_by(Recording.id)) if r.id not in done]
    locks = wanted_locks(ws, [r.id for r in todo], now) if target.locks and todo else {}
    queue = iter(todo)
    running: dict[Future, Recording] = {}
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="backup") as pool:
        try:
            while True:
                while len(running) < WORKERS and not (cancel is not None and cancel.is_set()):
                    rec = next(queue, None)
                    if rec is None:
                        break
                    running[pool.submit(_send, ws, target, rec, to, locks.get(rec.id))] = rec
                if not running:
                    return
                finished, _pending = wait(running, return_when=FIRST_COMPLETED)
                failed = None
                for future in finished:  # every put that completed is recorded, even beside one that failed
                    rec = running.pop(future)
                    try:
                        placed = future.result()
                    except Rotten as exc:
                        rotten(rec, str(exc))
                        log.error("not backed up: the archived file no longer hashes as catalogued path=%s",
                                  rec.archive_path)
                        continue
                    except BaseException as exc:
                        failed = failed or exc
                        continue
                    _backed_up(ws, target, rec, record(ws, object_row(target, placed, rec.id)), counts)
                if failed is not None:
                    raise failed
        finally:
            for future in running:  # let the other writer finish or clean up its temp object
                future.cancel()
            wait(running)
            _record_late(ws, target, running, counts)


def _record_late(ws: Workspace, target: Target, running: dict[Future, Recording], counts: dict[str, int]) -> None:
    """The puts that completed while the run was stopping (another put failed, as on a full target, or recording
    one did). Each is on the target and listed in its manifest, so it is recorded and logged as any other;
    unrecorded, `backup verify` would report it as never written by the station until a later run adopted it.
    Should the catalog refuse it now, the next run adopts it; the error that stopped this run is the one raised."""
    for future, rec in running.items():
        if future.cancelled() or future.exception() is not None:
            continue
        try:
            _backed_up(ws, target, rec, record(ws, object_row(target, future.result(), rec.id)), counts)
        except Exception as exc:  # noqa: BLE001 - never in place of the error that stopped the run
            log.warning("a backed-up object is left for the next run to adopt target=%s object=%s error=%s",
                        target.name, object_name(rec.sha256), exc)


# -- locks ----------------------------------------------------------------------------------------------
def lock_until(due_date: date | None, today: date, rolling_days: int, tz: Any) -> datetime:
    """How long an object's COMPLIANCE lock runs: to the start of its due day, or `rolling_days` ahead for
    footage kept for good; never less than a day (a recording due already waits for its purge locked)."""
    day = today + timedelta(days=rolling_days) if due_date is None else max(due_date, today + timedelta(days=1))
    return datetime.combine(day, time(), tz).astimezone(UTC)


def wanted_locks(ws: Workspace, ids: list[int], now: datetime) -> dict[int, Lock]:
    """Per recording: its lock and legal hold, from the retention rules as things stand."""
    tz = ws.cfg.timezone
    today = now.astimezone(tz).date()
    wanted = {}
    for facts in gather(ws, ids):
        day = due(facts, ws.cfg.retention.classes, tz).date
        wanted[facts.id] = Lock(lock_until(day, today, ws.cfg.s3.rolling_lock_days, tz), facts.held, day is None)
    return wanted


def maintain_locks(ws: Workspace, target: Target, now: datetime) -> tuple[int, int]:
    """Locks the rules now want longer extended (a case linked, a rolling lock half spent), legal holds placed
    or lifted since mirrored. Locks are only ever extended. (extended, holds changed)."""
    rows = _recordings_objects(ws, target, purged=False)
    wanted = wanted_locks(ws, [r.recording_id for r in rows], now) if rows else {}
    half = timedelta(days=ws.cfg.s3.rolling_lock_days) / 2
    extended = changed = 0
    for row in rows:
        want = wanted.get(row.recording_id)
        if want is None:
            continue
        # a due date that moved later is followed at once; a rolling lock is renewed once half spent
        longer = row.locked_until is not None and want.until > row.locked_until and (
            not want.rolling or row.locked_until - now < half)
        held = bool(row.legal_hold) != want.hold
        if not (longer or held):
            continue
        target.lock(row, want.until if longer else None, want.hold if held else None)
        _update(ws, row.id, **({"locked_until": want.until} if longer else {}),
                **({"legal_hold": want.hold} if held else {}))
        extended += longer
        if held:
            ws.custody.append("backup_legal_hold", {"sha256": row.plain_sha256},
                              {"target": target.name, "object": row.name, "version": row.version_id, "on": want.hold})
            changed += 1
    return extended, changed


def _update(ws: Workspace, row_id: int, **values: Any) -> None:
    with ws.catalog.session() as session:
        row = session.get(BackupObject, row_id)
        assert row is not None
        for name, value in values.items():
            setattr(row, name, value)
        commit(session)
