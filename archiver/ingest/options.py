"""What a caller gives an ingest and what it gets back: the options beyond the configuration, the report, the
progress it is shown, and the locks the ingests running in one process (the daemon's) share."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from archiver.errors import ArchiverError
from archiver.ingest.scan import Skipped

if TYPE_CHECKING:  # the catalog (SQLAlchemy) loads only once there is something to record
    from archiver.catalog import Recording


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


class NoProgress:
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
