"""The centre's side of a sync: check each delivered custody event, then apply it, in one transaction.

An event is applied only if it is the next one of its station (seq = the centre's seq + 1), chains to the
line the centre holds last (`prev`), and verifies with the station's registered key. The same line again
is a duplicate and changes nothing; another line at a sequence number the centre holds is a fork; a
sequence number beyond the next is a gap. Refusals are kept (`stations check` lists them) and stop the
delivery: nothing after a refused event is applied.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from archiver.cases.links import link_recordings
from archiver.catalog import Catalog, Device, Recording, Sighting, Station, StationEvent, StationRefusal
from archiver.catalog.models import utcnow
from archiver.errors import NotFoundError
from archiver.i18n import _
from archiver.ingest.facts import has_facts, read_facts
from archiver.ledger.keys import PublicKey, canonical


@dataclass(frozen=True)
class Delivery:
    line: bytes  # one custody-log line, without its newline
    facts: dict[str, Any] | None = None  # the station catalog's facts, for an ingest event that lacks them


@dataclass
class Received:
    station: str
    seq: int = 0  # the centre's last event of the station, after this delivery
    applied: int = 0
    duplicates: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)  # {"seq", "kind", "detail"}


class Refused(Exception):
    def __init__(self, kind: str, seq: int | None, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.seq, self.detail = kind, seq, detail


def receive(central: Catalog, station_id: str, deliveries: list[Delivery]) -> Received:
    """Check and apply `deliveries` (in log order) for one station; one transaction."""
    result = Received(station_id)
    with central.session() as session:
        station = session.get(Station, station_id, with_for_update=True)  # one delivery per station at a time
        if station is None:
            raise NotFoundError(_("station {station} is not registered at the centre: run 'archiver stations add "
                                  "{station} --key ed25519:...' with the centre's config").format(station=station_id))
        key = PublicKey.parse(station.public_key)
        arrived: list[int] = []  # recordings new to the centre: linked to the central cases once, at the end
        for delivery in deliveries:
            digest = hashlib.sha256(delivery.line).hexdigest()
            try:
                event = _check(session, station, key, delivery.line, digest)
            except Refused as refusal:
                _refuse(session, station_id, refusal, delivery.line, digest)
                result.refused.append({"seq": refusal.seq, "kind": refusal.kind, "detail": refusal.detail})
                break
            if event is None:
                result.duplicates += 1
                continue
            _apply(session, station_id, event, delivery.facts, arrived)
            session.add(StationEvent(station=station_id, seq=event["seq"], hash=digest, time=_time(event),
                                     action=str(event.get("action"))[:64], line=delivery.line.decode()))
            station.seq, station.hash = event["seq"], digest
            result.applied += 1
        link_recordings(session, arrived)
        station.synced_at = utcnow()
        result.seq = station.seq
        session.commit()  # a failure is the caller's to name (sync: the centre out of reach)
    return result


def _check(session: Session, station: Station, key: PublicKey, line: bytes, digest: str) -> dict[str, Any] | None:
    """The event, checked; None for a line the centre holds already; Refused for anything else."""
    try:
        event = json.loads(line)
        seq = event["seq"]
        signature = base64.b64decode(event.pop("sig"), validate=True)
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError(seq)
        _time(event)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise Refused("malformed", None, _("not a well-formed custody event")) from None
    if seq <= station.seq:
        held = session.get(StationEvent, (station.id, seq))
        if held is not None and held.hash == digest:
            return None
        raise Refused("fork", seq, _("the centre holds another line at sequence {seq}: the station's log was "
                                     "rewritten or restored from an older copy").format(seq=seq))
    if seq != station.seq + 1:
        raise Refused("gap", seq, _("expected sequence {expected}: events {expected} to {before} are "
                                    "missing").format(expected=station.seq + 1, before=seq - 1))
    if event.get("prev") != station.hash:
        raise Refused("fork", seq, _("does not chain to the line the centre holds at sequence {seq}: the station's "
                                     "log was rewritten").format(seq=station.seq))
    if not key.verify(signature, canonical(event)):
        raise Refused("signature", seq, _("signature does not verify with the station's registered key"))
    return event


def _refuse(session: Session, station_id: str, refusal: Refused, line: bytes, digest: str) -> None:
    held = session.scalar(select(StationRefusal.id).where(StationRefusal.station == station_id,
                                                          StationRefusal.hash == digest,
                                                          StationRefusal.kind == refusal.kind))
    if held is None:  # the same line refused again at the next sync is one report, not one per attempt
        session.add(StationRefusal(station=station_id, seq=refusal.seq, kind=refusal.kind, detail=refusal.detail,
                                   hash=digest, line=line.decode("utf-8", "replace")))


def _time(event: dict[str, Any]) -> datetime:
    when = datetime.fromisoformat(event["time"])
    if when.tzinfo is None:
        raise ValueError(event["time"])
    return when


# -- applying ---------------------------------------------------------------------------------
def _apply(session: Session, station_id: str, event: dict[str, Any], facts: dict[str, Any] | None,
           arrived: list[int]) -> None:
    """The catalog facts an event states: a recording and where it was seen; a purge; a retention class."""
    action, subject, details = event.get("action"), event.get("subject"), event.get("details")
    if not isinstance(subject, dict) or not isinstance(details, dict) or not isinstance(subject.get("sha256"), str):
        return
    if action == "ingest":
        _ingest(session, station_id, event, subject, details, facts, arrived)
        return
    rec = session.scalar(select(Recording).where(Recording.sha256 == subject["sha256"],
                                                 Recording.station == station_id))
    if rec is None:
        return
    if action == "purge":
        rec.purged_at, rec.purge_request_id = _time(event), None
    elif action == "classify" and isinstance(details.get("class"), str):
        rec.retention_class = details["class"]


def _ingest(session: Session, station_id: str, event: dict[str, Any], subject: dict[str, Any],
            details: dict[str, Any], facts: dict[str, Any] | None, arrived: list[int]) -> None:
    when, device = _time(event), subject.get("device")
    device = device if isinstance(device, str) and device else None
    fields = read_facts(details if has_facts(details) else facts or {})
    original = str(details.get("original_path", ""))
    size = details.get("size") if isinstance(details.get("size"), int) else 0
    rec = session.scalar(select(Recording).where(Recording.sha256 == subject["sha256"]))
    if rec is None:  # the same bytes docked at two stations are one recording, seen twice
        raw = details.get("original_path_b64")
        rec = Recording(sha256=subject["sha256"], sm3=details.get("sm3"), size=size, original_path=original,
                        original_path_bytes=base64.b64decode(raw) if isinstance(raw, str) else None,
                        device_serial=device, archive_path=f"{station_id}:{details.get('archive_path', '')}",
                        ingested_at=when, verified_at=when, flags=[str(f) for f in details.get("flags") or []],
                        station=station_id, **fields)
        session.add(rec)
        session.flush()
        arrived.append(rec.id)
    session.add(Sighting(recording=rec, device_key=device or "", source=f"{station_id}:{details.get('source', '')}",
                         original_path=original, size=size, mtime_ns=0, seen_at=when))
    if device is not None:
        row = session.scalar(select(Device).where(Device.serial == device))
        if row is None:
            session.add(Device(serial=device, officer_no=fields["officer_no"], first_seen=when, last_docked=when))
        elif row.last_docked is None or row.last_docked < when:
            row.last_docked = when
