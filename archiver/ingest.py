"""The ingest pipeline: scan -> plan -> copy+hash -> place -> read back -> seal -> catalog.

`ingest()` is what both `archiver ingest` and the daemon call. It never writes to the source.
Per-file problems are collected in the report and the run goes on; a problem with the archive
itself (disk full, I/O error) stops the run, leaving what was done done and nothing half-done.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from archiver import media
from archiver.catalog import Catalog, Device, IngestRun, Recording, Sighting
from archiver.catalog.models import utcnow
from archiver.config import Config
from archiver.errors import ArchiverError, ArchiveStorageError, FileProblem, VerifyError, storage_error
from archiver.naming import parse_name
from archiver.scan import Found, Skipped, scan
from archiver.store import Archive, Copied, SourceStat, safe_name

log = logging.getLogger(__name__)

UNKNOWN_DEVICE = "unknown"


# -- planning (pure) -------------------------------------------------------------------------
@dataclass(frozen=True)
class Planned:
    found: Found
    serial: str | None
    officer: str | None
    start: datetime | None  # from the file name, in the configured timezone
    flags: tuple[str, ...]
    day: date  # the archive day folder
    name: str  # the file's name in the archive

    @property
    def device_folder(self) -> str:
        return safe_name(self.serial) if self.serial else UNKNOWN_DEVICE


def plan_file(found: Found, cfg: Config, device: str | None, officer: str | None) -> Planned:
    """Decide where a file goes and what its name says. Pure: uses only the scan facts."""
    info = parse_name(found.rel, cfg.naming.patterns, cfg.naming.time_format, cfg.timezone)
    when = info.start or datetime.fromtimestamp(found.mtime_ns / 1e9, cfg.timezone)
    return Planned(
        found=found,
        serial=info.serial or device,
        officer=info.officer or officer,
        start=info.start,
        flags=() if info.parsed else ("name_unparsed",),
        day=when.date(),
        name=safe_name(Path(found.rel).name),
    )


def describe_media(planned: Planned, probed: media.MediaInfo | None, tz: Any) -> dict[str, Any]:
    """The catalog fields that come from the name and the probe. Pure."""
    by_ext = media.type_by_extension(planned.found.rel)
    flags = list(planned.flags)
    media_type = by_ext
    if probed is None:
        if by_ext != "other":
            flags.append("unreadable_media")
    else:
        media_type = probed.media_type
        if by_ext != "other" and media_type != by_ext:
            flags.append("extension_mismatch")
    start = planned.start
    if start is None and probed is not None and probed.creation_time is not None:
        start = probed.creation_time.astimezone(tz)
    duration = probed.duration_s if probed is not None and media_type in ("video", "audio") else None
    end = start + timedelta(seconds=duration) if start is not None and duration is not None else None
    if media_type == "photo":
        end = start
    return {"media_type": media_type, "flags": flags, "start": start, "end": end, "duration_s": duration,
            "media": probed.summary() if probed is not None else None}


# -- the report --------------------------------------------------------------------------------
@dataclass
class IngestReport:
    source: Path
    device_serial: str | None = None
    files_seen: int = 0
    ingested: int = 0
    already_archived: int = 0
    flagged: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    bytes_copied: int = 0
    not_recordings: list[Skipped] = field(default_factory=list)
    recording_ids: list[int] = field(default_factory=list)
    seconds: float = 0.0
    run_id: int | None = None
    stopped: ArchiverError | None = None  # set when the archive failed and the run stopped

    @property
    def exit_code(self) -> int:
        if self.stopped is not None:
            return self.stopped.exit_code
        return 1 if self.failed else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "device_serial": self.device_serial,
            "files_seen": self.files_seen,
            "ingested": self.ingested,
            "already_archived": self.already_archived,
            "flagged": self.flagged,
            "failed": self.failed,
            "bytes_copied": self.bytes_copied,
            "not_recordings": [{"path": s.rel, "reason": s.reason} for s in self.not_recordings],
            "recordings": self.recording_ids,
            "seconds": round(self.seconds, 3),
            "run_id": self.run_id,
            "error": str(self.stopped) if self.stopped else None,
        }


class Progress(Protocol):
    def begin(self, files: int, total_bytes: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, rel: str, outcome: str) -> None: ...
    def end(self) -> None: ...


class _NoProgress:
    def begin(self, files: int, total_bytes: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, rel: str, outcome: str) -> None: ...
    def end(self) -> None: ...


# -- the pipeline ----------------------------------------------------------------------------
def ingest(
    cfg: Config,
    archive: Archive,
    catalog: Catalog,
    source: Path,
    device: str | None = None,
    officer: str | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Archive every recording under `source`. Raises SourceError if it cannot be read at all."""
    progress = progress or _NoProgress()
    started = time.monotonic()
    scanned = scan(source, cfg.system_files)
    plans = [plan_file(f, cfg, device, officer) for f in scanned.files]
    serials = Counter(p.serial for p in plans if p.serial)
    report = IngestReport(
        source=scanned.root,
        device_serial=device or (serials.most_common(1)[0][0] if serials else None),
        files_seen=len(scanned.files) + len(scanned.skipped) + len(scanned.unreadable),
        not_recordings=scanned.skipped,
        failed=[{"path": s.rel, "error": s.reason} for s in scanned.unreadable],
    )
    run_id = _start_run(catalog, report)
    report.run_id = run_id
    log.info("ingest started source=%s device=%s files=%d", report.source, report.device_serial, len(plans))
    progress.begin(len(plans), sum(p.found.size for p in plans))
    days: set[date] = set()
    try:
        for index, planned in enumerate(plans):
            try:
                outcome = _ingest_one(cfg, archive, catalog, planned, run_id, report, progress)
            except FileProblem as exc:
                outcome = "failed"
                report.failed.append({"path": planned.found.rel, "error": str(exc)})
                log.warning("file not archived path=%r error=%s", planned.found.rel, exc)
            except ArchiveStorageError as exc:
                report.stopped = exc
                report.failed.append({"path": planned.found.rel, "error": str(exc)})
                report.failed.extend(
                    {"path": p.found.rel, "error": "not attempted: the run stopped (see the error)"}
                    for p in plans[index + 1:]
                )
                log.error("ingest stopped source=%s error=%s", report.source, exc)
                break
            if outcome != "failed":
                days.add(planned.day)
            progress.file_done(planned.found.rel, outcome)
        _refresh_manifests(cfg, archive, catalog, days)
    except ArchiveStorageError as exc:
        report.stopped = report.stopped or exc
    finally:
        progress.end()
        report.seconds = time.monotonic() - started
        _finish_run(catalog, run_id, report)
    log.info(
        "ingest finished source=%s device=%s ingested=%d already=%d failed=%d bytes=%d seconds=%.1f",
        report.source, report.device_serial, report.ingested, report.already_archived, len(report.failed),
        report.bytes_copied, report.seconds,
    )
    return report


def _ingest_one(cfg: Config, archive: Archive, catalog: Catalog, planned: Planned, run_id: int,
                report: IngestReport, progress: Progress) -> str:
    found = planned.found
    device_key = planned.serial or ""
    with catalog.session() as session:
        if planned.serial and _known_sighting(session, planned):
            report.already_archived += 1
            _touch_device(session, planned)
            _commit(session)
            progress.advance(found.size)
            return "already archived"

    folder = archive.day_folder(planned.day) / planned.device_folder
    created = archive.ensure_folder(folder)
    try:
        copied = archive.copy_in(found.path, folder, planned.name, cfg.hashes,
                                 SourceStat(found.size, found.mtime_ns), progress.advance)
    except BaseException:
        archive.drop_empty(created)
        raise
    report.bytes_copied += copied.size
    try:
        with catalog.session() as session:
            existing = session.scalar(select(Recording).where(Recording.sha256 == copied.digests["sha256"]))
            if existing is not None:
                # The same evidence under another name or path: keep one copy, note where it was seen.
                copied.temp.unlink()
                session.add(_sighting(existing, run_id, device_key, report.source, found))
                _touch_device(session, planned)
                _commit(session)
                report.already_archived += 1
                return "already archived"

            final, adopted = archive.place(copied, folder, planned.name)
            # ffprobe (a separate process) reads the archived copy while we read it back.
            with ThreadPoolExecutor(1) as pool:
                probing = pool.submit(_probe, final)
                if not adopted:
                    _verify(archive, final, copied, cfg.hashes)
                probed = probing.result()
            archive.seal(final)
            fields = describe_media(planned, probed, cfg.timezone)
            recording = Recording(
                sha256=copied.digests["sha256"],
                sm3=copied.digests.get("sm3"),
                size=copied.size,
                original_path=found.rel,
                device_serial=planned.serial,
                officer_no=planned.officer,
                archive_path=archive.relative(final),
                verified_at=(now := utcnow()),
                ingested_at=now,
                ingest_run_id=run_id,
                **fields,
            )
            session.add(_sighting(recording, run_id, device_key, report.source, found))
            _touch_device(session, planned)
            _commit(session)
    finally:
        copied.temp.unlink(missing_ok=True)
        archive.drop_empty(created)  # only folders left empty go
    report.ingested += 1
    report.recording_ids.append(recording.id)
    if recording.flags:
        report.flagged += 1
    _refresh_manifests(cfg, archive, catalog, {planned.day})
    return "ingested"


def _probe(path: Path) -> media.MediaInfo | None:
    try:
        return media.probe(path)
    except media.ProbeError:
        return None


def _verify(archive: Archive, final: Path, copied: Copied, algorithms: tuple[str, ...]) -> None:
    try:
        back = archive.read_back(final, algorithms)
    except OSError as exc:
        final.unlink(missing_ok=True)
        raise storage_error(exc, str(final.parent)) from exc
    if back != copied.digests:
        final.unlink(missing_ok=True)
        raise VerifyError(
            f"the archived copy read back differs from the recorder's bytes (sha256 {back['sha256'][:16]}... "
            f"!= {copied.digests['sha256'][:16]}...): check the archive disk, then ingest again"
        )


def _known_sighting(session: Session, planned: Planned) -> bool:
    found = planned.found
    return session.scalar(
        select(Sighting.id).where(
            Sighting.device_key == planned.serial,
            Sighting.original_path == found.rel,
            Sighting.size == found.size,
            Sighting.mtime_ns == found.mtime_ns,
        ).limit(1)
    ) is not None


def _sighting(recording: Recording, run_id: int, device_key: str, source: Path, found: Found) -> Sighting:
    return Sighting(recording=recording, ingest_run_id=run_id, device_key=device_key, source=str(source),
                    original_path=found.rel, size=found.size, mtime_ns=found.mtime_ns)


def _touch_device(session: Session, planned: Planned) -> None:
    if not planned.serial:
        return
    device = session.scalar(select(Device).where(Device.serial == planned.serial))
    if device is None:
        device = Device(serial=planned.serial)
        session.add(device)
    device.last_docked = utcnow()
    if planned.officer:
        device.officer_no = planned.officer


def _commit(session: Session) -> None:
    try:
        session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        text = str(getattr(exc, "orig", exc))
        if "full" in text.lower():
            raise ArchiveStorageError(f"catalog disk full ({text}): free space, then ingest again") from exc
        raise ArchiveStorageError(f"cannot write the catalog: {text}") from exc


def _start_run(catalog: Catalog, report: IngestReport) -> int:
    with catalog.session() as session:
        run = IngestRun(source=str(report.source), device_serial=report.device_serial,
                        files_seen=report.files_seen, failures=[])
        session.add(run)
        _commit(session)
        return run.id


def _finish_run(catalog: Catalog, run_id: int, report: IngestReport) -> None:
    try:
        with catalog.session() as session:
            run = session.get(IngestRun, run_id)
            if run is None:
                return
            run.finished_at = utcnow()
            run.status = "failed" if report.stopped else ("partial" if report.failed else "ok")
            run.ingested = report.ingested
            run.already_archived = report.already_archived
            run.flagged = report.flagged
            run.failed = len(report.failed)
            run.bytes_copied = report.bytes_copied
            run.failures = report.failed
            run.error = str(report.stopped) if report.stopped else None
            _commit(session)
    except ArchiveStorageError as exc:
        # The run's own record could not be closed (the catalog disk is full); the files' rows are safe.
        log.error("could not record the end of ingest run %s: %s", run_id, exc)
        report.stopped = report.stopped or exc


def _refresh_manifests(cfg: Config, archive: Archive, catalog: Catalog, days: set[date]) -> None:
    """Rewrite each day's manifests from the catalog, where they differ from what is on disk."""
    for day in sorted(days):
        folder = archive.day_folder(day)
        prefix = archive.relative(folder) + "/"
        with catalog.session() as session:
            rows = session.execute(
                select(Recording.archive_path, Recording.sha256, Recording.sm3)
                .where(Recording.archive_path.startswith(prefix, autoescape=True))
            ).all()
        for algorithm in cfg.hashes:
            digests = {path[len(prefix):]: (sha256 if algorithm == "sha256" else sm3)
                       for path, sha256, sm3 in rows}
            archive.write_manifest(folder, algorithm, [(rel, d) for rel, d in digests.items() if d])
