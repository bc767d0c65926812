"""The service: for now, one pass over every configured inbox and every mounted recorder.

Continuous watching (mount-table events, inbox events, parallel recorders, sd_notify) comes
with the dock daemon issue; each pass already runs the same ingest pipeline it will use.
"""

from __future__ import annotations

import logging
from pathlib import Path

from archiver.dock import current_recorder_mounts
from archiver.errors import ArchiverError
from archiver.ingest import IngestReport, ingest
from archiver.workspace import Workspace

log = logging.getLogger(__name__)


def sources(ws: Workspace) -> list[Path]:
    """Inboxes (created if missing) and mounted recorders, in that order."""
    found = []
    for inbox in ws.cfg.dock.inboxes:
        inbox.mkdir(parents=True, exist_ok=True)
        found.append(inbox)
    found.extend(m.mount_point for m in current_recorder_mounts(ws.cfg.dock.mount_roots))
    return found


def run_once(ws: Workspace) -> list[IngestReport]:
    """Ingest every source once. A source that cannot be read is logged and skipped."""
    reports = []
    for source in sources(ws):
        try:
            report = ingest(ws.cfg, ws.archive, ws.catalog, source)
        except ArchiverError as exc:
            log.error("source skipped source=%s error=%s", source, exc)
            continue
        reports.append(report)
        if report.stopped is not None:
            raise report.stopped
    return reports
