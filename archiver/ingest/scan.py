"""Walk a recorder (or inbox) and list what is on it, touching nothing.

Symlinks are never followed, the walk never leaves the filesystem it started on, and a folder
reached twice (a bind-mount loop) is entered once. The device's own system and log files are
listed but not offered as recordings.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from archiver.errors import SourceError
from archiver.i18n import _


@dataclass(frozen=True)
class Found:
    path: Path  # absolute path on the recorder
    rel: str  # path relative to the scanned folder, '/'-separated, as on the device (see `raw`)
    size: int
    mtime_ns: int
    raw: bytes | None = None  # the path's exact bytes when they are not UTF-8; `rel` then escapes them (\xff)
    fd: int | None = None  # handed in open (by the station service's client): read this, never `path`


def printable_path(rel: str) -> tuple[str, bytes | None]:
    """A path from the file system as text that can be stored and shown, and its exact bytes when they
    are not valid UTF-8 (a card written by a device in another encoding, or by hand). Pure."""
    try:
        rel.encode("utf-8")
        return rel, None
    except UnicodeEncodeError:
        raw = os.fsencode(rel)
        return raw.decode("utf-8", "backslashreplace"), raw


@dataclass(frozen=True)
class Skipped:
    rel: str
    reason: str


@dataclass
class ScanResult:
    root: Path
    device: int = 0  # st_dev of the root: a different one later means the recorder was pulled
    files: list[Found] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # listed, not recordings
    unreadable: list[Skipped] = field(default_factory=list)  # could hold recordings: a failure


def is_system_name(name: str, patterns: tuple[str, ...]) -> bool:
    lowered = name.lower()
    return any(fnmatchcase(lowered, p.lower()) for p in patterns)


def _top(source: Path) -> os.stat_result:
    """The source as given (it may itself be a symlink to the mount point): a readable folder, or a file."""
    try:
        top = os.stat(source)
    except FileNotFoundError:
        raise SourceError(_("{source} does not exist: give the folder where the recorder is mounted").format(
                            source=source)) from None
    except OSError as exc:
        raise SourceError(_("cannot read {source}: {strerror}").format(source=source, strerror=exc.strerror)) from exc
    if not stat.S_ISREG(top.st_mode) and not stat.S_ISDIR(top.st_mode):
        raise SourceError(_("{source} is neither a folder nor a regular file").format(source=source))
    if stat.S_ISDIR(top.st_mode) and not os.access(source, os.R_OK | os.X_OK):
        raise SourceError(_("cannot read {source}: permission denied").format(source=source))
    return top


def scan(source: Path, system_files: tuple[str, ...]) -> ScanResult:
    """List every regular file under `source` (a folder, or one file)."""
    top = _top(source)
    root = Path(os.path.abspath(source))
    result = ScanResult(root, top.st_dev)
    if stat.S_ISREG(top.st_mode):
        result.root = root.parent
        result.files.append(Found(root, root.name, top.st_size, top.st_mtime_ns))
        return result

    seen: set[tuple[int, int]] = {(top.st_dev, top.st_ino)}
    pending: list[tuple[Path, str, bool]] = [(root, "", False)]
    while pending:
        folder, prefix, in_system = pending.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if folder == root:
                raise SourceError(_("cannot read {source}: {strerror}").format(
                                    source=source, strerror=exc.strerror)) from exc
            shown = printable_path(prefix.rstrip("/"))[0]
            result.unreadable.append(Skipped(shown, _("folder not readable: {strerror}").format(
                                                      strerror=exc.strerror)))
            continue
        subfolders = []
        for entry in entries:
            rel = prefix + entry.name
            shown = printable_path(rel)[0]
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                result.unreadable.append(Skipped(shown, _("cannot stat: {strerror}").format(
                                                          strerror=exc.strerror)))
                continue
            system = in_system or is_system_name(entry.name, system_files)
            if stat.S_ISLNK(st.st_mode):
                result.skipped.append(Skipped(shown, _("symlink, not followed")))
            elif stat.S_ISDIR(st.st_mode):
                if st.st_dev != top.st_dev:
                    result.skipped.append(Skipped(shown, _("another filesystem mounted here, not crossed")))
                elif (st.st_dev, st.st_ino) in seen:
                    result.skipped.append(Skipped(shown, _("folder already visited (directory loop), not entered")))
                else:
                    seen.add((st.st_dev, st.st_ino))
                    subfolders.append((Path(entry.path), rel + "/", system))
            elif not stat.S_ISREG(st.st_mode):
                result.skipped.append(Skipped(shown, _("not a regular file")))
            elif system:
                result.skipped.append(Skipped(shown, _("device system or log file")))
            else:
                text, raw = printable_path(rel)
                result.files.append(Found(Path(entry.path), text, st.st_size, st.st_mtime_ns, raw))
        pending.extend(reversed(subfolders))
    result.files.sort(key=lambda f: f.rel)
    return result


def handed(label: Path, files: list[tuple[str, int]], system_files: tuple[str, ...]) -> ScanResult:
    """What a person handed in (checked relative names and descriptors of regular files, opened by their client
    as themselves), listed as a scan lists a recorder. `label` only names the source: nothing is opened by
    name. `device` 0: a handed-in source is never "pulled"; a file that cannot be read fails alone."""
    result = ScanResult(label, 0)
    for rel, fd in sorted(files):
        st = os.fstat(fd)
        if any(is_system_name(part, system_files) for part in rel.split("/")):
            result.skipped.append(Skipped(rel, _("device system or log file")))
        elif not stat.S_ISREG(st.st_mode):
            result.skipped.append(Skipped(rel, _("not a regular file")))
        else:
            result.files.append(Found(label / rel, rel, st.st_size, st.st_mtime_ns, None, fd))
    return result


def source_gone(root: Path, device: int) -> bool:
    """Whether the recorder at `root` (its filesystem `device` when scanned) is gone: pulled, unmounted. Never for
    files handed in (no device: the source is only a name)."""
    if not device:
        return False
    # Listing the root does real I/O: a dead FUSE mount may still answer stat() from its cache.
    try:
        os.listdir(root)
        return os.stat(root).st_dev != device
    except OSError:
        return True
