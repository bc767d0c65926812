"""The data dir itself: made private and writable, older ones tightened, and refused when others can change it
or a symlink is planted where the archiver's own files go."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from archiver.archive.store import ARCHIVE_DIR, Archive
from archiver.errors import DataDirError
from archiver.fs import make_dirs, temp_name
from archiver.fs.owners import check_private, reader_gid, user_uid
from archiver.i18n import _

if TYPE_CHECKING:
    from archiver.config import Config


def trusted_owners(cfg: Config) -> set[int]:
    """Who may own the data dir and the station key: root, whoever runs this, and the service user."""
    owners = {0, os.geteuid()}
    service = user_uid(cfg.access.service_user)
    if service is not None:
        owners.add(service)
    return owners


def open_archive(cfg: Config) -> Archive:
    """The archive of a data dir made if needed and checked (`prepare_data_dir`): what a copy needs, without the
    catalog (`workspace.open_workspace` opens the rest)."""
    return prepare_data_dir(cfg.data_dir, trusted_owners(cfg), reader_gid(cfg.access.reader_group))


def prepare_data_dir(data_dir: Path, owners: set[int], group: int | None = None) -> Archive:
    """Create the data dir if needed (0750, and the reader group's with setgid so all it holds is
    too), check that nobody else can change it, and prove it is writable; one-line errors otherwise."""
    try:
        if not os.path.lexists(data_dir):
            data_dir.parent.mkdir(parents=True, exist_ok=True)
            make_dirs(data_dir, group=group)
    except FileExistsError:
        pass
    except OSError as exc:
        raise DataDirError(_("cannot create data dir {data_dir}: {strerror}; set --data-dir to a writable "
                             "folder").format(data_dir=data_dir, strerror=exc.strerror)) from exc
    if not data_dir.is_dir():
        raise DataDirError(_("data dir {data_dir} exists but is not a folder: set data_dir to a folder").format(
                             data_dir=data_dir))
    check_data_dir(data_dir, owners)
    probe = data_dir / temp_name("write-test")
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise DataDirError(_("data dir {data_dir} is not writable ({strerror}): fix its permissions or set "
                             "--data-dir").format(
                             data_dir=data_dir, strerror=exc.strerror)) from exc
    archive = Archive(data_dir)
    archive.ensure_folder(archive.root)
    return archive


def tighten_data_dir(data_dir: Path, group: int | None) -> int:
    """Bring a data dir made before the archiver kept its files private to today's modes: nothing for
    others, no group write, every folder and file the reader group's (folders setgid). Symlinks are
    left alone (and reported by verify). Returns how many entries changed."""
    changed = 0
    for dirpath, _dirs, files in os.walk(data_dir):  # symlinked folders are listed, never entered
        for path in [Path(dirpath), *(Path(dirpath) / name for name in files)]:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                continue
            mode = stat.S_IMODE(st.st_mode) & ~0o027
            regroup = group is not None and st.st_gid != group
            if stat.S_ISDIR(st.st_mode) and group is not None:
                mode |= stat.S_ISGID
            if mode == stat.S_IMODE(st.st_mode) and not regroup:
                continue
            if regroup:
                try:
                    os.chown(path, -1, group, follow_symlinks=False)
                except PermissionError:
                    pass  # not root and not in that group: the entry keeps its group
            os.chmod(path, mode)
            changed += 1
    return changed


# What the archiver keeps directly in the data dir (besides the archive folder and the keys).
_OWN_FILES = ("catalog.db", "catalog.db-wal", "catalog.db-shm", "catalog.db-journal", "custody.jsonl", "reserve")

# Room kept for looking things up on a full disk: a file of RESERVE_BYTES made while the disk has room, given up when
# the disk is nearly full, so the catalog can still open (SQLite's shared-memory file) and every lookup can still
# write its custody event. Ingest stops long before (capacity.min_free); this is for what comes after.
RESERVE_NAME = "reserve"
RESERVE_BYTES = 8 << 20


def free_bytes(path: Path) -> int:
    """Bytes free on the filesystem of `path` for an unprivileged writer."""
    found = os.statvfs(path)
    return found.f_bavail * found.f_frsize


def keep_reserve(data_dir: Path) -> bool:
    """Make the reserve if it is missing and the disk has four times its size free; whether it is there now."""
    path = data_dir / RESERVE_NAME
    if os.path.lexists(path):
        return True
    try:
        if free_bytes(data_dir) < 4 * RESERVE_BYTES:
            return False
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    try:
        os.posix_fallocate(fd, 0, RESERVE_BYTES)  # blocks of its own, not a sparse promise
        os.fsync(fd)
    except OSError:
        os.unlink(path)
        return False
    finally:
        os.close(fd)
    return True


def release_reserve(data_dir: Path) -> bool:
    """Give the reserve up when the disk is nearly full (less than half of it free). Whether it was given up now."""
    path = data_dir / RESERVE_NAME
    try:
        if free_bytes(data_dir) >= RESERVE_BYTES // 2 or not os.path.lexists(path):
            return False
        os.unlink(path)
    except OSError:
        return False
    return True


def check_data_dir(data_dir: Path, owners: set[int]) -> None:
    """Refuse a data dir (or its archive or keys folder) that others can change, and symlinks planted
    where the archiver's own files go (SQLite would follow them)."""
    check_private(data_dir, _("data dir"), owners)
    if not os.access(data_dir, os.R_OK | os.X_OK):
        raise DataDirError(_("the data dir {data_dir} is not open to you: the station's people run commands "
                             "through the station service (is 'archiver daemon' running?), or run this as the "
                             "service user").format(data_dir=data_dir))
    for name in (ARCHIVE_DIR, "keys"):
        check_private(data_dir / name, _("the data dir's {name} folder").format(name=name), owners, follow=False)
    for name in _OWN_FILES:
        check_private(data_dir / name, _("file"), owners, follow=False)
