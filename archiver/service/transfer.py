"""Handing a file to the person who asked for it: copied from an open descriptor to where they asked,
hashed on the way and checked against the catalog, written atomically, with their own permissions.

The client of the station service runs this as the caller (so it writes only where the caller
may), and so does a command run directly by the service user or root: one copy routine for both.
Memory stays flat: one chunk at a time.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from archiver.errors import ArchiverError, ArchiveStorageError
from archiver.fs import AtomicFile, Folder, check_private, make_dirs, new_or_empty, staged_folder
from archiver.i18n import _

CHUNK = 1 << 20


def copy_checked(src: int, dest: Path, sha256: str | None = None, size: int | None = None, *,
                 replace: bool = False) -> str:
    """Copy the whole file open at `src` to `dest` and return its SHA-256. With `sha256`/`size`, a copy
    that does not match is discarded and refused. Without `replace`, an existing `dest` is left alone:
    kept when it already holds the same bytes, refused otherwise."""
    try:
        make_dirs(dest.parent)
        with Folder.open(dest.parent) as folder:
            if not replace and folder.exists(dest.name):
                return _existing(folder, dest, sha256)
            digest, copied = hashlib.sha256(), 0
            with AtomicFile(folder, dest.name) as out:
                while chunk := os.pread(src, CHUNK, copied):
                    digest.update(chunk)
                    out.write(chunk)
                    copied += len(chunk)
                found = digest.hexdigest()
                if (sha256 is not None and found != sha256) or (size is not None and copied != size):
                    out.discard()
                    raise ArchiverError(_("the copy of {name} does not match the catalog ({copied} bytes, sha256 "
                                          "{value}…): nothing kept; run 'archiver verify' on it").format(
                                          name=dest.name, copied=copied, value=found[:16]))
            return found
    except OSError as exc:
        raise write_error(exc, dest.parent) from exc


def write_error(exc: OSError, where: Path) -> ArchiveStorageError:
    """Where a copy for a person could not be written, and why (their folder, not the archive)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ArchiveStorageError(_("no space left on the disk holding {where}: free some, or choose another "
                                     "folder").format(where=where))
    return ArchiveStorageError(_("cannot write into {where}: {value}").format(
                                 where=where, value=exc.strerror or exc))


def _existing(folder: Folder, dest: Path, sha256: str | None) -> str:
    fd = folder.open_file(dest.name)
    try:
        digest, offset = hashlib.sha256(), 0
        while chunk := os.pread(fd, CHUNK, offset):
            digest.update(chunk)
            offset += len(chunk)
    finally:
        os.close(fd)
    if sha256 is None or digest.hexdigest() != sha256:
        raise ArchiveStorageError(_("{dest} already exists with other content: left alone; choose another "
                                    "folder").format(dest=dest))
    return sha256


@contextmanager
def building(dest: Path) -> Iterator[Path]:
    """A folder tree that appears at `dest` (absent or empty) only once complete."""
    if not new_or_empty(dest):
        raise ArchiveStorageError(_("{dest} exists and is not an empty folder: choose a new one").format(
                                    dest=dest))
    try:
        with staged_folder(dest, "receive", None) as staging:
            yield staging
    except OSError as exc:
        raise write_error(exc, dest.parent) from exc


def safe_relative(rel: str) -> Path:
    """A path inside a tree being built, never out of it."""
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or any(p in ("", ".", "..") for p in parts):
        raise ArchiverError(_("refusing to write {rel!r}: not a path inside the destination").format(rel=rel))
    return Path(*parts)


class Files(Protocol):
    """How a command reaches the paths its caller named: directly, or through the caller's client."""

    def absolute(self, path: Path) -> Path: ...
    def read_input(self, path: Path, limit: int, *, secret: bool = False) -> bytes: ...
    def input_tree(self, path: Path) -> Path: ...
    def output_file(self, path: Path) -> AbstractContextManager[Path]: ...
    def output_tree(self, path: Path) -> AbstractContextManager[Path]: ...
    def deliver(self, src: int, dest: Path, sha256: str, size: int) -> str: ...


class LocalFiles:
    """A command run directly: the paths are opened here, with this process's rights."""

    def absolute(self, path: Path) -> Path:
        return path.absolute()

    def read_input(self, path: Path, limit: int, *, secret: bool = False) -> bytes:
        """The bytes of a file the caller named; with `secret` (a private key), only if it is theirs alone."""
        if secret:
            check_private(path, _("identity file"), {os.geteuid()}, secret=True)
        try:
            with path.open("rb") as fh:
                data = fh.read(limit + 1)
        except OSError as exc:
            raise ArchiverError(_("cannot read {path}: {strerror}").format(path=path, strerror=exc.strerror)) from exc
        if len(data) > limit:
            raise ArchiverError(_("{path} is larger than {value} MiB: refused").format(
                                  path=path, value=limit >> 20))
        return data

    def input_tree(self, path: Path) -> Path:
        return path

    @contextmanager
    def output_file(self, path: Path) -> Iterator[Path]:
        yield self.absolute(path)

    @contextmanager
    def output_tree(self, path: Path) -> Iterator[Path]:
        yield self.absolute(path)

    def deliver(self, src: int, dest: Path, sha256: str, size: int) -> str:
        return copy_checked(src, self.absolute(dest), sha256, size)
