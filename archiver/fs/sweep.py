"""What killed writers leave, and what is built whole before it appears: the sweep of dead writers' temp files
and marks, and staged folders (an export, a restore) renamed into place only complete, with those a killed
process left removed before the next one is made."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from archiver.fs import MARK, TEMP_PREFIX, fsync_dir, liveness
from archiver.fs.owners import make_shared

log = logging.getLogger(__name__)


def sweep_temp_files(root: Path) -> list[Path]:
    """Remove temp files left under `root` by processes that no longer run (killed, power lost).

    Temp files of live processes (another ingest at work) are left alone. Returns what was removed.
    """
    removed = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if _left_behind(dirpath, name):
                path = Path(dirpath) / name
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def sweep_interrupted(root: Path, marks: Path, *, walk: bool = False) -> list[Path]:
    """Remove what killed writers left: their temp files under `root` (`sweep_temp_files`) and their marks
    (`Folder.writing`) in the folder `marks`. Walks `root` only when one of those marks is there, or when
    asked (`walk`); otherwise one listing of `marks` (an archive of years of footage takes seconds to walk).
    What a live process (this one included: the daemon's other threads) is writing is left alone."""
    try:
        stale = [marks / name for name in os.listdir(marks) if name.endswith(MARK) and _left_behind(marks, name)]
    except FileNotFoundError:
        stale = []
    if not (stale or walk):
        return []
    removed = sweep_temp_files(root)
    for mark in stale:
        mark.unlink(missing_ok=True)
    return removed + stale


def _left_behind(folder: str | Path, name: str) -> bool:
    """A temp file (or mark) whose writer no longer runs: its pid is nobody's, or belongs to a process that started
    after the file was made (a reused pid). The daemon's own temp files, made by threads sharing its pid, are not."""
    if not name.startswith(TEMP_PREFIX):
        return False
    pid = name[len(TEMP_PREFIX):].split("-", 1)[0]
    if not pid.isdigit():
        return True
    try:
        made = os.lstat(os.path.join(folder, name)).st_mtime
    except FileNotFoundError:
        return False  # gone already: nothing to sweep
    return liveness.gone(int(pid), made)


@contextmanager
def staged_folder(dest: Path, purpose: str, group: int | None) -> Iterator[Path]:
    """A folder that appears at `dest` only complete: built in a staging folder of this process's own
    making next to it (an unpredictable name, after this process's pid: nothing planted there is used), synced,
    then renamed onto `dest` (absent or empty); removed on any failure. A staging folder for the same `dest` left
    by a process that was killed is removed first."""
    import shutil
    import tempfile

    dest.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{dest.name}.{purpose}-"
    for stale in _left_staging(dest.parent, prefix):
        log.warning("removing a staging folder left by a killed run path=%s", stale)
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f"{prefix}{os.getpid()}-"))
    try:
        make_shared(staging, group)
        yield staging
        sync_tree(staging)
        if os.path.lexists(dest):
            dest.rmdir()
        staging.rename(dest)
        fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _left_staging(parent: Path, prefix: str) -> list[Path]:
    """Staging folders named `prefix<pid>-...` in `parent` that this user made and whose process is gone."""
    found = []
    for name in os.listdir(parent):
        pid = name[len(prefix):].split("-", 1)[0]
        if not (name.startswith(prefix) and pid.isdigit()):
            continue
        st = os.lstat(parent / name)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and liveness.gone(int(pid), st.st_mtime):
            found.append(parent / name)
    return found


def sync_tree(root: Path) -> None:
    """fsync every file and folder under `root` (a tree built by a library that does not), then the
    folder holding it: what is renamed into place next is durable."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))
    fsync_dir(root.parent)
