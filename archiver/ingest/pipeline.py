"""The ingest pipeline: scan -> plan -> copy+hash -> place -> read back -> seal -> catalog.

`ingest()` is what both `archiver ingest` and the daemon call. It writes nothing to the source
unless asked to clear it (`IngestOptions.clear`), and then deletes a file only after its archived
copy is verified. Per-file problems are collected in the report and the run goes on; a problem
with the archive itself (disk full, I/O error), a pulled recorder or a stop request ends the run,
leaving what was done done, nothing half-done, and the rest listed as pending.
"""

from __future__ import annotations

import base64
import logging
import os
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from archiver.cases.links import link_recordings
from archiver.catalog import Catalog, Device, IngestRun, Recording, Sighting
from archiver.catalog.db import commit
from archiver.catalog.models import utcnow
from archiver.config import Config
from archiver.errors import (
    ArchiverError,
    ArchiveStorageError,
    FileProblem,
    SourceReadError,
    VerifyError,
    storage_error,
)
from archiver.i18n import _
from archiver.ingest import media
from archiver.ingest.facts import signed_facts
from archiver.ingest.manifests import write_day_manifests
from archiver.ingest.plan import Planned, describe_media, plan_file
from archiver.ingest.scan import Found, Skipped, scan
from archiver.ingest.store import Archive, Cancelled, Copied, SourceStat
from archiver.ledger.custody import CustodyLog

log = logging.getLogger(__name__)

MANIFEST_EVERY_S = 2.0


class KeyedLocks:
    """One lock per key (a hash, a folder), shared by the ingests running in one process."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class Progress(Protocol):
    def begin(self, files: int, total_bytes: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, rel: str, outcome: str) -> None: ...
    def end(self) -> None: ...


class _NoProgress:
    def begin(self, files: int, total_bytes: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, rel: str, outcome: str) -> None: ...
    def end(self) -> None: ...


@dataclass
class IngestOptions:
    """What the caller decides beyond the configuration."""

    device: str | None = None  # serial for files whose names carry none
    officer: str | None = None  # officer number for files whose names carry none
    only: frozenset[Path] | None = None  # just these files under the source (settled inbox drops)
    clear: bool = False  # delete each file from the source once its archived copy is verified
    clear_when: Callable[[Recording], str | None] | None = None  # why not yet (not backed up everywhere), or None
    cancel: threading.Event | None = None  # set it to stop: the file in hand is discarded
    locks: KeyedLocks = field(default_factory=KeyedLocks)  # shared by parallel ingests
    progress: Progress | None = None
    custody: CustodyLog | None = None  # where each archived recording and each clearing is recorded


@dataclass
class IngestReport:
    source: Path
    device_serial: str | None = None
    files_seen: int = 0
    ingested: int = 0
    already_archived: int = 0
    flagged: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # not attempted: the run ended early
    bytes_copied: int = 0
    cleared: int = 0
    not_recordings: list[Skipped] = field(default_factory=list)
    recording_ids: list[int] = field(default_factory=list)
    seconds: float = 0.0
    run_id: int | None = None
    stopped: ArchiverError | None = None  # the archive failed and the run stopped
    ended: str | None = None  # why the run ended early: "archive", "source removed", "cancelled"

    @property
    def exit_code(self) -> int:
        if self.stopped is not None:
            return self.stopped.exit_code
        return 1 if self.failed or self.pending else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "device_serial": self.device_serial,
            "files_seen": self.files_seen,
            "ingested": self.ingested,
            "already_archived": self.already_archived,
            "flagged": self.flagged,
            "failed": self.failed,
            "pending": self.pending,
            "bytes_copied": self.bytes_copied,
            "cleared": self.cleared,
            "not_recordings": [{"path": s.rel, "reason": s.reason} for s in self.not_recordings],
            "recordings": self.recording_ids,
            "seconds": round(self.seconds, 3),
            "run_id": self.run_id,
            "ended": self.ended,
            "error": str(self.stopped) if self.stopped else None,
        }


class _SourceGone(Exception):
    """The recorder disappeared (pulled, unmounted) during the run."""


def ingest(cfg: Config, archive: Archive, catalog: Catalog, source: Path,
           options: IngestOptions | None = None) -> IngestReport:
    """Archive every recording under `source`. Raises SourceError if it cannot be read at all."""
    opts = options or IngestOptions()
    progress = opts.progress or _NoProgress()
    started = time.monotonic()
    scanned = scan(source, cfg.system_files)
    files = [f for f in scanned.files if opts.only is None or f.path in opts.only]
    plans = [plan_file(f, cfg, opts.device, opts.officer) for f in files]
    serials = Counter(p.serial for p in plans if p.serial)
    report = IngestReport(
        source=scanned.root,
        device_serial=opts.device or (serials.most_common(1)[0][0] if serials else None),
        files_seen=len(files) + len(scanned.skipped) + len(scanned.unreadable),
        not_recordings=scanned.skipped,
        failed=[{"path": s.rel, "error": s.reason} for s in scanned.unreadable],
    )
    run = _Run(cfg, archive, catalog, opts, report, progress, scanned.device)
    log.info("ingest started source=%s device=%s files=%d", report.source, report.device_serial, len(plans))
    progress.begin(len(plans), sum(p.found.size for p in plans))
    days: set[date] = set()
    try:
        for index, planned in enumerate(plans):
            try:
                if opts.cancel is not None and opts.cancel.is_set():
                    raise Cancelled("stopped before this file")
                outcome = run.one(planned)
            except FileProblem as exc:
                outcome = "failed"
                report.failed.append({"path": planned.found.rel, "error": str(exc)})
                log.warning("file not archived source=%s path=%r error=%s", report.source, planned.found.rel, exc)
            except (ArchiveStorageError, _SourceGone, Cancelled) as exc:
                report.pending = [p.found.rel for p in plans[index:]]
                if isinstance(exc, ArchiveStorageError):
                    report.stopped, report.ended = exc, "archive"
                else:
                    report.ended = "cancelled" if isinstance(exc, Cancelled) else "source removed"
                log.error("ingest ended early source=%s reason=%s pending=%d error=%s",
                          report.source, report.ended, len(report.pending), exc)
                break
            if outcome != "failed":
                days.add(planned.day)
            progress.file_done(planned.found.rel, outcome)
        run.refresh_manifests(days)
    except ArchiveStorageError as exc:
        report.stopped = report.stopped or exc
    finally:
        progress.end()
        report.seconds = time.monotonic() - started
        run.finish()
    log.info(
        "ingest finished source=%s device=%s ingested=%d already=%d failed=%d pending=%d bytes=%d cleared=%d "
        "seconds=%.1f", report.source, report.device_serial, report.ingested, report.already_archived,
        len(report.failed), len(report.pending), report.bytes_copied, report.cleared, report.seconds,
    )
    return report


class _Run:
    """One ingest run: the per-file steps and the run's catalog record."""

    def __init__(self, cfg: Config, archive: Archive, catalog: Catalog, opts: IngestOptions,
                 report: IngestReport, progress: Progress, source_device: int) -> None:
        self.cfg, self.archive, self.catalog, self.opts = cfg, archive, catalog, opts
        self.report, self.progress, self.source_device = report, progress, source_device
        # Day manifests are rewritten at most every MANIFEST_EVERY_S while a run goes on, and at its end:
        # rewriting a day's manifest per file would cost O(files^2) on a card of thousands of files.
        self._pending_days: set[date] = set()
        self._manifests_at = time.monotonic()
        with catalog.session() as session:
            row = IngestRun(source=str(report.source), device_serial=report.device_serial,
                            files_seen=report.files_seen, failures=[])
            session.add(row)
            commit(session)
            self.run_id = report.run_id = row.id

    # -- one file --------------------------------------------------------------------------
    def one(self, planned: Planned) -> str:
        found = planned.found
        if planned.serial:
            with self.catalog.session() as session:
                known = _known_recording(session, planned)
                if known is not None:
                    _touch_device(session, planned)
                    commit(session)
                    self.progress.advance(found.size)
                    self.report.already_archived += 1
                    self._clear(found, known)
                    return "already archived"

        folder = self.archive.day_folder(planned.day) / planned.device_folder
        created = self.archive.ensure_folder(folder)
        try:
            copied = self.archive.copy_in(found.path, folder, planned.name, self.cfg.hashes,
                                          SourceStat(found.size, found.mtime_ns), self.progress.advance,
                                          self.opts.cancel)
        except SourceReadError:
            self.archive.drop_empty(created)
            if self._source_gone():
                raise _SourceGone(f"{self.report.source} is gone (recorder removed?)") from None
            raise
        except BaseException:
            self.archive.drop_empty(created)
            raise
        self.report.bytes_copied += copied.size
        try:
            with self.opts.locks.hold("sha256:" + copied.digests["sha256"]), \
                    self.opts.locks.hold(f"folder:{folder}"):
                recording, outcome = self._archive_copy(planned, folder, copied)
        finally:
            copied.close()
            self.archive.drop_empty(created)  # only folders left empty go
        if outcome == "ingested":
            self.report.ingested += 1
            self.report.recording_ids.append(recording.id)
            if recording.flags:
                self.report.flagged += 1
            self._pending_days.add(planned.day)
            if time.monotonic() - self._manifests_at >= MANIFEST_EVERY_S:
                self.refresh_manifests(self._pending_days)
        else:
            self.report.already_archived += 1
        self._clear(found, recording)
        return outcome

    def _archive_copy(self, planned: Planned, folder: Path, copied: Copied) -> tuple[Recording, str]:
        found = planned.found
        with self.catalog.session() as session:
            existing = session.scalar(select(Recording).where(Recording.sha256 == copied.digests["sha256"]))
            if existing is not None:
                # The same evidence under another name or path: keep one copy, note where it was seen.
                copied.file.discard()
                self._seen(session, existing, planned)
                return existing, "already archived"

            final, adopted = self.archive.place(copied, folder, planned.name)
            # ffprobe (a separate process) reads the archived copy while we read it back.
            with ThreadPoolExecutor(1) as pool:
                probing = pool.submit(_probe, final)
                if not adopted:
                    _verify(self.archive, final, copied, self.cfg.hashes, self.opts.cancel)
                probed = probing.result()
            self.archive.seal(final)
            now = utcnow()
            recording = Recording(
                sha256=copied.digests["sha256"],
                sm3=copied.digests.get("sm3"),
                size=copied.size,
                original_path=found.rel,
                original_path_bytes=found.raw,
                device_serial=planned.serial,
                officer_no=planned.officer,
                archive_path=self.archive.relative(final),
                verified_at=now,
                ingested_at=now,
                ingest_run_id=self.run_id,
                **describe_media(planned, probed, self.cfg.timezone),
            )
            try:
                session.add(recording)
                session.flush()
                link_recordings(session, [recording.id])  # to the cases' actions it falls in
                # logged before the commit, with the head in the same transaction: a crash in between leaves
                # an event whose recording the next run archives again, never a recording without its event
                self._event("ingest", recording, {
                    "archive_path": recording.archive_path, "original_path": found.rel, "size": recording.size,
                    **({"original_path_b64": base64.b64encode(found.raw).decode()} if found.raw else {}),
                    "source": str(self.report.source), "run": self.run_id, "sm3": recording.sm3,
                    "flags": recording.flags, **signed_facts(recording)}, session)
                self._seen(session, recording, planned)
            except IntegrityError:
                # Another process catalogued the same bytes meanwhile: theirs stands, ours goes.
                session.rollback()
                existing = session.scalar(select(Recording).where(Recording.sha256 == copied.digests["sha256"]))
                if existing is None:
                    raise
                if existing.archive_path != recording.archive_path:
                    final.unlink(missing_ok=True)
                self._seen(session, existing, planned)
                return existing, "already archived"
            return recording, "ingested"

    def _seen(self, session: Session, recording: Recording, planned: Planned) -> None:
        session.add(Sighting(recording=recording, ingest_run_id=self.run_id, device_key=planned.serial or "",
                             source=str(self.report.source), original_path=planned.found.rel,
                             size=planned.found.size, mtime_ns=planned.found.mtime_ns))
        _touch_device(session, planned)
        commit(session)

    def _source_gone(self) -> bool:
        # Listing the root does real I/O: a dead FUSE mount may still answer stat() from its cache.
        try:
            os.listdir(self.report.source)
            return os.stat(self.report.source).st_dev != self.source_device
        except OSError:
            return True

    def _clear(self, found: Found, recording: Recording) -> None:
        """Delete a file from the recorder: only when asked, and only once its copy is safe."""
        if not self.opts.clear:
            return
        why = self.opts.clear_when(recording) if self.opts.clear_when is not None else None
        if why is not None:
            log.info("not cleared yet: %s path=%r", why, found.rel)
            return
        archived = self.archive.data_dir / recording.archive_path
        try:
            st = os.lstat(found.path)
            if not stat.S_ISREG(st.st_mode) or (st.st_size, st.st_mtime_ns) != (found.size, found.mtime_ns):
                log.warning("not cleared: changed since copied source=%s path=%r", self.report.source, found.rel)
                return
            if recording.verified_at is None or archived.stat().st_size != found.size:
                log.warning("not cleared: archived copy missing or wrong size path=%r", found.rel)
                return
            os.unlink(found.path)
        except OSError as exc:
            log.warning("not cleared source=%s path=%r error=%s", self.report.source, found.rel, exc.strerror)
            return
        self.report.cleared += 1
        self._event("clear_from_device", recording, {"source": str(self.report.source), "original_path": found.rel})
        log.info("cleared from recorder source=%s path=%r sha256=%s archive=%s", self.report.source, found.rel,
                 recording.sha256, recording.archive_path)

    def _event(self, action: str, recording: Recording, details: dict[str, Any],
               session: Session | None = None) -> None:
        if self.opts.custody is not None:
            self.opts.custody.append(action, {"sha256": recording.sha256, "device": recording.device_serial},
                                     details, session)

    # -- the run ---------------------------------------------------------------------------
    def refresh_manifests(self, days: set[date]) -> None:
        write_day_manifests(self.archive, self.catalog, (self.archive.day_folder(d) for d in days), self.cfg.hashes,
                            self.opts.locks)
        self._pending_days = set()
        self._manifests_at = time.monotonic()

    def finish(self) -> None:
        report = self.report
        try:
            with self.catalog.session() as session:
                row = session.get(IngestRun, self.run_id)
                if row is None:
                    return
                row.finished_at = utcnow()
                row.status = ("failed" if report.stopped else
                              "partial" if report.failed or report.pending else "ok")
                row.ingested = report.ingested
                row.already_archived = report.already_archived
                row.flagged = report.flagged
                row.failed = len(report.failed)
                row.bytes_copied = report.bytes_copied
                row.failures = report.failed + [{"path": p, "error": f"pending ({report.ended})"}
                                                for p in report.pending]
                row.error = str(report.stopped) if report.stopped else report.ended
                commit(session)
        except ArchiveStorageError as exc:
            # The run's own record could not be closed (the catalog disk is full); the files' rows are safe.
            log.error("could not record the end of ingest run %s: %s", self.run_id, exc)
            report.stopped = report.stopped or exc


def _probe(path: Path) -> media.MediaInfo | None:
    """ffprobe, for files that can be media by extension or by their first bytes (ffprobe is a
    process: spawning one per log file or tiny attachment would dominate a card of small files)."""
    if media.type_by_extension(path.name) == "other" and not media.looks_like_media(path):
        return None
    try:
        return media.probe(path)
    except media.ProbeError:
        return None


def _verify(archive: Archive, final: Path, copied: Copied, algorithms: tuple[str, ...],
            cancel: threading.Event | None) -> None:
    """Read the placed copy back; anything but a match removes it (it is not catalogued yet)."""
    try:
        back = archive.read_back(final, algorithms, cancel)
    except Cancelled:
        final.unlink(missing_ok=True)
        raise
    except OSError as exc:
        final.unlink(missing_ok=True)
        raise storage_error(exc, str(final.parent)) from exc
    if back != copied.digests:
        final.unlink(missing_ok=True)
        raise VerifyError(
            _("the archived copy read back differs from the recorder's bytes (sha256 {value}... != {value2}...): "
              "check the archive disk, then ingest again").format(
              value=back['sha256'][:16], value2=copied.digests['sha256'][:16])
        )


def _known_recording(session: Session, planned: Planned) -> Recording | None:
    """The recording this device's file was already archived as, if this exact file was seen before."""
    found = planned.found
    return session.scalar(
        select(Recording).join(Sighting).where(
            Sighting.device_key == planned.serial,
            Sighting.original_path == found.rel,
            Sighting.size == found.size,
            Sighting.mtime_ns == found.mtime_ns,
        ).limit(1)
    )


def _touch_device(session: Session, planned: Planned) -> None:
    if not planned.serial:
        return
    device = session.scalar(select(Device).where(Device.serial == planned.serial))
    if device is None:
        device = Device(serial=planned.serial)
        session.add(device)
    device.last_docked = utcnow()
    if planned.officer and not device.officer_no:
        device.officer_no = planned.officer
