"""The ingest pipeline: scan -> plan, then four stages that overlap across files: copy+hash ->
sync+place -> read back+probe+seal -> catalog (a batch at a time).

`ingest()` is what the daemon calls; `start()` is what a one-shot `archiver ingest` calls: the copy starts
before the catalog and the custody log are open (loading them, SQLAlchemy and the rest takes a few tenths of a
second), and `Run.finish` hands them over. Nothing here imports the catalog's side until then
(`ingest.record`). It writes nothing to the source unless asked to clear it (`IngestOptions.clear`), and then
deletes a file only after its archived copy is verified. Per-file problems are collected in the report and the
run goes on; a problem with the archive itself (disk full, I/O error), a pulled recorder or a stop request ends
the run, leaving what was done done, nothing half-done, and the rest listed as pending.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from archiver.archive.copying import CHUNK, DEEP, Cancelled, quick_handoffs
from archiver.archive.datadir import free_bytes
from archiver.archive.store import Archive, Copied, SourceStat
from archiver.config import Config
from archiver.errors import (
    ArchiverError,
    ArchiveStorageError,
    FileProblem,
    SourceReadError,
    storage_error,
)
from archiver.i18n import _
from archiver.ingest import media
from archiver.ingest.clearing import clear_from_recorder
from archiver.ingest.options import IngestOptions, IngestReport, NoProgress, Progress
from archiver.ingest.plan import Planned, plan_file
from archiver.ingest.proof import probe, probe_copy_early, verify_copy
from archiver.ingest.scan import ScanResult, handed, scan, source_gone
from archiver.ingest.stages import END, Halting, batch_stage, hand_on_in_order, start_each

if TYPE_CHECKING:
    from archiver.archive.workspace import Workspace
    from archiver.catalog import Catalog, Recording
    from archiver.ingest.record import Cataloguer
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
_PROBERS = 2  # big recordings probed on their copies at once: the last one of a card never waits for another
# Room a file must leave on the archive disk to be copied before the catalog is open: what opening it may write
# (a new catalog and its key, a migration, the run's row) is never crowded out by the copy.
_EARLY_ROOM = 64 << 20
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

    @property
    def key(self) -> tuple[str, str, int, int]:
        """What makes it a file archived before: its recorder, path, size and mtime."""
        found = self.planned.found
        return self.planned.serial or "", found.rel, found.size, found.mtime_ns


def ingest(ws: Workspace, source: Path, options: IngestOptions | None = None,
           files: list[tuple[str, int]] | None = None, scanned: ScanResult | None = None) -> IngestReport:
    """Archive every recording under `source` into the workspace's archive and catalog, each with its custody
    event (there is no ingest without the custody log); or, with `files`, the files a person handed in:
    relative names and open descriptors, `source` then only naming where they came from; or what `scanned`
    lists (a scan made beforehand). Raises SourceError if the source cannot be read at all."""
    return start(ws.cfg, ws.archive, source, options, files, scanned, ws=ws).finish()


def start(cfg: Config, archive: Archive, source: Path, options: IngestOptions | None = None,
          files: list[tuple[str, int]] | None = None, scanned: ScanResult | None = None,
          ws: Workspace | None = None) -> Run:
    """`ingest`; without `ws`, its copy started before the catalog is open, and `finish` opens it. Until then
    nothing is placed or catalogued, and a file is copied only if its name in the archive is free (one archived
    before waits for the catalog to say so: a card docked again is not read again) and the disk keeps room."""
    opts = options or IngestOptions()
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
    with ExitStack() as held:
        held.enter_context(archive.writing())
        run = Run(cfg, held.enter_context(archive.holding_folders()), opts, report, scanned.device, plans, started)
        if ws is not None:
            run.open_books(ws)
        run.progress.begin(len(plans), sum(p.found.size for p in plans))
        run.start()
        run.held = held.pop_all()
        return run


class Run:
    """One ingest run as a pipeline of four stages, each a thread, joined by bounded queues:

    1. copy: read the source, hash, write a temp file in the day folder;
    2. sync: fsync a batch of copies, give each its final name, fsync each folder once;
    3. prove: read each copy back past the page cache and compare, probe it, make it read-only;
    4. record: catalogue a batch of proven files in one transaction, their custody events with one fsync.

    So the card, the archive's writes and its reads are busy at once, and small files share their
    syncs. The copy starts before the catalog is open (`start`); the sync stage waits for it (`finish`).
    Nothing is catalogued before its read-back matched; a kill leaves copies that are either
    temp files (removed by the next run) or complete, placed and uncatalogued (adopted by the next run
    after reading them back). A problem with the archive, a stop request or an unexpected error halts
    the run (see `_halt`); what is not catalogued by then is listed as pending.
    """

    def __init__(self, cfg: Config, archive: Archive, opts: IngestOptions, report: IngestReport, source_device: int,
                 plans: list[Planned], started: float) -> None:
        self.cfg, self.archive, self.opts, self.report, self.plans = cfg, archive, opts, report, plans
        self.progress: Progress = opts.progress or NoProgress()
        self.source_device = source_device
        self.held, self.started = ExitStack(), started  # what `finish` lets go of (given by `start`); when it began
        # Day manifests are rewritten at most every MANIFEST_EVERY_S while a run goes on, and at its end:
        # rewriting a day's manifest per file would cost O(files^2) on a card of thousands of files.
        self._pending_days: set[date] = set()
        self._days: set[date] = set()
        self._manifests_at = time.monotonic()
        self._decided: set[int] = set()  # indexes of the plans with an outcome
        self._created: list[list[Path]] = []  # folders this run made, per file
        self._placed: dict[str, _Item] = {}  # sha256 -> the item of this run that placed those bytes
        self._folders: set[Path] = set()  # day folders made sure of in this run
        self._halting = Halting((ArchiveStorageError, Cancelled))
        self._stopping = self._halting.stopping(opts.cancel)
        # the catalog's side, handed over by `open_books` (`_opened` set once it is, or once opening it failed)
        self._opened = threading.Event()
        self.catalog: Catalog | None = None
        self.custody: CustodyLog | None = None
        self.run_id: int | None = None
        self._books: Cataloguer | None = None
        self._known: dict[tuple[str, str, int, int], int] = {}

    # -- the stages -------------------------------------------------------------------------
    def start(self) -> None:
        to_sync: queue.Queue[_Item | None] = queue.Queue(_SYNC_QUEUE)
        to_prove: queue.Queue[_Item | None] = queue.Queue(_PROVE_QUEUE)
        proving: queue.Queue[tuple[_Item, Future | None] | None] = queue.Queue(_PROVERS)
        to_record: queue.Queue[_Item | None] = queue.Queue(_RECORD_QUEUE)
        halting, halt, drop = self._halting, self._halt, self._drop
        self._stages = [
            threading.Thread(target=self._copy_all, args=(to_sync,), name="ingest-copy", daemon=True),
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
        self._probers = ThreadPoolExecutor(_PROBERS, thread_name_prefix="ingest-probe")
        quick_handoffs()
        for thread in self._stages:
            thread.start()

    def open_books(self, ws: Workspace) -> None:
        """The catalog's side: the run's row, the catalogue stage's work, the files archived before."""
        from archiver.ingest.record import Cataloguer, known_files, open_run

        self.catalog, self.custody = ws.catalog, ws.custody
        self.run_id = self.report.run_id = open_run(ws.catalog, self.report)
        self._books = Cataloguer(self.cfg, self.archive, ws.catalog, ws.custody, self.run_id, self.report.source)
        self._known = known_files(ws.catalog, self.plans)
        self._opened.set()

    def _complete(self, books: Callable[[], Workspace] | None) -> None:
        """Hand the catalog's side over (opened by `books`, unless it was at the start), then wait for the stages
        to end."""
        try:
            if books is not None:
                self.open_books(books())
        except BaseException as exc:
            self._halting.fail(exc)  # raised once the stages have ended
        finally:
            self._opened.set()
            for thread in self._stages:
                thread.join()
            self._provers.shutdown()
            self._probers.shutdown()  # each probe closes its own descriptor
            for created in reversed(self._created):
                self.archive.drop_empty(created)  # only folders left empty go
        self.report.pending = [p.found.rel for i, p in enumerate(self.plans) if i not in self._decided]
        if self._halting.crash is not None:
            raise self._halting.crash
        if self.report.pending:
            log.error("ingest ended early source=%s reason=%s pending=%d error=%s", self.report.source,
                      self.report.ended, len(self.report.pending), self.report.stopped or self.report.ended)
        try:
            self.refresh_manifests(self._days)
        except ArchiveStorageError as exc:
            self.report.stopped = self.report.stopped or exc

    def _await_books(self) -> Cataloguer:
        """The catalog's side, once `open_books` has handed it over; raises if opening it failed (the run then
        lets go of what it holds)."""
        self._opened.wait()
        if self._books is None:
            raise RuntimeError("no catalog")  # never shown: the error that opening it raised is
        return self._books

    def _copy_all(self, to_sync: queue.Queue) -> None:
        """Stage 1, in a thread of its own: each file copied in turn, handed to the sync stage."""
        try:
            for index, planned in enumerate(self.plans):
                if self._halting.halted.is_set():
                    break
                if self.opts.cancel is not None and self.opts.cancel.is_set():
                    self._halt(Cancelled("stopped before this file"))
                    break
                to_sync.put(self._copy(_Item(index, planned)))
        except BaseException as exc:
            self._halting.fail(exc)  # raised once the stages have ended
        finally:
            to_sync.put(END)

    def _copy(self, item: _Item) -> _Item:
        """Stage 1: the source's bytes into a temp file of their day folder, hashed on the way. Before the catalog
        is open, a file waits for it if its name in the archive is taken (it may be a file archived before) or if
        copying it would leave the disk less than _EARLY_ROOM (what opening the catalog may need)."""
        planned, found = item.planned, item.planned.found
        try:
            item.folder = self.archive.day_folder(planned.day) / planned.device_folder
            if not self._opened.is_set() and (os.path.lexists(item.folder / planned.name)
                                              or free_bytes(self.archive.data_dir) - found.size < _EARLY_ROOM):
                self._await_books()
            item.known = self._known.get(item.key)
            if item.known is not None:
                return item
            if item.folder not in self._folders:
                self._created.append(self.archive.ensure_folder(item.folder))
                self._folders.add(item.folder)
            try:
                source = found.path if found.fd is None else found.fd
                item.copied = self.archive.copy_in(source, item.folder, planned.name, self.cfg.hashes,
                                                   SourceStat(found.size, found.mtime_ns), self.progress.advance,
                                                   self._stopping, sync=False, read_back=found.size >= DEEP)
            except SourceReadError:
                if source_gone(self.report.source, self.source_device):
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
        from archiver.ingest.record import held_bytes

        self._await_books()
        for item in items:  # copied before the catalog was open, and archived before after all
            if item.live and (known := self._known.get(item.key)) is not None:
                item.known = known
                item.copied.close()
        live = [i for i in items if i.live]
        if len(live) > 1 and all(i.copied.size < CHUNK for i in live):
            # small files: one syncfs writes them all out with one journal commit, where an fsync each
            # would wait for a commit each (and for the other stages' commits in between)
            self.archive.sync_all()
        for item in live:
            item.copied.sync(item.folder)
        # a read that never waits for the catalogue stage's write lock
        held = held_bytes(self.catalog, [i.copied.digests["sha256"] for i in live])
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
            if ready:
                self._await_books().catalogue(ready)
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
            if item.copied is None:  # else counted as it was copied
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
            report.cleared += clear_from_recorder(item.planned.found, item.recording, self.opts, self.archive,
                                                  self.custody, str(report.source))
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

    # -- the run ---------------------------------------------------------------------------
    def refresh_manifests(self, days: set[date]) -> None:
        from archiver.archive.manifests import write_day_manifests

        if self.catalog is None:  # never opened: nothing was catalogued
            return
        write_day_manifests(self.archive, self.catalog, (self.archive.day_folder(d) for d in days), self.cfg.hashes,
                            self.opts.locks)
        self._pending_days = set()
        self._manifests_at = time.monotonic()

    def finish(self, books: Callable[[], Workspace] | None = None) -> IngestReport:
        """Open the catalog and the custody log (`books`, in the calling thread) unless `start` was given them,
        hand them over, and wait for the end. An error opening them ends the run (nothing is placed or
        catalogued) and is raised."""
        report = self.report
        with self.held:
            try:
                self._complete(books)
            finally:
                self.progress.end()
                report.seconds = time.monotonic() - self.started
                try:
                    if self.run_id is not None:
                        from archiver.ingest.record import close_run

                        close_run(self.catalog, self.run_id, report)
                except ArchiveStorageError as exc:
                    # The run's own row could not be closed (the catalog disk is full); the files' rows are safe.
                    log.error("could not record the end of ingest run %s: %s", self.run_id, exc)
                    report.stopped = report.stopped or exc
        log.info(
            "ingest finished source=%s device=%s ingested=%d already=%d failed=%d pending=%d bytes=%d cleared=%d "
            "seconds=%.1f", report.source, report.device_serial, report.ingested, report.already_archived,
            len(report.failed), len(report.pending), report.bytes_copied, report.cleared, report.seconds,
        )
        return report
