"""Where recordings arrive: mounts at or below `dock.mount_roots` (recorders), and inboxes.

The mount table is watched through /proc/self/mountinfo, which the kernel marks readable
(POLLPRI) when mounts change; inotify does not see mounts. Inboxes are watched with watchdog.
"""

from __future__ import annotations

import os
import re
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

MOUNTINFO = Path("/proc/self/mountinfo")
_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    mount_point: Path
    fstype: str
    source: str
    options: tuple[str, ...]
    mount_id: int = 0  # new for every mount: a card re-docked at the same point is a new mount

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


def _unescape(field: str) -> str:
    raw = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)
    return raw.encode("latin-1", "surrogateescape").decode("utf-8", "surrogateescape")


def parse_mountinfo(text: str) -> list[Mount]:
    """Parse /proc/self/mountinfo (see proc(5)). Pure."""
    mounts = []
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        if not sep:
            continue
        fields, rest = head.split(), tail.split()
        if len(fields) < 6 or len(rest) < 2:
            continue
        mounts.append(Mount(Path(_unescape(fields[4])), rest[0], _unescape(rest[1]), tuple(fields[5].split(",")),
                            int(fields[0]) if fields[0].isdigit() else 0))
    return mounts


def recorder_mounts(mounts: list[Mount], roots: tuple[Path, ...]) -> list[Mount]:
    """The mounts at or below a mount root, innermost last; a root itself counts only if it is a mount."""
    chosen = []
    for mount in mounts:
        if any(mount.mount_point == root or root in mount.mount_point.parents for root in roots):
            chosen.append(mount)
    return sorted({m.mount_point: m for m in chosen}.values(), key=lambda m: str(m.mount_point))


def current_recorder_mounts(roots: tuple[Path, ...]) -> list[Mount]:
    return recorder_mounts(parse_mountinfo(MOUNTINFO.read_text(errors="surrogateescape")), roots)


class MountTable:
    """The kernel's mount table. Its file descriptor polls ready (POLLPRI) when the table changes."""

    def __init__(self, path: Path = MOUNTINFO) -> None:
        self._file = path.open("rb")

    def fileno(self) -> int:
        return self._file.fileno()

    def read(self) -> list[Mount]:
        self._file.seek(0)
        return parse_mountinfo(self._file.read().decode("utf-8", "surrogateescape"))

    def close(self) -> None:
        self._file.close()


def open_for_writing(paths: set[Path]) -> set[Path]:
    """Those of `paths` that some process we can see holds open for writing (one pass over /proc)."""
    wanted = {str(p): p for p in paths}
    busy: set[Path] = set()
    if not wanted:
        return busy
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target not in wanted:
                    continue
                flags = next(line for line in (proc / "fdinfo" / fd.name).read_text().splitlines()
                             if line.startswith("flags:"))
                if int(flags.split()[1], 8) & (os.O_WRONLY | os.O_RDWR):
                    busy.add(wanted[target])
        except (OSError, StopIteration):
            continue
    return busy


class InboxWatcher:
    """Files dropped into the inboxes (watchdog), handed out once complete.

    A file is complete once its size has not changed for `settle_s` seconds and no process
    holds it open for writing. Files already there at start are treated as just dropped.
    """

    def __init__(self, inboxes: tuple[Path, ...], settle_s: float, wake: Callable[[], None]) -> None:
        self._inboxes = inboxes
        self._settle = settle_s
        self._wake = wake
        self._lock = threading.Lock()
        self._pending: dict[Path, tuple[int, float]] = {}  # path -> (size, stable since)
        self._observer = Observer()

    def start(self) -> None:
        handler = _InboxEvents(self._note)
        for inbox in self._inboxes:
            inbox.mkdir(parents=True, exist_ok=True)
            self._observer.schedule(handler, str(inbox), recursive=True)
        self._observer.start()
        for inbox in self._inboxes:
            for dirpath, _dirs, files in os.walk(inbox):
                for name in files:
                    self._note(Path(dirpath) / name)

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)

    def _note(self, path: Path) -> None:
        try:
            size = path.lstat().st_size
        except OSError:
            size = -1
        with self._lock:
            self._pending[path] = (size, time.monotonic())
        self._wake()

    def next_check(self) -> float | None:
        """Seconds until a pending file may be complete; None when nothing is pending."""
        with self._lock:
            if not self._pending:
                return None
            now = time.monotonic()
            return max(0.05, min(since + self._settle - now for _size, since in self._pending.values()))

    def complete(self) -> dict[Path, set[Path]]:
        """Take the files that are complete now, by inbox."""
        ready: dict[Path, set[Path]] = {}
        now = time.monotonic()
        settled = set()
        with self._lock:
            for path, (size, since) in list(self._pending.items()):
                try:
                    st = path.lstat()
                except OSError:
                    del self._pending[path]  # gone (moved away, deleted): nothing to do
                    continue
                if not stat.S_ISREG(st.st_mode):
                    del self._pending[path]
                elif st.st_size != size:
                    self._pending[path] = (st.st_size, now)
                elif now - since >= self._settle:
                    settled.add(path)
            busy = open_for_writing(settled)
            for path in busy:  # still being written: wait another settle period
                self._pending[path] = (self._pending[path][0], now)
            for path in settled - busy:
                del self._pending[path]
                inbox = next(i for i in self._inboxes if i in path.parents)
                ready.setdefault(inbox, set()).add(path)
        return ready


class _InboxEvents(FileSystemEventHandler):
    def __init__(self, note: Callable[[Path], None]) -> None:
        self._note = note

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        target = getattr(event, "dest_path", "") or event.src_path
        if event.event_type in ("created", "modified", "moved", "closed"):
            self._note(Path(os.fsdecode(target)))
