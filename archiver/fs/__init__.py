"""Every file the archiver writes, and every file of its own that it reads, goes through here.

- `Folder`: a folder opened by descriptor. Below a trusted root (the configured data dir, a
  destination the user named) every component is opened with O_NOFOLLOW, so a symlink planted
  in the data dir, an export or a backup target makes the command stop instead of reading or
  writing elsewhere.
- `AtomicFile`: the one durable-write primitive: a temp name in the destination folder, fsync,
  mode, rename (or a link that never replaces), folder fsync, and the temp file removed on every
  failure path.
- Owner and mode checks (`fs.owners`); the sweep of what killed writers left and staged folders (`fs.sweep`).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from archiver.errors import ArchiverError, UnsafePathError, storage_error
from archiver.fs.owners import chgrp, give_group
from archiver.i18n import _

TEMP_PREFIX = ".tmp-"  # then the writer's pid, '-', a random tag, '-', the name
MARK = "-writing"  # how a writer's mark (`Folder.writing`) ends
NAME_MAX = 255
UMASK = 0o027  # folders 0750, files 0640: nothing for strangers
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def fit_name(name: str, budget: int = NAME_MAX) -> str:
    """Shorten a name's stem so the whole name fits `budget` bytes, keeping the extension."""
    if len(name.encode()) <= budget:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext.encode()) > 16:
        stem, ext = name, ""
    suffix = f".{ext}" if ext else ""
    room = budget - len(suffix.encode())
    return stem.encode()[:room].decode("utf-8", "ignore") + suffix


def temp_name(name: str) -> str:
    """A temp name for `name` in the same folder; never longer than a name may be."""
    return fit_name(f"{TEMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}-{name}")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _planted(path: Path) -> UnsafePathError:
    try:
        kind = _("a symlink") if path.is_symlink() else _("not a folder")
    except OSError:
        kind = _("not a folder")
    return UnsafePathError(_("{path} is {kind} where the archiver keeps its own folder: refusing to follow it; "
                             "remove it (and find out who put it there), then run again").format(
                             path=path, kind=kind))


class Folder:
    """A folder held open by descriptor; names inside it are opened without following symlinks."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd, self.path = fd, path

    @classmethod
    def open(cls, root: Path, rel: str | PurePosixPath = "", *, create: bool = False, mode: int = 0o750,
             group: int | None = None, created: list[Path] | None = None) -> Folder:
        """`root` as given (it is configured or named by the user), then each component of `rel`,
        created when missing and `create` (each one made durable, and listed in `created`)."""
        try:
            if create:
                make_dirs(root, mode, group, created)
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise
        except NotADirectoryError:
            raise UnsafePathError(_("{root} is not a folder").format(root=root)) from None
        except OSError as exc:
            raise storage_error(exc, str(root)) from exc
        folder = cls(fd, root)
        try:
            for part in PurePosixPath(rel).parts:
                inner = folder.sub(part, create=create, mode=mode, group=group, created=created)
                folder.close()
                folder = inner
        except BaseException:
            folder.close()
            raise
        return folder

    def sub(self, name: str, *, create: bool = False, mode: int = 0o750, group: int | None = None,
            created: list[Path] | None = None) -> Folder:
        """The folder `name` inside this one (created, and made durable, if missing and `create`)."""
        _check_name(name)
        path = self.path / name
        if create:
            try:
                os.mkdir(name, mode, dir_fd=self.fd)
                if group is not None:
                    chgrp(name, group, self.fd)
                os.fsync(self.fd)
                if created is not None:
                    created.append(path)
            except FileExistsError:
                pass
            except OSError as exc:
                raise storage_error(exc, str(path)) from exc
        try:
            return Folder(os.open(name, _DIR_FLAGS, dir_fd=self.fd), path)
        except FileNotFoundError:
            raise
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _planted(path) from None
            raise storage_error(exc, str(path)) from exc

    def open_file(self, name: str, flags: int = os.O_RDONLY, mode: int = 0o640) -> int:
        """A descriptor for the file `name` here; a symlink in its place raises UnsafePathError."""
        _check_name(name)
        try:
            return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePathError(_("{value} is a symlink where the archiver keeps its own file: refusing to "
                                        "follow it; remove it (and find out who put it there)").format(
                                        value=self.path / name)) from None
            raise

    def read_bytes(self, name: str) -> bytes:
        with os.fdopen(self.open_file(name), "rb") as fh:
            return fh.read()

    def lstat(self, name: str) -> os.stat_result:
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False)

    def exists(self, name: str) -> bool:
        try:
            self.lstat(name)
            return True
        except FileNotFoundError:
            return False

    def unlink(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            pass

    def link(self, source: str, name: str) -> bool:
        """Give the file `source` a second name here; False if `name` exists. Never replaces anything."""
        try:
            os.link(source, name, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
        # A filesystem without hard links: the existence check and rename are not one step, but
        # only this process writes under this name.
        if self.exists(name):
            return False
        os.rename(source, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        return True

    def sync(self) -> None:
        os.fsync(self.fd)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Mark, in this folder, that this process is writing while the block runs: an empty temp file named
        `.tmp-<pid>-<rand>-writing`, made durable before anything is written, removed at the end. A process
        killed in the block leaves it, and the next `sweep_interrupted` walks for the temp files it left."""
        marker = temp_name(MARK[1:])
        try:
            os.close(self.open_file(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            self.sync()
        except OSError as exc:
            raise storage_error(exc, str(self.path)) from exc
        try:
            yield
        finally:
            try:
                self.unlink(marker)
            except OSError:
                pass  # left: the next run walks the folder once more, and removes it

    def new_file(self, name: str, mode: int = 0o640, group: int | None = None) -> AtomicFile:
        return AtomicFile(self, name, mode, group)

    def write_file(self, name: str, data: bytes, mode: int = 0o640, group: int | None = None) -> None:
        """Replace `name` here with `data`, atomically and durably."""
        with self.new_file(name, mode, group) as out:
            out.write(data)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AtomicFile:
    """A file that appears under its name only complete and durable (borg's SaveFile, by descriptor).

    Written under a temp name in the destination folder; `commit` fsyncs it, sets its mode, renames
    it over the name (or links it without replacing), fsyncs the folder. Used as a context manager it
    commits on success and removes the temp file on any exception.
    """

    def __init__(self, folder: Folder, name: str, mode: int = 0o640, group: int | None = None) -> None:
        self.folder, self.name, self.mode = folder, name, mode
        self.temp = temp_name(name)
        self.fd = folder.open_file(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.done = self.synced = False
        if group is not None:
            give_group(self.fd, group)

    def write(self, data: bytes | memoryview) -> int:
        self.synced = False
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        return len(data)

    def sync(self) -> None:
        """Make the bytes written so far durable."""
        os.fsync(self.fd)
        self.synced = True

    def flush(self) -> None:
        """Make the bytes durable (and close the descriptor): the content is final."""
        if self.fd >= 0:
            if not self.synced:
                os.fsync(self.fd)
            os.fchmod(self.fd, self.mode)
            os.close(self.fd)
            self.fd = -1

    def commit(self, name: str | None = None, *, replace: bool = True, sync_folder: bool = True) -> bool:
        """Give the content its name. With `replace=False`, False (temp kept) if the name is taken.
        With `sync_folder=False` the caller makes the new name durable (one folder fsync for many)."""
        name = name or self.name
        _check_name(name)
        self.flush()
        if replace:
            os.rename(self.temp, name, src_dir_fd=self.folder.fd, dst_dir_fd=self.folder.fd)
        elif self.folder.link(self.temp, name):
            self.folder.unlink(self.temp)
        else:
            return False
        if sync_folder:
            self.folder.sync()
        self.done = True
        return True

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if not self.done:
            self.folder.unlink(self.temp)
            self.done = True

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, exc_type, *_exc: object) -> None:
        if exc_type is None and not self.done:
            try:
                self.commit()
            except BaseException:
                self.discard()
                raise
        else:
            self.discard()


def write_atomic(target: Path, data: bytes, mode: int = 0o640) -> None:
    """Replace `target` (whose folder the user named or the archiver owns) atomically and durably."""
    try:
        with Folder.open(target.parent) as folder:
            folder.write_file(target.name, data, mode)
    except OSError as exc:
        raise storage_error(exc, str(target.parent)) from exc


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise UnsafePathError(_("{name!r} is not a plain file name: refused").format(name=name))


def make_dirs(path: Path, mode: int = 0o750, group: int | None = None, created: list[Path] | None = None) -> None:
    """`path` and its missing parents, each made durable; those given to `group` with setgid."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode)
        except FileExistsError:
            continue
        if group is not None:
            chgrp(str(folder), group)
        fsync_dir(folder.parent)
        if created is not None:
            created.append(folder)


def new_or_empty(dest: Path) -> bool:
    """Whether `dest` can receive a staged folder: absent, or an empty folder (not a symlink to one)."""
    return not os.path.lexists(dest) or (not dest.is_symlink() and dest.is_dir() and not any(dest.iterdir()))


def relative_name(name: object, *, inside: bool = True) -> str:
    """A file's name, or (with `inside`) its path inside a folder, as one process hands it to another (the
    station service and a person's client): no `/` at either end, no empty, `.` or `..` part, no NUL, each
    part at most 255 bytes. ArchiverError otherwise: such a name could reach outside the folder it belongs in."""
    if isinstance(name, str) and name and "\0" not in name and not name.startswith("/") \
            and not name.endswith("/") and (inside or "/" not in name):
        parts = name.split("/")
        if all(p not in ("", ".", "..") and len(os.fsencode(p)) <= NAME_MAX for p in parts):
            return name
    raise ArchiverError(_("refusing the file name {name!r}: a file's name or a path inside a folder, with no "
                          "'..'").format(name=str(name)[:300]))
