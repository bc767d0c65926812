"""An ingest run's side of the catalog, loaded only once the copy has started: the run's own row (opened, closed;
those of killed runs closed as interrupted), the lookups (files archived before, bytes held already), and stage 4's
work: a batch of proven files catalogued in one transaction (new recordings, their case links and custody events,
the files already held, where each was found, the recorders docked), a lost race with another process settled."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from archiver.archive.store import Archive
from archiver.cases.links import link_recordings
from archiver.catalog import Catalog, Device, IngestRun, Recording, Sighting
from archiver.catalog.db import commit, one_of
from archiver.catalog.models import utcnow
from archiver.config import Config
from archiver.errors import ArchiveStorageError
from archiver.fs import liveness
from archiver.fs.sweep import sweep_interrupted
from archiver.i18n import _
from archiver.ingest.facts import signed_facts
from archiver.ingest.options import IngestReport
from archiver.ingest.plan import Planned, describe_media
from archiver.ledger.custody import CustodyLog

if TYPE_CHECKING:
    from archiver.archive.workspace import Workspace
    from archiver.ingest.pipeline import _Item

log = logging.getLogger(__name__)


def sweep(ws: Workspace, *, walk: bool = False) -> None:
    """Before an ingest, what killed runs left: the temp files of archive writers, walking the whole archive when
    the daemon starts (`walk`), else only when one of them left its mark (`Archive.writing`); and the rows of
    ingest runs whose process is gone, closed as `interrupted` (this run finishes their files). What this process
    is writing (its copy may have started) is left alone."""
    for path in sweep_interrupted(ws.archive.root, ws.archive.data_dir, walk=walk):
        log.warning("removed temp file left by an interrupted run path=%s", path)
    with ws.catalog.session() as session:
        rows = [r for r in session.scalars(select(IngestRun).where(IngestRun.status == "running"))
                if liveness.gone(r.pid, r.started_at.timestamp())]
        for row in rows:
            log.warning("ingest run closed: its process ended first run=%d source=%s", row.id, row.source)
            row.status, row.finished_at = "interrupted", utcnow()
            row.error = "the process ended before the run did (killed, or the power was lost)"
        if rows:
            commit(session)


def open_run(catalog: Catalog, report: IngestReport) -> int:
    """The run's own row, `running` until `close_run`: its id."""
    with catalog.session() as session:
        row = IngestRun(source=str(report.source), device_serial=report.device_serial, files_seen=report.files_seen,
                        failures=[], pid=os.getpid())
        session.add(row)
        commit(session)
        return row.id


def close_run(catalog: Catalog, run_id: int, report: IngestReport) -> None:
    """The run's row, closed with its outcome."""
    with catalog.session() as session:
        row = session.get(IngestRun, run_id)
        if row is None:
            return
        row.finished_at = utcnow()
        row.status = "failed" if report.stopped else "partial" if report.failed or report.pending else "ok"
        row.ingested, row.already_archived = report.ingested, report.already_archived
        row.flagged, row.failed = report.flagged, len(report.failed)
        row.bytes_copied = report.bytes_copied
        row.failures = report.failed + [{"path": p, "error": f"pending ({report.ended})"} for p in report.pending]
        row.error = str(report.stopped) if report.stopped else report.ended
        commit(session)


def held_bytes(catalog: Catalog, sha256s: list[str]) -> dict[str, int]:
    """{sha256: recording} for those of these hashes the catalog holds (a read that never waits for a writer)."""
    if not sha256s:
        return {}
    with catalog.reading() as session:
        return dict(session.execute(select(Recording.sha256, Recording.id)
                                    .where(one_of(session, Recording.sha256, sha256s))).all())


class Cataloguer:
    def __init__(self, cfg: Config, archive: Archive, catalog: Catalog, custody: CustodyLog, run_id: int,
                 source: Path) -> None:
        self.cfg, self.archive, self.catalog, self.custody = cfg, archive, catalog, custody
        self.run_id, self.source = run_id, source

    def catalogue(self, items: list[_Item]) -> None:
        """A batch in one transaction; if another process catalogued some of the same bytes meanwhile, one by one
        (theirs stands)."""
        try:
            self._together(items)
        except IntegrityError:
            for item in items:
                try:
                    self._together([item])
                except IntegrityError:
                    if item.final is None:
                        raise
                    self.lost_race(item)

    def _together(self, items: list[_Item]) -> None:
        """A batch in one transaction: new recordings with their case links and custody events (one fsync),
        the files already held, where each was found, the recorders docked."""
        if not items:
            return
        with self.catalog.session() as session, session.no_autoflush:
            new = [i for i in items if i.final is not None]
            for item in new:
                item.recording = self._new_recording(item)
            session.add_all([i.recording for i in new])
            session.flush()
            link_recordings(session, [i.recording.id for i in new])  # to the cases' actions they fall in
            if new:
                # logged before the commit, with the head in the same transaction: a crash in between leaves
                # events whose recordings the next run archives again, never a recording without its event
                self.custody.append_many([self._ingest_event(i) for i in new], session)
            held = {r.id: r for r in session.scalars(select(Recording).where(one_of(
                session, Recording.id, [i.known or i.existing for i in items if i.known or i.existing])))}
            for item in items:
                if item.known is not None:
                    item.recording = held[item.known]
                    continue
                if item.twin is not None:
                    item.recording = item.twin.recording  # catalogued in this batch or an earlier one
                elif item.existing is not None:
                    item.recording = held[item.existing]
            self._seen(session, [i for i in items if i.known is None and i.recording is not None])
            touch_devices(session, [i.planned for i in items])
            commit(session)

    def _new_recording(self, item: _Item) -> Recording:
        planned, copied, now = item.planned, item.copied, utcnow()
        return Recording(
            sha256=copied.digests["sha256"],
            sm3=copied.digests.get("sm3"),
            size=copied.size,
            original_path=planned.found.rel,
            original_path_bytes=planned.found.raw,
            device_serial=planned.serial,
            officer_no=planned.officer,
            archive_path=self.archive.relative(item.final),
            verified_at=now,
            ingested_at=now,
            ingest_run_id=self.run_id,
            **describe_media(planned, item.probed, self.cfg.timezone),
        )

    def _ingest_event(self, item: _Item) -> tuple[str, dict[str, Any], dict[str, Any]]:
        recording, found = item.recording, item.planned.found
        return "ingest", subject(recording), {
            "archive_path": recording.archive_path, "original_path": found.rel, "size": recording.size,
            **({"original_path_b64": base64.b64encode(found.raw).decode()} if found.raw else {}),
            "source": str(self.source), "run": self.run_id, "sm3": recording.sm3,
            "flags": recording.flags, **signed_facts(recording)}

    def lost_race(self, item: _Item) -> None:
        """Another process catalogued these bytes first: theirs stands, our copy goes, this is a sighting."""
        with self.catalog.session() as session:
            existing = session.scalar(select(Recording).where(Recording.sha256 == item.copied.digests["sha256"]))
            if existing is None:
                raise ArchiveStorageError(_("the catalog refused {rel!r} for a reason other than a duplicate; "
                                            "run 'archiver verify'").format(rel=item.planned.found.rel))
            if item.final is not None and existing.archive_path != self.archive.relative(item.final):
                item.final.unlink(missing_ok=True)
            item.final, item.existing, item.recording = None, existing.id, existing
            self._seen(session, [item])
            touch_devices(session, [item.planned])
            commit(session)

    def _seen(self, session: Session, items: list[_Item]) -> None:
        """Where each file was found (what lets a re-dock skip it), as one insert."""
        if items:
            session.execute(insert(Sighting), [
                {"recording_id": i.recording.id, "ingest_run_id": self.run_id, "device_key": i.planned.serial or "",
                 "source": str(self.source), "original_path": i.planned.found.rel,
                 "size": i.planned.found.size, "mtime_ns": i.planned.found.mtime_ns, "seen_at": utcnow()}
                for i in items])


def known_files(catalog: Catalog, plans: list[Planned]) -> dict[tuple[str, str, int, int], int]:
    """{(device, path, size, mtime): recording} for the files of this run archived before from the same
    device (a re-dock), looked up a few hundred paths at a time."""
    known: dict[tuple[str, str, int, int], int] = {}
    serials = sorted({p.serial for p in plans if p.serial})
    if not serials:
        return known
    paths = sorted({p.found.rel for p in plans if p.serial})
    with catalog.reading() as session:
        for i in range(0, len(paths), 500):
            rows = session.execute(select(Sighting.device_key, Sighting.original_path, Sighting.size,
                                          Sighting.mtime_ns, Sighting.recording_id)
                                   .where(one_of(session, Sighting.device_key, serials),
                                          one_of(session, Sighting.original_path, paths[i:i + 500])))
            for device, path, size, mtime_ns, recording_id in rows:
                known.setdefault((device, path, size, mtime_ns), recording_id)
    return known


def touch_devices(session: Session, plans: list[Planned]) -> None:
    """The recorders of these files: docked now; created if new, given the officer their names carry."""
    officers: dict[str, str | None] = {}
    for planned in plans:
        if planned.serial:
            officers[planned.serial] = officers.get(planned.serial) or planned.officer
    if not officers:
        return
    devices = {d.serial: d for d in session.scalars(select(Device).where(one_of(session, Device.serial,
                                                                                  list(officers))))}
    now = utcnow()
    for serial, officer in officers.items():
        device = devices.get(serial)
        if device is None:
            device = Device(serial=serial)
            session.add(device)
        device.last_docked = now
        if officer and not device.officer_no:
            device.officer_no = officer


def subject(recording: Recording) -> dict[str, Any]:
    return {"sha256": recording.sha256, "device": recording.device_serial}
