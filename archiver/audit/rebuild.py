"""`archiver rebuild-catalog`: a lost catalog rebuilt from the archive, its manifests and the custody log.

Each `ingest` event of the (checked) custody log names a recording: its hash, archive path, original
path, size and device. The archived file is hashed again and must match both the event and the day
manifest; the rest (officer, start, duration, media type) is derived again from the original name
and the file, as at ingest. Cases are not in the archive: import the case files again afterwards.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from archiver.archive.manifests import parse_manifest
from archiver.archive.store import Archive
from archiver.catalog import Catalog, Device, Recording, Sighting
from archiver.catalog.db import CATALOG_FILE, commit, shown_url
from archiver.config import Config
from archiver.errors import DataDirError
from archiver.i18n import _
from archiver.ingest import media
from archiver.ingest.plan import describe_media, plan_file
from archiver.ingest.scan import Found
from archiver.ledger.custody import LOG_NAME, check_log, events
from archiver.ledger.keys import load_public_key


@dataclass
class RebuildReport:
    recordings: int = 0
    problems: list[str] = field(default_factory=list)


def rebuild_catalog(cfg: Config) -> RebuildReport:
    data_dir = cfg.data_dir
    if cfg.catalog_url:  # a centre's catalog is rebuilt from the stations' logs, by syncing them again
        raise DataDirError(_("the catalog is set to {url} ([catalog] url): rebuild-catalog rebuilds a station's "
                             "SQLite catalog only").format(url=shown_url(cfg.catalog_url)))
    if (data_dir / CATALOG_FILE).exists():
        raise DataDirError(_("{value} exists: move it aside first; rebuild-catalog never overwrites a catalog").format(
                             value=data_dir / CATALOG_FILE))
    checked = check_log(data_dir / LOG_NAME, load_public_key(data_dir))
    report = RebuildReport(problems=[f"{p.kind}: {p.message()}" for p in checked.problems])
    if checked.problems:
        return report  # a log that does not check out is no basis for a catalog
    archive = Archive(data_dir)
    ingested: dict[str, dict] = {}
    purged: dict[str, dict] = {}
    for _number, line in events(data_dir / LOG_NAME):
        event = json.loads(line)
        if event["action"] == "ingest":
            ingested.setdefault(event["subject"]["sha256"], event)
        elif event["action"] == "purge":
            purged[event["subject"]["sha256"]] = event
    catalog = Catalog.for_data_dir(data_dir)
    try:
        catalog.upgrade()
        manifests: dict[Path, dict[str, str]] = {}
        devices: set[str] = set()
        with catalog.session() as session:
            for sha256, event in ingested.items():
                if sha256 in purged:  # a tombstone: its purge event says what it was and when it went
                    session.add(_tombstone(sha256, event, purged[sha256]))
                    continue
                rec = _recording(cfg, archive, sha256, event, manifests, report)
                if rec is None:
                    continue
                session.add(rec)
                serial = event["subject"].get("device")
                session.add(Sighting(recording=rec, device_key=serial or "", source=event["details"].get("source", ""),
                                     original_path=rec.original_path, size=rec.size, mtime_ns=0,
                                     seen_at=rec.ingested_at))
                if serial and serial not in devices:
                    devices.add(serial)
                    session.add(Device(serial=serial, officer_no=rec.officer_no, last_docked=rec.ingested_at))
                report.recordings += 1
            commit(session)
    finally:
        catalog.close()
    return report


def _tombstone(sha256: str, ingest: dict, purge: dict) -> Recording:
    details, gone = ingest["details"], datetime.fromisoformat(purge["time"])
    return Recording(sha256=sha256, size=int(purge["details"].get("bytes") or 0), media_type="other",
                     original_path=details["original_path"], device_serial=ingest["subject"].get("device"),
                     archive_path=details["archive_path"], ingested_at=datetime.fromisoformat(ingest["time"]),
                     verified_at=gone, flags=list(details.get("flags") or []), purged_at=gone,
                     purge_request_id=purge["details"].get("request"))


def _recording(cfg: Config, archive: Archive, sha256: str, event: dict, manifests: dict,
               report: RebuildReport) -> Recording | None:
    details = event["details"]
    path = archive.data_dir / details["archive_path"]
    if not path.is_file() or path.is_symlink():
        report.problems.append(_("missing: {archive_path} (ingest event seq {seq})").format(
                                 archive_path=details['archive_path'], seq=event['seq']))
        return None
    digests = archive.read_back(path, ["sha256"] + (["sm3"] if details.get("sm3") else []))
    folder = path.parent.parent
    if folder not in manifests:
        try:
            with archive.open(folder / "manifest-sha256.txt") as fh:
                manifests[folder] = parse_manifest(fh.read().decode("utf-8", "replace"))
        except FileNotFoundError:
            manifests[folder] = {}
    rel = path.relative_to(folder).as_posix()
    if digests["sha256"] != sha256 or manifests[folder].get(rel, sha256) != sha256:
        report.problems.append(_("mismatch: {archive_path} no longer has its ingest hash").format(
                                 archive_path=details['archive_path']))
        return None
    stat = path.stat()
    found = Found(path, details["original_path"], stat.st_size, stat.st_mtime_ns)
    planned = plan_file(found, cfg, event["subject"].get("device"), None)
    try:
        probed = media.probe(path)
    except media.ProbeError:
        probed = None
    fields = describe_media(planned, probed, cfg.timezone)
    fields["flags"] = list(details.get("flags") or fields["flags"])
    when = datetime.fromisoformat(event["time"])
    raw = base64.b64decode(details["original_path_b64"]) if details.get("original_path_b64") else None
    return Recording(sha256=sha256, sm3=digests.get("sm3"), size=stat.st_size, original_path=details["original_path"],
                     original_path_bytes=raw,
                     device_serial=planned.serial, officer_no=planned.officer, archive_path=details["archive_path"],
                     ingested_at=when, verified_at=when, **fields)
