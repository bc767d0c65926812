"""File-system primitives for everything the archiver writes: temp names, durable writes, folder syncs."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from archiver.errors import storage_error

TEMP_PREFIX = ".tmp-"  # then the writer's pid, '-', a random tag, '-', the name
NAME_MAX = 255


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


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(name: str) -> str:
    return f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{name}"


def sweep_temp_files(root: Path) -> list[Path]:
    """Remove temp files left under `root` by processes that no longer run (killed, power lost).

    Temp files of live processes (another ingest at work) are left alone. Returns what was removed.
    """
    removed = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if not name.startswith(TEMP_PREFIX):
                continue
            pid = name[len(TEMP_PREFIX):].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and Path(f"/proc/{pid}").exists():
                continue
            path = Path(dirpath) / name
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_atomic(target: Path, data: bytes, mode: int = 0o444) -> None:
    """Replace `target` with `data` atomically and durably."""
    temp = target.with_name(temp_name(target.name))
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(temp, mode)
        os.replace(temp, target)
        fsync_dir(target.parent)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise storage_error(exc, str(target.parent)) from exc
