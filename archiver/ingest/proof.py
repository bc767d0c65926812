"""Proving a placed copy: read back past the page cache and compared with the digests taken while copying
(anything but a match removes it: it is never catalogued), and what it is (probed in-process for a photo,
by ffprobe for media)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import Executor, Future
from datetime import tzinfo
from pathlib import Path

from archiver.archive.copying import Cancelled
from archiver.archive.store import Archive, Copied
from archiver.errors import VerifyError, storage_error
from archiver.i18n import _
from archiver.ingest import media


def probe(path: Path, tz: tzinfo, head: bytes | None = None) -> media.MediaInfo | None:
    """What the archived copy is: a JPEG or PNG read in-process (from `head`, its first bytes, if given);
    ffprobe for what can be media by extension or by its first bytes (ffprobe is a process: spawning one
    per photo, log file or tiny attachment would dominate a card of small files)."""
    kind = media.type_by_extension(path.name)
    if kind == "photo":
        try:
            if head is None:  # never through a symlink put in the copy's place
                with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as fh:
                    head = fh.read(media.PHOTO_HEAD)
            photo = media.photo_info(head, tz)
        except OSError:
            photo = None
        if photo is not None:
            return photo
    elif kind == "other" and not (media.looks_like(head) if head is not None else media.looks_like_media(path)):
        return None
    try:
        return media.probe(path)
    except media.ProbeError:
        return None


def probe_copy_early(copied: Copied, name: str, pool: Executor) -> Future | None:
    """A big recording (one the copy proved as it went) probed on its archived copy as soon as the copy ends,
    while the copy is made durable and placed: so the last file of a card does not wait for its probe. (Not on
    the recorder: ffprobe cannot read without leaving access times behind.) A descriptor of our own holds the
    copy whatever its name becomes meanwhile; ffprobe reads it through /proc. None for the rest, probed when
    read back."""
    if copied.read_back is None or copied.file.fd < 0 or media.type_by_extension(name) not in ("video", "audio"):
        return None
    fd = os.dup(copied.file.fd)

    def run() -> media.MediaInfo | None:
        try:
            return media.probe(Path(f"/proc/{os.getpid()}/fd/{fd}"))
        except media.ProbeError:
            return None
        finally:
            os.close(fd)

    return pool.submit(run)


def verify_copy(archive: Archive, final: Path, copied: Copied, algorithms: tuple[str, ...],
            cancel: threading.Event | None, head: bytearray | None = None) -> None:
    """Read the placed copy back (unless the copy did); anything but a match removes it (it is not catalogued)."""
    try:
        back = copied.read_back or archive.read_back(final, algorithms, cancel, head)
    except Cancelled:
        final.unlink(missing_ok=True)
        raise
    except OSError as exc:
        final.unlink(missing_ok=True)
        raise storage_error(exc, str(final.parent)) from exc
    if back != copied.digests:
        final.unlink(missing_ok=True)
        raise VerifyError(
            _("the archived copy read back differs from the recorder's bytes (sha256 {value}... != {value2}...): "
              "check the archive disk, then ingest again").format(
              value=back['sha256'][:16], value2=copied.digests['sha256'][:16])
        )
