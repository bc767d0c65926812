"""The person's files, on the face's side: what they hand in is opened here, as them (a file, or every regular
file of a folder, no symlink followed), and what an operation hands back is copied here from its open
descriptor to where they asked, under the name the operation gave it (checked), hashed on the way and
checked against the catalog, written atomically, with their own permissions. Whether the operation ran in
this process or in the station service, this is the only code that touches the person's paths.
Memory stays flat: one chunk at a time.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from archiver.errors import ArchiverError, ArchiveStorageError
from archiver.fs import AtomicFile, Folder, make_dirs, new_or_empty, relative_name
from archiver.fs.sweep import staged_folder
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


def hand_in(path: Path) -> list[tuple[str, int]]:
    """[(its name, a descriptor)] of one file the person names, opened as them."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ArchiverError(_("cannot open {path}: {strerror}").format(path=path, strerror=exc.strerror)) from None
    return [(path.name or "file", fd)]


def hand_in_tree(root: Path) -> list[tuple[str, int]]:
    """(path inside `root`, descriptor) of every regular file under it, opened as the person without following a
    symlink; refused whole if any part of it is not theirs to read."""
    found: list[tuple[str, int]] = []
    try:
        try:
            top_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise ArchiverError(_("cannot open {path}: {strerror}").format(path=root, strerror=exc.strerror)) \
                from None
        try:
            for top, _dirs, files, dir_fd in os.fwalk(".", dir_fd=top_fd, follow_symlinks=False,
                                                      onerror=_unreadable(root)):
                for name in sorted(files):
                    where = os.path.normpath(os.path.join(top, name))
                    try:
                        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
                    except OSError as exc:
                        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.ENOENT):
                            continue  # a symlink, a socket, a file gone: not handed in
                        raise ArchiverError(_("{where} is not readable by you ({strerror}): nothing was handed "
                                              "in").format(where=root / where, strerror=exc.strerror)) from None
                    found.append((where, fd))
        finally:
            os.close(top_fd)
    except BaseException:
        for _name, fd in found:
            os.close(fd)
        raise
    return found


def _unreadable(root: Path):
    def fail(exc: OSError) -> None:
        raise ArchiverError(_("{where} is not readable by you ({strerror}): nothing was handed in").format(
                              where=root / (exc.filename or ""), strerror=exc.strerror)) from None
    return fail


def receive_into(dest: Path, received) -> Iterator[tuple[object, str]]:
    """Copy each handed-back file into the folder `dest` (made if missing) under its checked name; an identical
    file already there is kept. Yields (what was received, its sha256) as each copy is checked."""
    for item in received:
        yield item, copy_checked(item.fd, dest / relative_name(item.name), item.sha256, item.size)


def receive_tree(dest: Path, received) -> int:
    """Build the folder `dest` (new, or empty) from the handed-back files, each at its checked name inside it;
    it appears only once complete. How many files."""
    count = 0
    with building(dest) as staging:
        for item in received:
            copy_checked(item.fd, staging / relative_name(item.name), item.sha256, item.size)
            count += 1
    return count
