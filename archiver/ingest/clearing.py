"""Freeing a recorder: a file deleted from it only when asked, only once its archived copy is verified, and only
if the file is still the one that was copied; each deletion a custody event."""

from __future__ import annotations

import logging
import os
import stat
from typing import TYPE_CHECKING

from archiver.archive.store import Archive
from archiver.ingest.options import IngestOptions
from archiver.ingest.scan import Found

if TYPE_CHECKING:
    from archiver.catalog import Recording
    from archiver.ledger.custody import CustodyLog

log = logging.getLogger(__name__)


def clear_from_recorder(found: Found, recording: Recording, opts: IngestOptions, archive: Archive,
                        custody: CustodyLog, source: str) -> bool:
    """Delete `found` from the recorder if `opts` ask for it and its copy is safe; whether it was deleted."""
    if not opts.clear:
        return False
    why = opts.clear_when(recording) if opts.clear_when is not None else None
    if why is not None:
        log.info("not cleared yet: %s path=%r", why, found.rel)
        return False
    archived = archive.data_dir / recording.archive_path
    try:
        st = os.lstat(found.path)
        if not stat.S_ISREG(st.st_mode) or (st.st_size, st.st_mtime_ns) != (found.size, found.mtime_ns):
            log.warning("not cleared: changed since copied source=%s path=%r", source, found.rel)
            return False
        if recording.verified_at is None or archived.stat().st_size != found.size:
            log.warning("not cleared: archived copy missing or wrong size path=%r", found.rel)
            return False
        os.unlink(found.path)
    except OSError as exc:
        log.warning("not cleared source=%s path=%r error=%s", source, found.rel, exc.strerror)
        return False
    from archiver.ingest.record import subject

    custody.append("clear_from_device", subject(recording), {"source": source, "original_path": found.rel})
    log.info("cleared from recorder source=%s path=%r sha256=%s archive=%s", source, found.rel, recording.sha256,
             recording.archive_path)
    return True
