"""Finding recordings in the catalog, and the design's JSON shape for one."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import selectinload

from archiver.catalog import Catalog, Recording
from archiver.errors import NotFoundError
from archiver.i18n import _

_HEX = re.compile(r"^[0-9a-fA-F]{8,64}$")


@dataclass(frozen=True)
class RecordingFilter:
    device: str | None = None
    officer: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    ids: tuple[int, ...] | None = None  # only these (e.g. a case's recordings)

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.ids is not None:
            query = query.where(Recording.id.in_(self.ids))
        if self.device:
            query = query.where(Recording.device_serial == self.device)
        if self.officer:
            query = query.where(Recording.officer_no == self.officer)
        if self.since:
            # a recording still running at `since` counts
            query = query.where(or_(Recording.end >= self.since,
                                    (Recording.end.is_(None)) & (Recording.start >= self.since)))
        if self.until:
            query = query.where(Recording.start <= self.until)
        return query


def list_recordings(catalog: Catalog, flt: RecordingFilter) -> list[Recording]:
    query = flt.apply(select(Recording)).order_by(Recording.start.is_(None), Recording.start, Recording.id)
    with catalog.reading() as session:
        return list(session.scalars(query))


def find_recording(catalog: Catalog, ref: str) -> Recording:
    """A recording by id, or by sha256 (a prefix of 8 or more hex digits)."""
    ref = ref.strip()
    if not (ref.isdigit() or _HEX.match(ref)):
        raise NotFoundError(_("{ref!r} is neither a recording id nor a sha256 prefix of 8+ hex digits").format(
                              ref=ref))
    query = select(Recording).options(selectinload(Recording.sightings))
    with catalog.reading() as session:
        matches = []
        if _HEX.match(ref):
            matches = list(session.scalars(query.where(Recording.sha256.startswith(ref.lower())).limit(2)))
        if not matches and ref.isdigit():
            matches = list(session.scalars(query.where(Recording.id == int(ref))))
    if not matches:
        raise missing_recording(ref)
    if len(matches) > 1:
        raise NotFoundError(_("sha256 prefix {ref} matches several recordings: give more digits").format(ref=ref))
    return matches[0]


def missing_recording(ref: str) -> NotFoundError:
    """What anyone is told of a recording that does not exist, and an officer of one that is not theirs."""
    return NotFoundError(_("no recording with id or sha256 prefix {ref}: see 'archiver recordings list'").format(
                         ref=ref.strip()))


def _iso(value: datetime | None, tz: tzinfo) -> str | None:
    return value.astimezone(tz).isoformat() if value else None


def recording_json(rec: Recording, tz: tzinfo, cases: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": rec.id,
        "sha256": rec.sha256,
        "sm3": rec.sm3,
        "size": rec.size,
        "media_type": rec.media_type,
        "original_path": rec.original_path,
        "device_serial": rec.device_serial,
        "officer_no": rec.officer_no,
        "start": _iso(rec.start, tz),
        "end": _iso(rec.end, tz),
        "duration_s": rec.duration_s,
        "archive_path": rec.archive_path,
        "ingested_at": _iso(rec.ingested_at, tz),
        "verified_at": _iso(rec.verified_at, tz),
        "flags": list(rec.flags or []) + (["purged"] if rec.purged_at is not None else []),
        "cases": cases or [],
    }


def recording_detail_json(rec: Recording, tz: tzinfo, cases: list[str]) -> dict[str, Any]:
    """`recordings show`: the recording plus its probe facts and every place it was seen."""
    data = recording_json(rec, tz, cases)
    data["media"] = rec.media
    if rec.original_path_bytes is not None:  # the name was not UTF-8: original_path shows it escaped
        data["original_path_b64"] = base64.b64encode(rec.original_path_bytes).decode()
    data["sightings"] = [
        {"source": s.source, "original_path": s.original_path, "device": s.device_key or None,
         "size": s.size, "seen_at": _iso(s.seen_at, tz), "ingest_run": s.ingest_run_id}
        for s in rec.sightings
    ]
    return data
