"""Court-ready exports: a BagIt bag (RFC 8493) of a case's recordings that outsiders can check.

    DEST/bagit.txt, bag-info.txt              (case number, station, export time, custody-log head, station key)
    DEST/data/<archive path>                  the recordings, bytes as archived
    DEST/manifest-sha256.txt                  (+ manifest-sm3.txt when SM3 is configured and bagit supports it)
    DEST/custody-events.jsonl                 the custody events of those recordings, as signed lines
    DEST/recordings.jsonl                     each payload file's recording: id, sha256, archive and original path
    DEST/tagmanifest-sha256.txt               over every tag file above
    DEST/tagmanifest-sha256.txt.sig           detached Ed25519 signature (base64) of the tag manifest

`bagit.py --validate DEST` checks the bag; `archiver verify-export DEST` also checks the signature.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

import bagit
from sqlalchemy import select

from archiver.archive.store import Archive, alternate_name
from archiver.archive.workspace import Workspace
from archiver.cases.links import recording_ids_for_case, resolve_case_no
from archiver.catalog import Recording
from archiver.errors import ArchiverError
from archiver.fs import Folder, new_or_empty, reader_gid, staged_folder
from archiver.i18n import _
from archiver.ledger.custody import catalog_head, events
from archiver.ledger.keys import PublicKey

SIGNATURE = "tagmanifest-sha256.txt.sig"
EVENTS = "custody-events.jsonl"
RECORDINGS = "recordings.jsonl"


class ExportError(ArchiverError):
    pass


@dataclass
class ExportResult:
    dest: Path
    files: int
    bytes: int
    events: int


def export_case(ws: Workspace, case_no: str, dest: Path) -> ExportResult:
    """Write the bag in a staging folder that this call creates (unpredictable name, ours alone), then
    rename it to `dest`: a symlink or folder planted next to `dest` is never followed or reused."""
    if not new_or_empty(dest):
        raise ExportError(_("{dest} is not a new or empty folder: give a new or empty folder for the export").format(
                            dest=dest))
    case_no = resolve_case_no(ws.catalog, case_no)  # as stored, however it was typed
    ids = recording_ids_for_case(ws.catalog, case_no, ws.cfg.linking)
    with ws.catalog.session() as session:
        recordings = list(session.scalars(select(Recording).where(Recording.id.in_(ids), Recording.purged_at.is_(None))
                                          .order_by(Recording.id)))
    head = catalog_head(ws.catalog)
    with staged_folder(dest, "partial", reader_gid(ws.cfg.access.reader_group)) as staging:
        places = payload_paths(recordings)
        total = _copy_payload(ws.archive, recordings, places, staging)
        now = datetime.now(ws.cfg.timezone).isoformat(timespec="seconds")
        key = ws.station_key
        info = {
            "Source-Organization": socket.gethostname(),
            "External-Identifier": case_no,
            "External-Description": f"Recordings of case {case_no}, exported by archiver",
            "Case-Number": case_no,
            "Bagging-Date": now[:10],
            "Export-Time": now,
            "Custody-Log-Head": f"{head.seq}:{head.hash}" if head else "empty",
            "Station-Key": key.public.text,
            "Payload-Recordings": str(len(recordings)),
        }
        bag = bagit.make_bag(str(staging), info, checksums=_algorithms(ws))
        wanted = {r.sha256 for r in recordings}
        lines = [line for _n, line in events(ws.custody.path) if _concerns(json.loads(line), wanted)]
        with Folder.open(staging) as bagged:
            bagged.write_file(EVENTS, b"".join(line + b"\n" for line in lines))
            bagged.write_file(RECORDINGS, b"".join(json.dumps(
                {"path": "data/" + places[r.id], "id": r.id, "sha256": r.sha256, "archive_path": r.archive_path,
                 "original_path": r.original_path}, ensure_ascii=False, sort_keys=True).encode() + b"\n"
                for r in recordings))
            bag.save(manifests=False)  # tag manifest over the tag files, the events included
            _check_payload(staging, recordings, places)
            signature = key.sign((staging / "tagmanifest-sha256.txt").read_bytes())
            bagged.write_file(SIGNATURE, base64.b64encode(signature) + b"\n")
    return ExportResult(dest, len(recordings), total, len(lines))


def _concerns(event: dict, wanted: set[str]) -> bool:
    """Whether a custody event is about one of these recordings (its subject names one sha256, or several)."""
    subject = event.get("subject")
    named = subject.get("sha256") if isinstance(subject, dict) else None
    return bool(wanted & set(named)) if isinstance(named, list) else named in wanted


def payload_paths(recordings: list[Recording]) -> dict[int, str]:
    """Each recording's path inside the bag's data/: its archive path, in Unicode NFC (BagIt checkers
    normalise names, so two names that differ only in normalisation would clash), made unique with
    the recording's hash where two would collide. Pure."""
    places: dict[int, str] = {}
    taken: set[str] = set()
    for rec in recordings:
        rel = PurePosixPath(unicodedata.normalize("NFC", rec.archive_path)).relative_to("archive")
        path = rel.as_posix()
        if path.casefold() in taken:
            path = (rel.parent / alternate_name(rel.name, rec.sha256)).as_posix()
        taken.add(path.casefold())
        places[rec.id] = path
    return places


def _algorithms(ws: Workspace) -> list[str]:
    return [a for a in ws.cfg.hashes if a in bagit.CHECKSUM_ALGOS] or ["sha256"]


def _copy_payload(archive: Archive, recordings: list[Recording], places: dict[int, str], staging: Path) -> int:
    """The archived files into the staging folder (bagit moves them into data/), read and written
    without following symlinks."""
    total = 0
    for rec in recordings:
        rel = PurePosixPath(places[rec.id])
        with archive.open(archive.data_dir / rec.archive_path) as src, \
                Folder.open(staging, rel.parent, create=True) as folder, folder.new_file(rel.name) as out:
            shutil.copyfileobj(src, out, 1 << 20)
        total += rec.size
    return total


def _check_payload(staging: Path, recordings: list[Recording], places: dict[int, str]) -> None:
    """The bag's own manifest must list each recording with the hash it was ingested with."""
    listed = {}
    for line in (staging / "manifest-sha256.txt").read_text(encoding="utf-8").splitlines():
        digest, _sep, path = line.partition("  ")
        listed[path] = digest
    for rec in recordings:
        if listed.get("data/" + places[rec.id]) != rec.sha256:
            raise ExportError(_("the archived copy of recording #{id} no longer has its ingest hash: run "
                                "'archiver verify'; nothing was exported").format(
                                id=rec.id))


@dataclass
class ExportCheck:
    problems: list[str]
    case_no: str | None
    files: int


def verify_export(dest: Path, key: PublicKey) -> ExportCheck:
    """Validate the bag (every payload hash, every tag file) and the station's signature."""
    problems: list[str] = []
    try:
        bag = bagit.Bag(str(dest))
    except bagit.BagError as exc:
        raise ExportError(_("{dest} is not a BagIt bag: {exc}").format(dest=dest, exc=exc)) from exc
    try:
        bag.validate(processes=2)
    except bagit.BagValidationError as exc:
        details = getattr(exc, "details", None) or [exc.message]
        problems.extend(str(d) for d in details)
    try:
        signature = base64.b64decode((dest / SIGNATURE).read_text().strip(), validate=True)
        signed = (dest / "tagmanifest-sha256.txt").read_bytes()
    except (OSError, ValueError) as exc:
        problems.append(_("signature missing or unreadable: {exc}").format(exc=exc))
    else:
        if not key.verify(signature, signed):
            problems.append(_("the tag manifest's signature does not verify with the station key"))
    case_no = bag.info.get("Case-Number")
    return ExportCheck(problems, case_no if isinstance(case_no, str) else None, len(bag.payload_entries()))
