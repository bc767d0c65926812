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
import hashlib
import json
import os
import re
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
from archiver.fs import Folder, new_or_empty
from archiver.fs.owners import reader_gid
from archiver.fs.sweep import staged_folder
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


def verify_export(files: dict[str, int], key: PublicKey) -> ExportCheck:
    """Validate a bag handed in as descriptors (its relative names -> open files): every file its manifests
    list against each digest, every payload file listed, the Payload-Oxum, and the station's signature over
    the tag manifest. Only what the descriptors read is checked: nothing is opened by name."""
    if "bagit.txt" not in files:
        raise ExportError(_("no bagit.txt: not a BagIt bag; give the folder of an export"))
    problems: list[str] = []
    listed: set[str] = set()
    manifests = sorted(name for name in files if re.fullmatch(r"(tag)?manifest-[a-z0-9]+\.txt", name))
    if not any(name.startswith("manifest-") for name in manifests):
        problems.append(_("no payload manifest (manifest-sha256.txt)"))
    for manifest in manifests:
        algorithm = manifest.rsplit("-", 1)[1].removesuffix(".txt")
        if algorithm not in hashlib.algorithms_available:
            problems.append(_("{manifest}: algorithm {algorithm} not known here, not checked").format(
                manifest=manifest, algorithm=algorithm))
            continue
        for line in _text(files[manifest]).splitlines():
            digest, _sep, path = line.strip().partition(" ")
            path = _unescape(path.strip().lstrip("*"))
            if not path:
                continue
            listed.add(path)
            if path not in files:
                problems.append(_("{path} is listed in {manifest} but missing").format(path=path, manifest=manifest))
            elif (found := _digest(files[path], algorithm)) != digest.lower():
                problems.append(_("{path} {algorithm} validation failed: expected={expected} found={found}").format(
                    path=path, algorithm=algorithm, expected=digest.lower(), found=found))
    payload = [name for name in files if name.startswith("data/")]
    problems += [_("{path} exists in the bag but is in no manifest").format(path=path)
                 for path in sorted(set(payload) - listed)]
    info = _bag_info(_text(files["bag-info.txt"])) if "bag-info.txt" in files else {}
    oxum = info.get("Payload-Oxum")
    if oxum:
        size = sum(os.fstat(files[name]).st_size for name in payload)
        if oxum != f"{size}.{len(payload)}":
            problems.append(_("Payload-Oxum {oxum} does not match the payload ({size} bytes, {count} files)").format(
                oxum=oxum, size=size, count=len(payload)))
    if SIGNATURE not in files or "tagmanifest-sha256.txt" not in files:
        problems.append(_("signature missing or unreadable: {exc}").format(exc=SIGNATURE))
    else:
        try:
            signature = base64.b64decode(_text(files[SIGNATURE]).strip(), validate=True)
        except ValueError as exc:
            problems.append(_("signature missing or unreadable: {exc}").format(exc=exc))
        else:
            if not key.verify(signature, _read(files["tagmanifest-sha256.txt"])):
                problems.append(_("the tag manifest's signature does not verify with the station key"))
    return ExportCheck(problems, info.get("Case-Number"), len(payload))


def _read(fd: int, limit: int = 64 << 20) -> bytes:
    chunks, got = [], 0
    while got <= limit and (chunk := os.pread(fd, 1 << 20, got)):
        chunks.append(chunk)
        got += len(chunk)
    if got > limit:
        raise ExportError(_("a tag file of more than {value} MiB: not an export of this archiver").format(
                            value=limit >> 20))
    return b"".join(chunks)


def _text(fd: int) -> str:
    return _read(fd).decode("utf-8", "replace")


def _digest(fd: int, algorithm: str) -> str:
    digest, offset = hashlib.new(algorithm), 0
    while chunk := os.pread(fd, 1 << 20, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def _unescape(path: str) -> str:
    """A manifest's path as BagIt writes it: CR, LF and % percent-encoded."""
    return path.replace("%0D", "\r").replace("%0A", "\n").replace("%0d", "\r").replace("%0a", "\n") \
        .replace("%25", "%")


def _bag_info(text: str) -> dict[str, str]:
    info: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key is not None:
            info[key] += " " + line.strip()
        elif ":" in line:
            key, _sep, value = line.partition(":")
            key = key.strip()
            info[key] = value.strip()
    return info
