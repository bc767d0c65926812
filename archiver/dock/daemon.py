"""The service: watch the mount table and the inboxes, ingest what arrives, several at once.

- A recorder is a filesystem mounted at or below a mount root; each mount is ingested when it
  appears (and those already mounted at start). A new mount event for a recorder still being
  ingested runs it again afterwards, never twice at once.
- Inbox files are ingested once complete, and left where they are.
- At start, temp files left by a killed process are removed; the catalog never saw them.
- SIGTERM/SIGINT: every ingest stops at its next chunk, discarding the file in hand; exit 0.
- Idle, the main thread sleeps in poll(): no timers, except systemd's watchdog when enabled.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from archiver.archive.workspace import Workspace
from archiver.backup.run import backup_run
from archiver.backup.targets import on_every_target
from archiver.catalog import Recording
from archiver.dock import devices
from archiver.dock.child import WebChild
from archiver.dock.notify import Notifier
from archiver.dock.syncing import ContinuousSync
from archiver.dock.watch import InboxWatcher, Mount, MountTable, current_recorder_mounts, recorder_mounts
from archiver.errors import ArchiverError
from archiver.ingest.devices import identify
from archiver.ingest.options import IngestOptions, IngestReport, KeyedLocks
from archiver.ingest.pipeline import ingest
from archiver.ingest.record import sweep
from archiver.retention.capacity import capacity, low_space
from archiver.retention.clock import now
from archiver.retention.purge import finish, unfinished

log = logging.getLogger(__name__)


def sources(ws: Workspace) -> list[tuple[Path, Mount | None]]:
    """Inboxes (created if missing), then mounted recorders with their mount, from one mount-table read."""
    found: list[tuple[Path, Mount | None]] = []
    for inbox in ws.cfg.dock.inboxes:
        inbox.mkdir(parents=True, exist_ok=True)
        found.append((inbox, None))
    found.extend((m.mount_point, m) for m in current_recorder_mounts(ws.cfg.dock.mount_roots))
    return found


def run_once(ws: Workspace) -> list[IngestReport]:
    """Ingest every source once (`archiver daemon --once`). A source that cannot be read is logged."""
    sweep(ws, walk=True)
    reports = []
    for source, mount in sources(ws):
        try:
            report = ingest_then_clear(ws, source, _options(ws, mount),
                                       lambda: back_up_after_ingest(ws, None))
        except ArchiverError as exc:
            log.error("source skipped source=%s error=%s", source, exc)
            continue
        reports.append(report)
        if report.stopped is not None:
            raise report.stopped
    return reports


def ingest_then_clear(ws: Workspace, source: Path, options: IngestOptions, back_up: Callable[[], bool]) -> IngestReport:
    """Ingest a source, then the backup after ingest; once the new files are on every target, a second
    pass (nothing left to copy) frees the card when dock.clear_after = "backed_up"."""
    report = ingest(ws, source, options)
    if back_up() and options.clear and ws.cfg.dock.clear_after == "backed_up" and not report.pending:
        report = ingest(ws, source, options)
    return report


def back_up_after_ingest(ws: Workspace, cancel: threading.Event | None) -> bool:
    """The optional backup after an ingest (backup.after_ingest). True when it ran through."""
    if not ws.cfg.backup.after_ingest:
        return False
    try:
        report = backup_run(ws, cancel)
    except ArchiverError as exc:
        log.error("backup after ingest failed error=%s", exc)
        return False
    for target, counts in report.targets.items():
        log.info("backup after ingest done target=%s %s", target,
                 " ".join(f"{key}={value}" for key, value in counts.items()))
    return cancel is None or not cancel.is_set()


def _options(ws: Workspace, mount: Mount | None, **extra: Any) -> IngestOptions:
    """Device identity and card clearing for a docked recorder (None: an inbox)."""
    if mount is None:
        return IngestOptions(**extra)
    ids = devices.volume_ids(mount)
    device = identify(ws.catalog, ids)
    clear = ws.cfg.dock.clear_after in ("verified", "backed_up") and not _read_only(mount)
    backed_up = ws.cfg.dock.clear_after == "backed_up"

    def not_yet(rec: Recording) -> str | None:
        if low_space(ws):  # the archive disk nearly full: the recorder keeps its copy
            return "the archive has less than capacity.min_free free"
        if backed_up and not on_every_target(ws, rec.id):
            return "not on every backup target"
        return None

    extra["clear_when"] = not_yet
    log.info("recorder docked mount=%s fstype=%s source=%s label=%s uuid=%s registered=%s read_only=%s clear=%s",
             mount.mount_point, mount.fstype, mount.source, ids.label, ids.uuid,
             device.serial if device else None, _read_only(mount), clear)
    return IngestOptions(device=device.serial if device else None,
                         officer=device.officer_no if device else None, clear=clear, **extra)


def _read_only(mount: Mount) -> bool:
    try:
        return mount.read_only or bool(os.statvfs(mount.mount_point).f_flag & os.ST_RDONLY)
    except OSError:
        return True


class Daemon:
    def __init__(self, ws: Workspace, notifier: Notifier | None = None, web: list[str] | None = None) -> None:
        self.ws = ws
        self.cfg = ws.cfg
        self.notifier = notifier or Notifier()
        self.capacity_warning: str | None = None
        self.stop = threading.Event()
        self.locks = KeyedLocks()
        self.pool = ThreadPoolExecutor(self.cfg.dock.max_parallel, thread_name_prefix="ingest")
        self.running: dict[str, Future[Any]] = {}  # job key -> its ingest
        self.again: dict[str, Any] = {}  # job key -> what to run when the current one ends
        self.mounts: dict[Path, Mount] = {}
        self.inbox_queue: dict[Path, set[Path]] = {}
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.syncing = ContinuousSync(ws, self.stop)
        self.web = WebChild(self.stop, web) if web else None  # web: the command that starts the web view

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"!")
        except BlockingIOError:
            pass  # already awake

    def request_stop(self, *_args: object) -> None:
        self.stop.set()
        self.wake()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        sweep(self.ws, walk=True)
        table = MountTable()
        inboxes = InboxWatcher(self.cfg.dock.inboxes, self.cfg.dock.settle_seconds, self.wake)
        inboxes.start()
        poller = select.poll()
        poller.register(table, select.POLLPRI | select.POLLERR)
        poller.register(self._wake_r, select.POLLIN)
        for request in unfinished(self.ws):  # a purge killed half way: finish its tombstones first
            log.warning("finishing purge request=%d left half done", request)
            finish(self.ws, request)
        self.check_capacity()
        self.syncing.start()
        if self.web is not None:
            self.web.start()
        self._mounts_changed(table.read())
        self.notifier.ready(self._status())
        log.info("daemon ready data_dir=%s mount_roots=%s inboxes=%s max_parallel=%d", self.cfg.data_dir,
                 ",".join(map(str, self.cfg.dock.mount_roots)), ",".join(map(str, self.cfg.dock.inboxes)),
                 self.cfg.dock.max_parallel)
        try:
            while not self.stop.is_set():
                waits = [w for w in (inboxes.next_check(), self.notifier.watchdog_interval) if w is not None]
                events = poller.poll(int(min(waits) * 1000) if waits else None)
                for fd, _mask in events:
                    if fd == self._wake_r:
                        while True:
                            try:
                                if not os.read(self._wake_r, 4096):
                                    break
                            except BlockingIOError:
                                break
                    else:
                        self._mounts_changed(table.read())
                self._reap()
                for inbox, files in inboxes.complete().items():
                    self.inbox_queue.setdefault(inbox, set()).update(files)
                self._start_inboxes()
                self.notifier.watchdog()
                self.notifier.status(self._status())
        finally:
            self.notifier.stopping()
            log.info("daemon stopping: discarding the files in hand running=%d", len(self.running))
            self.stop.set()
            if self.web is not None:
                self.web.stop()
            inboxes.stop()
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.syncing.join()
            table.close()
        log.info("daemon stopped")
        return 0

    # -- recorders -------------------------------------------------------------------------
    def _mounts_changed(self, table: list[Mount]) -> None:
        current = {m.mount_point: m for m in recorder_mounts(table, self.cfg.dock.mount_roots)}
        for point in self.mounts.keys() - current.keys():
            log.info("recorder removed mount=%s", point)
        for point, mount in current.items():
            known = self.mounts.get(point)
            if known is None or known.mount_id != mount.mount_id:
                self._start(f"mount:{point}", self._ingest_mount, mount)
        self.mounts = current

    def _ingest_mount(self, mount: Mount) -> IngestReport:
        options = _options(self.ws, mount, cancel=self.stop, locks=self.locks)
        with self.locks.hold(f"device:{options.device or mount.mount_point}"):
            return ingest_then_clear(self.ws, mount.mount_point, options, self._backup)

    def _backup(self) -> bool:
        if not self.cfg.backup.after_ingest or self.stop.is_set():
            return False
        with self.locks.hold("backup"):
            return back_up_after_ingest(self.ws, self.stop)

    # -- inboxes ---------------------------------------------------------------------------
    def _start_inboxes(self) -> None:
        for inbox, files in list(self.inbox_queue.items()):
            if files and f"inbox:{inbox}" not in self.running:
                del self.inbox_queue[inbox]
                self._start(f"inbox:{inbox}", self._ingest_inbox, inbox, frozenset(files))

    def _ingest_inbox(self, inbox: Path, files: frozenset[Path]) -> IngestReport:
        options = IngestOptions(only=files, cancel=self.stop, locks=self.locks)
        report = ingest(self.ws, inbox, options)
        self._backup()
        return report

    # -- jobs ------------------------------------------------------------------------------
    def _start(self, key: str, fn: Any, *args: Any) -> None:
        if self.stop.is_set():
            return
        if key in self.running:
            self.again[key] = (fn, args)  # the same recorder is never ingested twice at once
            return
        future = self.pool.submit(fn, *args)
        future.add_done_callback(lambda _f: self.wake())
        self.running[key] = future

    def _reap(self) -> None:
        for key, future in list(self.running.items()):
            if not future.done():
                continue
            del self.running[key]
            self.check_capacity()
            self.syncing.poke()
            try:
                report = future.result()
            except ArchiverError as exc:
                log.error("ingest failed job=%s error=%s", key, exc)
            except Exception:
                log.exception("ingest crashed job=%s", key)
            else:
                waiting = [f["path"] for f in report.failed] + report.pending
                if waiting:
                    log.warning("files pending job=%s reason=%s count=%d files=%s", key,
                                report.ended or "failed", len(waiting), ",".join(repr(p) for p in waiting[:20]))
            if key in self.again:
                fn, args = self.again.pop(key)
                if not key.startswith("mount:") or Path(key[6:]) in self.mounts:
                    self._start(key, fn, *args)

    def _status(self) -> str:
        text = f"idle; {len(self.mounts)} recorder(s) mounted" if not self.running else \
            "ingesting " + ", ".join(key.split(":", 1)[1] for key in self.running)
        return f"{text}; {self.capacity_warning}" if self.capacity_warning else text

    def check_capacity(self) -> None:
        """Warn (log and systemd STATUS) when the archive disk fills within capacity.warn_days."""
        try:
            found = capacity(self.ws, now())
        except (OSError, ArchiverError) as exc:
            log.warning("capacity unknown error=%s", exc)
            return
        if found["low"]:
            self.capacity_warning = f"archive disk full in {found['days_until_full']} day(s)"
            log.warning("archive disk filling days_until_full=%s free_bytes=%d daily_growth_bytes=%d warn_days=%d",
                        found["days_until_full"], found["free_bytes"], found["daily_growth_bytes"], found["warn_days"])
        else:
            self.capacity_warning = None
