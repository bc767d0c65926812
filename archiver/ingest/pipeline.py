"""The ingest pipeline: scan -> plan, then four stages that overlap across files: copy+hash ->
sync+place -> read back+probe+seal -> catalog (a batch at a time).

`ingest()` is what both `archiver ingest` and the daemon call. It writes nothing to the source
unless asked to clear it (`IngestOptions.clear`), and then deletes a file only after its archived
copy is verified. Per-file problems are collected in the report and the run goes on; a problem
with the archive itself (disk full, I/O error), a pulled recorder or a stop request ends the run,
leaving what was done done, nothing half-done, and the rest listed as pending.
"""

from __future__ import annotations

import logging
import os
import queue
import stat
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from archiver.archive.copying import CHUNK, DEEP, Cancelled
from archiver.archive.manifests import write_day_manifests
from archiver.archive.store import Archive, Copied, SourceStat
from archiver.archive.workspace import Workspace
from archiver.catalog import Catalog, IngestRun, Recording
from archiver.catalog.db import commit, one_of
from archiver.catalog.models import utcnow
from archiver.config import Config
from archiver.errors import (
    ArchiverError,
    ArchiveStorageError,
    FileProblem,
    SourceReadError,
    storage_error,
)
from archiver.fs import liveness
from archiver.fs.sweep import sweep_interrupted
from archiver.i18n import _
from archiver.ingest import media
from archiver.ingest.options import IngestOptions, IngestReport, NoProgress, Progress
from archiver.ingest.plan import Planned, plan_file
from archiver.ingest.proof import probe, probe_copy_early, verify_copy
from archiver.ingest.record import Cataloguer, known_files, subject
from archiver.ingest.scan import Found, ScanResult, handed, scan
from archiver.ingest.stages import END, Halting, batch_stage, hand_on_in_order, start_each
from archiver.ledger.custody import CustodyLog

log = logging.getLogger(__name__)

MANIFEST_EVERY_S = 2.0


class _SourceGone(Exception):
    """The recorder disappeared (pulled, unmounted) during the run."""


# How far the stages may run ahead of each other. Items carry no file data (only descriptors and
# digests), so memory stays flat; copies waiting for their fsync hold two descriptors each.
_SYNC_QUEUE, _PROVE_QUEUE, _RECORD_QUEUE = 8, 64, 512
_SYNC_BATCH, _RECORD_BATCH = 32, 256  # files made durable together / catalogued in one transaction
_PROVERS = 4  # files read back at once
# How long a stage waits for more files to join a batch: small files arrive every millisecond or so and
# share their syncs and their transaction; a big file waits this long once, next to seconds of copying.
_LINGER_S = 0.05


@dataclass(eq=False)
class _Item:
    """One file on its way through the stages: failed once `error` is set, pending once `dropped`."""

    index: int
    planned: Planned
    known: int | None = None  # this very file (device, path, size, mtime) was archived before, as this recording
    folder: Path | None = None
    copied: Copied | None = None
    final: Path | None = None  # placed here, not catalogued yet
    adopted: bool = False  # an identical file was already at that name (left by an interrupted run)
    twin: _Item | None = None  # the same bytes came earlier in this run
    existing: int | None = None  # the recording that already holds these bytes
    probed: media.MediaInfo | None = None
    probing: Future | None = None  # a big recording probed on its copy while the copy is placed
    recording: Recording | None = None
    error: str | None = None  # why it failed
    dropped: bool = False  # let go when the run halted: pending

    @property
    def live(self) -> bool:
        """Still to be copied, placed or proved (not failed, and not a file the catalog knows)."""
        return self.error is None and not self.dropped and self.known is None and self.copied is not None


def sweep(ws: Workspace, *, walk: bool = False) -> None:
    """Before an ingest, what killed runs left: the temp files of archive writers, walking the whole archive when
    the daemon starts (`walk`), else only when one of them left its mark (`Archive.writing`); and the rows of
    ingest runs whose process is gone, closed as `interrupted` (this run finishes their files)."""
    for path in sweep_interrupted(ws.archive.root, ws.archive.data_dir, walk=walk):
        log.warning("removed temp file left by an interrupted run path=%s", path)
    with ws.catalog.session() as session:
        rows = [r for r in session.scalars(select(IngestRun).where(IngestRun.status == "running"))
                if liveness.gone(r.pid, r.started_at.timestamp())]
        for row in rows:
            log.warning("ingest run closed: its process ended first run=%d source=%s", row.id, row.source)
            row.status, row.finished_at = "interrupted", utcnow()
            row.error = "the process ended before the run did (killed, or the power was lost)"
        if rows:
            commit(session)


def ingest(ws: Workspace, source: Path, options: IngestOptions | None = None,
           files: list[tuple[str, int]] | None = None, scanned: ScanResult | None = None) -> IngestReport:
    """Archive every recording under `source` into the workspace's archive and catalog, each with its custody
    event (there is no ingest without the custody log); or, with `files`, the files a person handed in:
    relative names and open descriptors, `source` then only naming where they came from; or what `scanned`
    lists (a scan made beforehand). Raises SourceError if the source cannot be read at all."""
    cfg, archive, catalog = ws.cfg, ws.archive, ws.catalog
    opts = options or IngestOptions()
    progress = opts.progress or NoProgress()
    started = time.monotonic()
    if scanned is None:
        scanned = scan(source, cfg.system_files) if files is None else handed(source, files, cfg.system_files)
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
    log.info("ingest started source=%s device=%s files=%d", report.source, report.device_serial, len(plans))
    with archive.writing(), archive.holding_folders() as held:
        run = _Run(cfg, held, catalog, ws.custody, opts, report, progress, scanned.device)
        progress.begin(len(plans), sum(p.found.size for p in plans))
        try:
            run.run(plans)
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
    """One ingest run as a pipeline of four stages, each a thread, joined by bounded queues:

    1. copy (the calling thread): read the source, hash, write a temp file in the day folder;
    2. sync: fsync a batch of copies, give each its final name, fsync each folder once;
    3. prove: read each copy back past the page cache and compare, probe it, make it read-only;
    4. record: catalogue a batch of proven files in one transaction, their custody events with one fsync.

    So the card, the archive's writes and its reads are busy at once, and small files share their
    syncs. Nothing is catalogued before its read-back matched; a kill leaves copies that are either
    temp files (removed by the next run) or complete, placed and uncatalogued (adopted by the next run
    after reading them back). A problem with the archive, a stop request or an unexpected error halts
    the run (see `_halt`); what is not catalogued by then is listed as pending.
    """

    def __init__(self, cfg: Config, archive: Archive, catalog: Catalog, custody: CustodyLog, opts: IngestOptions,
                 report: IngestReport, progress: Progress, source_device: int) -> None:
        self.cfg, self.archive, self.catalog, self.custody, self.opts = cfg, archive, catalog, custody, opts
        self.report, self.progress, self.source_device = report, progress, source_device
        # Day manifests are rewritten at most every MANIFEST_EVERY_S while a run goes on, and at its end:
        # rewriting a day's manifest per file would cost O(files^2) on a card of thousands of files.
        self._pending_days: set[date] = set()
        self._days: set[date] = set()
        self._manifests_at = time.monotonic()
        self._decided: set[int] = set()  # indexes of the plans with an outcome
        self._created: list[list[Path]] = []  # folders this run made, per file
        self._placed: dict[str, _Item] = {}  # sha256 -> the item of this run that placed those bytes
        self._folders: set[Path] = set()  # day folders made sure of in this run
        self._known: dict[tuple[str, str, int, int], int] = {}
        self._halting = Halting((ArchiveStorageError, Cancelled))
        with catalog.session() as session:
            row = IngestRun(source=str(report.source), device_serial=report.device_serial,
                            files_seen=report.files_seen, failures=[], pid=os.getpid())
            session.add(row)
            commit(session)
            self.run_id = report.run_id = row.id
        self._books = Cataloguer(cfg, archive, catalog, custody, self.run_id, report.source)

    # -- the stages -------------------------------------------------------------------------
    def run(self, plans: list[Planned]) -> None:
        to_sync: queue.Queue[_Item | None] = queue.Queue(_SYNC_QUEUE)
        to_prove: queue.Queue[_Item | None] = queue.Queue(_PROVE_QUEUE)
        proving: queue.Queue[tuple[_Item, Future | None] | None] = queue.Queue(_PROVERS)
        to_record: queue.Queue[_Item | None] = queue.Queue(_RECORD_QUEUE)
        halting, halt, drop = self._halting, self._halt, self._drop
        stages = [
            threading.Thread(target=batch_stage, args=(to_sync, self._sync, to_prove, _SYNC_BATCH, _LINGER_S,
                                                       halting, halt, drop), name="ingest-sync", daemon=True),
            threading.Thread(target=start_each, args=(to_prove, self._start_proof, proving, halting, drop),
                             name="ingest-prove", daemon=True),
            threading.Thread(target=hand_on_in_order, args=(proving, to_record, halting, halt, drop),
                             name="ingest-proved", daemon=True),
            threading.Thread(target=batch_stage, args=(to_record, self._record, None, _RECORD_BATCH, _LINGER_S,
                                                       halting, halt, drop), name="ingest-record", daemon=True),
        ]
        self._provers = ThreadPoolExecutor(_PROVERS, thread_name_prefix="ingest-prove")
        self._probers = ThreadPoolExecutor(1, thread_name_prefix="ingest-probe")
        for thread in stages:
            thread.start()
        try:
            self._known = known_files(self.catalog, plans)
            for index, planned in enumerate(plans):
                if self._halting.halted.is_set():
                    break
                if self.opts.cancel is not None and self.opts.cancel.is_set():
                    self._halt(Cancelled("stopped before this file"))
                    break
                to_sync.put(self._copy(_Item(index, planned)))
        except BaseException as exc:
            self._fail(exc)
        finally:
            to_sync.put(END)
            for thread in stages:
                thread.join()
            self._provers.shutdown()
            self._probers.shutdown()  # each probe closes its own descriptor
            for created in reversed(self._created):
                self.archive.drop_empty(created)  # only folders left empty go
        self.report.pending = [p.found.rel for i, p in enumerate(plans) if i not in self._decided]
        if self._halting.crash is not None:
            raise self._halting.crash
        if self.report.pending:
            log.error("ingest ended early source=%s reason=%s pending=%d error=%s", self.report.source,
                      self.report.ended, len(self.report.pending), self.report.stopped or self.report.ended)
        try:
            self.refresh_manifests(self._days)
        except ArchiveStorageError as exc:
            self.report.stopped = self.report.stopped or exc

    def _copy(self, item: _Item) -> _Item:
        """Stage 1: the source's bytes into a temp file of their day folder, hashed on the way."""
        planned, found = item.planned, item.planned.found
        try:
            item.known = self._known.get((planned.serial or "", found.rel, found.size, found.mtime_ns))
            if item.known is not None:
                return item
            item.folder = self.archive.day_folder(planned.day) / planned.device_folder
            if item.folder not in self._folders:
                self._created.append(self.archive.ensure_folder(item.folder))
                self._folders.add(item.folder)
            try:
                source = found.path if found.fd is None else found.fd
                item.copied = self.archive.copy_in(source, item.folder, planned.name, self.cfg.hashes,
                                                   SourceStat(found.size, found.mtime_ns), self.progress.advance,
                                                   self.opts.cancel, sync=False, read_back=found.size >= DEEP)
            except SourceReadError:
                if self._source_gone():
                    raise _SourceGone(f"{self.report.source} is gone (recorder removed?)") from None
                raise
            self.report.bytes_copied += item.copied.size
            item.probing = probe_copy_early(item.copied, found.path.name, self._probers)
        except FileProblem as exc:
            item.error = str(exc)
        except (ArchiveStorageError, _SourceGone, Cancelled) as exc:
            self._halt(exc)
            item.dropped = True
        return item

    def _sync(self, items: list[_Item]) -> None:
        """Stage 2: make a batch of copies durable and give each its final name (or none, when the catalog
        or this run already holds those bytes); then one fsync per folder for all the new names."""
        live = [i for i in items if i.live]
        if len(live) > 1 and all(i.copied.size < CHUNK for i in live):
            # small files: one syncfs writes them all out with one journal commit, where an fsync each
            # would wait for a commit each (and for the other stages' commits in between)
            self.archive.sync_all()
        for item in live:
            item.copied.sync(item.folder)
        with self.catalog.reading() as session:  # never waits for the catalogue stage's write lock
            shas = [i.copied.digests["sha256"] for i in live]
            held = dict(session.execute(select(Recording.sha256, Recording.id)
                                        .where(one_of(session, Recording.sha256, shas))).all()) if shas else {}
        folders: set[Path] = set()
        try:
            for item in live:
                sha256 = item.copied.digests["sha256"]
                if sha256 in held:
                    item.existing = held[sha256]
                elif sha256 in self._placed:
                    item.twin = self._placed[sha256]
                else:
                    try:
                        item.final, item.adopted = self.archive.place(item.copied, item.folder, item.planned.name,
                                                                      sync_folder=False)
                    except FileProblem as exc:
                        item.error = str(exc)
                        continue
                    self._placed[sha256] = item
                    folders.add(item.folder)
                item.copied.close()  # drops the temp file where nothing was placed
        finally:
            for folder in sorted(folders):
                self.archive.sync_folder(folder)

    def _start_proof(self, item: _Item) -> Future | None:
        """Stage 3: prove each placed copy as it comes (up to _PROVERS at once: a disk serves several reads at
        once about as fast as one, and a long probe holds up no other file); handed on in their order."""
        return self._provers.submit(self._prove_one, item) if item.final is not None and item.error is None else None

    def _prove_one(self, item: _Item) -> ArchiverError | Cancelled | None:
        """One file: None when proved or failed on its own; the error when the archive or a stop ended it."""
        try:
            if item.adopted:  # read back already, when it was found at its name
                item.probed = probe(item.final, self.cfg.timezone)
                self.archive.seal(item.final)  # its interrupted run may not have made it read-only
            elif item.copied.read_back is not None:  # read back as it was copied
                verify_copy(self.archive, item.final, item.copied, self.cfg.hashes, self.opts.cancel)
                # probed on its copy while it was placed; if that told nothing, probed again at its name
                item.probed = item.probing and item.probing.result() or probe(item.final, self.cfg.timezone)
            elif item.copied.size < CHUNK:  # its bytes, read back, are enough to tell a photo
                head = bytearray()
                verify_copy(self.archive, item.final, item.copied, self.cfg.hashes, self.opts.cancel, head)
                item.probed = probe(item.final, self.cfg.timezone, bytes(head))
            else:
                with ThreadPoolExecutor(1) as pool:  # ffprobe reads the copy while we read it back
                    probing = pool.submit(probe, item.final, self.cfg.timezone)
                    verify_copy(self.archive, item.final, item.copied, self.cfg.hashes, self.opts.cancel)
                    item.probed = probing.result()
        except (FileProblem, FileNotFoundError) as exc:
            # FileNotFoundError: an identical file this run adopted from a parallel ingest went when that
            # ingest's read-back failed; the next run copies it again
            item.error, item.final = (str(exc) if isinstance(exc, FileProblem) else
                                      _("the archived copy went missing before it was proved: ingest again")), None
            self._placed.pop(item.copied.digests["sha256"], None)
        except (ArchiveStorageError, Cancelled) as exc:
            return exc
        except OSError as exc:
            return storage_error(exc, str(item.final.parent))
        return None

    def _record(self, items: list[_Item]) -> None:
        """Stage 4: catalogue a batch in one transaction (one fsync of the custody log for all its events),
        then count each file, and clear it from the recorder where asked."""
        ready = [i for i in items if i.error is None and not i.dropped]
        try:
            self._books.catalogue(ready)
        except IntegrityError:
            # Another process catalogued some of the same bytes meanwhile: one by one, theirs stands.
            for item in ready:
                try:
                    self._books.catalogue([item])
                except IntegrityError:
                    if item.final is None:
                        raise
                    self._books.lost_race(item)
        except OSError as exc:
            raise storage_error(exc, str(self.archive.data_dir)) from exc
        for item in items:
            if not item.dropped:
                self._decide(item)
        if self._pending_days and time.monotonic() - self._manifests_at >= MANIFEST_EVERY_S:
            self.refresh_manifests(self._pending_days)

    def _decide(self, item: _Item) -> None:
        """Count a file whose batch is committed (or that failed), and clear it from the recorder if asked."""
        report, rel = self.report, item.planned.found.rel
        self._decided.add(item.index)
        if item.known is not None:
            self.progress.advance(item.planned.found.size)
            outcome = "already archived"
        elif item.recording is None:
            outcome = "failed"
            error = item.error or _("the same bytes as another file of this run, which was not archived: ingest "
                                    "again")
            report.failed.append({"path": rel, "error": error})
            log.warning("file not archived source=%s path=%r error=%s", report.source, rel, error)
        elif item.final is not None:
            outcome = "ingested"
            report.ingested += 1
            report.recording_ids.append(item.recording.id)
            report.flagged += bool(item.recording.flags)
        else:
            outcome = "already archived"
        if outcome != "failed":
            self._days.add(item.planned.day)
            if outcome == "ingested":
                self._pending_days.add(item.planned.day)
            if outcome == "already archived":
                report.already_archived += 1
            self._clear(item.planned.found, item.recording)
        self.progress.file_done(rel, outcome)

    # -- halting -----------------------------------------------------------------------------
    def _halt(self, exc: BaseException) -> None:
        """End the run early. No new file is started; on a stop request the stages drop what they hold (a
        stop takes a second or two, not the read-back of every file in flight), otherwise (a pulled recorder,
        a full archive disk) they finish it where they still can."""
        if not self._halting.halt(exc, drop=isinstance(exc, Cancelled)):
            return
        report = self.report
        if isinstance(exc, ArchiveStorageError):
            report.stopped, report.ended = exc, "archive"
        else:
            report.ended = "cancelled" if isinstance(exc, Cancelled) else "source removed"

    def _fail(self, exc: BaseException) -> None:
        """An error nobody expected: stop everything, and raise it once the stages have ended."""
        self._halting.fail(exc)

    def _drop(self, items: list[_Item]) -> None:
        """Let go of files not catalogued: temp copies go, and so do copies this run placed (the next run
        copies them again); each stays pending. Files that failed stay failed."""
        for item in items:
            if item.copied is not None:
                item.copied.close()
            if item.final is not None and not item.adopted:
                try:
                    item.final.unlink(missing_ok=True)
                except OSError:
                    pass  # the next run adopts it after reading it back
            item.final = None
            item.dropped = item.error is None

    # -- the recorder --------------------------------------------------------------------------
    def _source_gone(self) -> bool:
        if not self.source_device:  # handed in: the source is a name, never looked at
            return False
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

    def _event(self, action: str, recording: Recording, details: dict[str, Any]) -> None:
        self.custody.append(action, subject(recording), details)

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
                row.ingested, row.already_archived = report.ingested, report.already_archived
                row.flagged, row.failed = report.flagged, len(report.failed)
                row.bytes_copied = report.bytes_copied
                row.failures = report.failed + [{"path": p, "error": f"pending ({report.ended})"}
                                                for p in report.pending]
                row.error = str(report.stopped) if report.stopped else report.ended
                commit(session)
        except ArchiveStorageError as exc:
            # The run's own record could not be closed (the catalog disk is full); the files' rows are safe.
            log.error("could not record the end of ingest run %s: %s", self.run_id, exc)
            report.stopped = report.stopped or exc


