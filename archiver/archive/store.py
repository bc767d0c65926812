"""The archive on disk: files written once (temp + fsync + rename + folder fsync), read back
past the page cache, made read-only; per-day manifests that `sha256sum -c` accepts.

Layout under the data dir: `archive/YYYY/MM/DD/<serial>/<name>`, with `manifest-sha256.txt`
(and `manifest-sm3.txt` when SM3 is configured) in each day folder.
"""

from __future__ import annotations

import copy
import logging
import os
import stat
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import BinaryIO

from archiver.archive.copying import (
    _errno_error,
    _hash_file,
    _libc,
    _make_durable,
    _NoDirectIO,
    _pump,
    copy_deep,
    new_hasher,
    open_source,
)
from archiver.errors import (
    FileProblem,
    SourceChangedError,
    SourceReadError,
    storage_error,
)
from archiver.fs import NAME_MAX, AtomicFile, Folder, fit_name
from archiver.i18n import _

log = logging.getLogger(__name__)

ARCHIVE_DIR = "archive"


def safe_name(name: str) -> str:
    """The name a file gets in the archive: control characters and '/' replaced, never hidden.

    The original name is kept exactly in the catalog; the archive name only has to be safe
    for shells, manifests and the temp-file convention (a leading dot is reserved).
    """
    cleaned = "".join("_" if ord(c) < 32 or c in "/\x7f" else c for c in name)
    if not cleaned or cleaned in (".", "..") or cleaned.startswith("."):
        cleaned = "_" + cleaned
    return fit_name(cleaned)


def alternate_name(name: str, sha256: str) -> str:
    """The name for a different file that arrives under a name already taken that day."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        return fit_name(f"{name}.{sha256[:12]}")
    tail = f".{sha256[:12]}.{ext}"
    return fit_name(stem, NAME_MAX - len(tail.encode())) + tail


@dataclass(frozen=True)
class SourceStat:
    size: int
    mtime_ns: int


@dataclass
class Copied:
    """A fsynced copy under a temp name in its archive folder, not yet given its final name."""

    file: AtomicFile
    size: int
    digests: dict[str, str]
    read_back: dict[str, str] | None = None  # the digests of the bytes on the disk, when the copy already proved them

    def sync(self, folder: Path) -> None:
        """Make the copy's bytes durable (copy_in(sync=False) leaves that to a later stage)."""
        _make_durable(self.file, folder)

    def close(self) -> None:
        """Drop the temp file if it was not placed, and let go of the folder."""
        self.file.discard()
        self.file.folder.close()


FOOTAGE_MODE = 0o440  # read-only, and only for the service user and the reader group


class Archive:
    """The archive folder of one data dir. Every path below the data dir is opened without following
    symlinks: a link planted in the archive stops the run (UnsafePathError) instead of redirecting it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.root = data_dir / ARCHIVE_DIR
        self._held: dict[Path, Folder] | None = None

    @contextmanager
    def holding_folders(self) -> Iterator[Archive]:
        """A view of this archive that keeps each folder it opens open until the block ends, handing out
        duplicates of its descriptor: one syscall instead of a walk from the data dir for every use (an
        ingest of thousands of small files uses each day folder thousands of times). For one ingest run."""
        view = copy.copy(self)
        view._held = {}
        try:
            yield view
        finally:
            for held in view._held.values():
                held.close()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """This process writes into the archive while the block runs, so a run killed meanwhile has its temp files
        swept by the next one (`fs.sweep_interrupted`). The mark (`Folder.writing`) goes in the data dir: verify
        reports any entry of the archive that the catalog does not know."""
        with Folder.open(self.data_dir) as top, top.writing():
            yield

    # -- layout -------------------------------------------------------------------------
    def day_folder(self, day: date) -> Path:
        return self.root / f"{day.year:04d}" / f"{day.month:02d}" / f"{day.day:02d}"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.data_dir).as_posix()

    def folder(self, folder: Path, *, create: bool = False, created: list[Path] | None = None) -> Folder:
        """A folder of the data dir, opened component by component without following symlinks."""
        if self._held is None or create:
            return Folder.open(self.data_dir, self.relative(folder), create=create, created=created)
        held = self._held.get(folder)
        if held is None:
            opened = Folder.open(self.data_dir, self.relative(folder))
            held = self._held.setdefault(folder, opened)
            if held is not opened:  # another stage opened it meanwhile
                opened.close()
        return Folder(os.dup(held.fd), held.path)

    def ensure_folder(self, folder: Path) -> list[Path]:
        """Create `folder` and any missing parents, making each new entry durable. Returns those created."""
        created: list[Path] = []
        self.folder(folder, create=True, created=created).close()
        return created

    @staticmethod
    def drop_empty(created: list[Path]) -> None:
        """Remove folders `ensure_folder` made if nothing was put in them (innermost first)."""
        for path in reversed(created):
            try:
                path.rmdir()  # rmdir never follows a symlink
            except OSError:
                return

    # -- writing ------------------------------------------------------------------------
    def copy_in(self, source: Path | int, folder: Path, name: str, algorithms: Iterable[str],
                expected: SourceStat, on_bytes=None, cancel: threading.Event | None = None,
                sync: bool = True, read_back: bool = False) -> Copied:
        """Copy `source` (a path, or a descriptor handed in) to a temp file in `folder`, hashing in the same read
        pass.

        The temp file is fsynced before this returns, unless `sync` is False: then the caller calls
        `Copied.sync` before placing it (the pipeline does, in a stage of its own, while the next file
        is read). With `read_back` (a big file), each chunk is written straight to the disk and read back
        past the page cache right after, and compared with the bytes that were hashed; when every chunk
        matched, `Copied.read_back` holds the digests, so the proof costs no pass of its own (else it is
        None, and the caller reads the copy back whole). Raises SourceChangedError if the source's
        size or mtime moved during the copy, SourceReadError if reading it failed, and an
        ArchiveStorageError if writing failed; in every case the temp file is gone.
        """
        hashers = {a: new_hasher(a) for a in algorithms}
        src_fd = os.dup(source) if isinstance(source, int) else open_source(source)
        out = None
        try:
            before = os.fstat(src_fd)
            if not stat.S_ISREG(before.st_mode):
                raise SourceReadError(_("no longer a regular file"))
            if (before.st_size, before.st_mtime_ns) != (expected.size, expected.mtime_ns):
                raise SourceChangedError(_("changed since the scan; ingest again once the recorder is idle"))
            # no POSIX_FADV_SEQUENTIAL: our own read-ahead keeps the card busy, and the kernel's doubled
            # window made a card throttled to USB 3 speed read at 177 MiB/s instead of 199 (scripts/bench cards)
            place = self.folder(folder)
            try:
                out = place.new_file(name, FOOTAGE_MODE)
            except OSError as exc:
                place.close()
                raise storage_error(exc, str(folder)) from exc
            if read_back:
                total, back = copy_deep(place, out, src_fd, before.st_size, hashers, folder, on_bytes, cancel)
            else:
                total, back = _pump(src_fd, out.fd, before.st_size, hashers.values(), folder, on_bytes, cancel), None
            if sync:
                _make_durable(out, folder)
            after = os.fstat(src_fd)
            if total != before.st_size or (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                raise SourceChangedError(
                    _("changed while being read (size {st_size} -> {st_size2}, read {total}); ingest again once "
                      "the recorder has finished writing").format(
                      st_size=before.st_size, st_size2=after.st_size, total=total)
                )
        except BaseException:
            if out is not None:
                Copied(out, 0, {}).close()
            raise
        finally:
            try:
                os.close(src_fd)
            except OSError:
                pass  # a read-only descriptor on a pulled recorder (ENOTCONN, EIO): nothing to lose
        return Copied(out, total, {a: h.hexdigest() for a, h in hashers.items()}, back)

    def place(self, copied: Copied, folder: Path, name: str, sync_folder: bool = True) -> tuple[Path, bool]:
        """Give the temp file its final name without ever replacing a file; the file is then read-only.

        Returns (final path, adopted). `adopted` is True when an identical file was already at
        the final name (left by a run that stopped before cataloguing it); the temp is dropped.
        With `sync_folder` False the new name is durable only once the caller fsyncs the folder
        (`Archive.sync_folder`), which the pipeline does once for a batch of files.
        """
        sha256 = copied.digests["sha256"]
        try:
            for candidate in (name, alternate_name(name, sha256)):
                if copied.file.commit(candidate, replace=False, sync_folder=sync_folder):
                    return folder / candidate, False
                if self.read_back(folder / candidate, ["sha256"])["sha256"] == sha256:
                    copied.file.discard()
                    copied.file.folder.sync()
                    return folder / candidate, True
        except OSError as exc:
            raise storage_error(exc, str(folder)) from exc
        copied.file.discard()
        raise FileProblem(_("the archive already holds different files at {value} and its alternate name").format(
                            value=folder / name))

    def sync_folder(self, folder: Path) -> None:
        """Make the names given in `folder` durable."""
        try:
            with self.folder(folder) as opened:
                opened.sync()
        except OSError as exc:
            raise storage_error(exc, str(folder)) from exc

    def sync_all(self) -> None:
        """Write out everything pending on the archive's filesystem (syncfs(2)): after it, an fsync of a
        file written before finds nothing left to do."""
        with self.folder(self.root) as root:  # never through a symlink put in the archive's place
            if _libc().syncfs(root.fd) != 0:
                raise storage_error(_errno_error(), str(self.root))

    def seal(self, path: Path) -> None:
        """Read-only for good (a file adopted from an interrupted run may not be yet)."""
        with self.folder(path.parent) as folder:
            fd = folder.open_file(path.name)
            try:
                os.fchmod(fd, FOOTAGE_MODE)
            finally:
                os.close(fd)

    def write_manifest(self, day: Path, algorithm: str, entries: Iterable[tuple[str, str]]) -> Path:
        """Atomically rewrite `manifest-<algorithm>.txt` in a day folder from (relative path, digest).

        Left alone when it already says exactly that; removed when nothing is left to list (every
        recording of that day purged), so no empty manifest makes `sha256sum -c` fail.
        """
        data = "".join(_manifest_line(digest, rel) for rel, digest in sorted(entries)).encode()
        name = f"manifest-{algorithm}.txt"
        try:
            with self.folder(day) as folder:
                if not data:
                    folder.unlink(name)
                    folder.sync()
                    return day / name
                try:
                    if folder.read_bytes(name) == data:
                        return day / name
                except FileNotFoundError:
                    pass
                folder.write_file(name, data, FOOTAGE_MODE)
        except OSError as exc:
            raise storage_error(exc, str(day)) from exc
        return day / name

    # -- reading ------------------------------------------------------------------------
    def open(self, path: Path) -> BinaryIO:
        """An archived file for reading (backup, export), never through a symlink."""
        with self.folder(path.parent) as folder:
            return os.fdopen(folder.open_file(path.name), "rb")

    def read_back(self, path: Path, algorithms: Iterable[str], cancel: threading.Event | None = None,
                  head: bytearray | None = None) -> dict[str, str]:
        """Hash an archived file as it is on the disk, bypassing the page cache where the filesystem allows.
        `head`, if given, receives the file's first bytes (up to a chunk), for a look at what it is."""
        with self.folder(path.parent) as folder:
            try:
                return _hash_file(folder, path.name, os.O_DIRECT, algorithms, cancel, head)
            except _NoDirectIO:
                return _hash_file(folder, path.name, 0, algorithms, cancel, head)


def _manifest_line(digest: str, rel: str) -> str:
    # GNU coreutils: a name holding a backslash or newline is escaped and the line starts with '\'.
    if "\\" in rel or "\n" in rel or "\r" in rel:
        rel = rel.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return f"\\{digest}  {rel}\n"
    return f"{digest}  {rel}\n"
