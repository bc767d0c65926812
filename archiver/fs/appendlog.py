"""The one way a file of lines that only grows is written (the custody log, a backup target's manifest): opened
in its folder without following a symlink, created with its mode (and the reader group) and the folder fsynced
when it is new, under an exclusive lock when asked, a torn last line (a writer killed mid-append) set aside in
`<name>.torn-<time>` before anything is added, and the lines added made durable before the caller goes on."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from archiver.fs import Folder
from archiver.fs.owners import give_group

TORN = ".torn-"  # a set-aside torn tail: `<name>.torn-<UTC time>`


@contextmanager
def appending(folder: Path, name: str, *, mode: int = 0o640, group: int | None = None,
              lock: bool = False) -> Iterator[BinaryIO]:
    """The log `name` in `folder`, at its end, for whole lines to be written; fsynced when the block ends without
    an error. Raises UnsafePathError for a symlink in its place, OSError as the disk gives it."""
    with Folder.open(folder) as where:
        try:
            fd = where.open_file(name, os.O_RDWR | os.O_APPEND)
            new = False
        except FileNotFoundError:
            fd = where.open_file(name, os.O_RDWR | os.O_APPEND | os.O_CREAT, mode)
            new = True
        with os.fdopen(fd, "a+b") as fh:
            if lock:
                fcntl.flock(fh, fcntl.LOCK_EX)
            if new:
                if group is not None:
                    give_group(fd, group)
                where.sync()  # the new name is durable before any line is
            set_torn_tail_aside(fh, where, name)
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def set_torn_tail_aside(fh: BinaryIO, folder: Folder, name: str) -> bytes:
    """A last line without its newline is an append that was never completed (nor acknowledged): it is moved to
    `<name>.torn-<time>` beside the log, kept for the record, and cut off, so the next line starts a line of its
    own. Returns what was set aside (empty when the log ends with a whole line)."""
    fh.seek(0, os.SEEK_END)
    end = fh.tell()
    if end == 0:
        return b""
    fh.seek(end - 1)
    if fh.read(1) == b"\n":
        return b""
    size = 1 << 16
    while True:
        start = max(0, end - size)
        fh.seek(start)
        cut = fh.read(end - start).rfind(b"\n")
        if cut >= 0 or start == 0:
            keep = start + cut + 1 if cut >= 0 else 0
            break
        size *= 4
    fh.seek(keep)
    torn = fh.read()
    folder.write_file(f"{name}{TORN}{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}", torn)
    fh.truncate(keep)
    fh.flush()
    os.fsync(fh.fileno())
    return torn


def set_aside(folder: Path, name: str) -> list[str]:
    """The torn tails set aside beside the log `name` in `folder`, by name, oldest first."""
    try:
        return sorted(n for n in os.listdir(folder) if n.startswith(name + TORN))
    except FileNotFoundError:
        return []
