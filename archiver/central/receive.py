"""The centre's side of a sync: check each delivered custody event, then apply it, in one transaction.

An event is applied only if it is the next one of its station (seq = the centre's seq + 1), chains to the
line the centre holds last (`prev`), and verifies with the station's registered key. The same line again
is a duplicate and changes nothing; another line at a sequence number the centre holds is a fork; a
sequence number beyond the next is a gap. Refusals are kept (`stations check` lists them) and stop the
delivery: nothing after a refused event is applied. A well-signed event that states something of another
station's recording (a purge, a class, a start) joins the chain but changes nothing, and is kept as a
refusal too (`foreign`).

The centre's own process (`centre.py`) calls this on what a station handed into its inbox; nothing here
trusts the station's code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from archiver.cases.hand import TIME_SET
from archiver.cases.links import link_recordings
from archiver.catalog import Catalog, Device, Recording, Sighting, Station, StationEvent, StationRefusal
from archiver.catalog.models import utcnow
from archiver.errors import NotFoundError
from archiver.i18n import _
from archiver.ingest.facts import has_facts, read_facts
from archiver.ledger.custody import Head
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


def receive(central: Catalog, station_id: str, deliveries: list[Delivery],
            done: Callable[[Session, Head], None] | None = None) -> Received:
    """Check `deliveries` (in log order) for one station, then apply what passed in bulk; one transaction, in
    which `done` (given the station's head after it) runs last."""
    result = Received(station_id)
    with central.session() as session:
        station = session.get(Station, station_id, with_for_update=True)  # one delivery per station at a time
        if station is None:
            raise NotFoundError(_("station {station} is not registered at the centre: run 'archiver stations add "
                                  "{station} --key ed25519:...' with the centre's config").format(station=station_id))
        key = PublicKey.parse(station.public_key)
        head = Head(station.seq, station.hash)
        accepted: list[Accepted] = []
        for delivery in deliveries:
            digest = hashlib.sha256(delivery.line).hexdigest()
            try:
                event = _check(session, station_id, head, key, delivery.line, digest)
            except Refused as refusal:
                _refuse(session, station_id, refusal, delivery.line, digest)
                result.refused.append({"seq": refusal.seq, "kind": refusal.kind, "detail": refusal.detail})
                break
            if event is None:
                result.duplicates += 1
                continue
            accepted.append(Accepted(event, delivery.line, digest, delivery.facts))
            head = Head(event["seq"], digest)
        if accepted:
            _apply(session, station_id, accepted)
        station.seq, station.hash, station.synced_at = head.seq, head.hash, utcnow()
        result.seq, result.applied = head.seq, len(accepted)
        if done is not None:
            done(session, head)
        session.commit()  # a failure is the caller's to name (sync: the centre out of reach)
    return result


@dataclass(frozen=True)
class Accepted:
    event: dict[str, Any]  # without its `sig`
    line: bytes
    digest: str
    facts: dict[str, Any] | None


def _check(session: Session, station_id: str, head: Head, key: PublicKey, line: bytes,
           digest: str) -> dict[str, Any] | None:
    """The event, checked against the centre's head; None for a line the centre holds already; Refused
    for anything else."""
    try:
        event = json.loads(line)
        seq = event["seq"]
        signature = base64.b64decode(event.pop("sig"), validate=True)
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError(seq)
        _time(event)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise Refused("malformed", None, _("not a well-formed custody event")) from None
    if seq <= head.seq:
        held = session.get(StationEvent, (station_id, seq))
        if held is not None and held.hash == digest:
            return None
        raise Refused("fork", seq, _("the centre holds another line at sequence {seq}: the station's log was "
                                     "rewritten or restored from an older copy").format(seq=seq))
    if seq != head.seq + 1:
        raise Refused("gap", seq, _("expected sequence {expected}: events {expected} to {before} are "
                                    "missing").format(expected=head.seq + 1, before=seq - 1))
    if event.get("prev") != head.hash:
        raise Refused("fork", seq, _("does not chain to the line the centre holds at sequence {seq}: the station's "
                                     "log was rewritten").format(seq=head.seq))
    if not key.verify(signature, canonical(event)):
        raise Refused("signature", seq, _("signature does not verify with the station's registered key"))
    if event.get("action") == "ingest" and not _fits(event):
        raise Refused("malformed", seq, _("an ingest event whose hash, device or size the catalog cannot hold"))
    return event


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _fits(event: dict[str, Any]) -> bool:
    """Whether an ingest event states what a recording row can hold (even a station's own key can sign
    nonsense: refused here, it never reaches the database as a failed insert)."""
    subject, details = event.get("subject"), event.get("details")
    if not isinstance(subject, dict) or not isinstance(details, dict):
        return False
    device, size = subject.get("device"), details.get("size")
    return (isinstance(subject.get("sha256"), str) and bool(_SHA256.match(subject["sha256"]))
            and (device is None or isinstance(device, str) and len(device) <= 64)
            and isinstance(size, int) and not isinstance(size, bool) and 0 <= size < 2**63)


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
def _apply(session: Session, station_id: str, accepted: list[Accepted]) -> None:
    """What the accepted events state, in a few statements per delivery whatever its size: the lines
    themselves, new recordings (the same bytes docked at two stations are one recording, seen twice),
    sightings and devices, linked to the central cases; then purges, classes and start times given by hand, in log
    order."""
    now = utcnow()
    session.execute(insert(StationEvent), [
        {"station": station_id, "seq": a.event["seq"], "hash": a.digest, "time": _time(a.event),
         "action": str(a.event.get("action"))[:64], "line": a.line.decode(), "received_at": now} for a in accepted])
    ingests = [a for a in accepted if a.event.get("action") == "ingest" and _stated(a.event)]
    if ingests:
        _ingests(session, station_id, ingests)
    for item in accepted:
        action, subject, details = item.event.get("action"), item.event.get("subject"), item.event.get("details")
        if action not in ("purge", "classify", "recording_set_time") or not _stated(item.event):
            continue
        rec = session.scalar(select(Recording).where(Recording.sha256 == subject["sha256"]))
        if rec is None:
            continue
        if rec.station != station_id:
            _refuse(session, station_id, Refused("foreign", item.event["seq"], _(
                "states '{action}' of recording {sha256}, which is station {other}'s: not applied").format(
                action=action, sha256=rec.sha256, other=rec.station)), item.line, item.digest)
            continue
        if action == "purge":
            rec.purged_at, rec.purge_request_id = _time(item.event), None
        elif action == "recording_set_time":
            _set_start(session, rec, details)
        elif isinstance(details.get("class"), str):
            rec.retention_class = details["class"]


def _set_start(session: Session, rec: Recording, details: dict[str, Any]) -> None:
    """A start a person gave the recording at its station (`recordings set-time`), and its links derived again."""
    start = read_facts({"start": details.get("start")})["start"]
    if start is None:
        return
    rec.start = start
    rec.end = start + timedelta(seconds=rec.duration_s) if rec.duration_s is not None else start
    rec.flags = [*[f for f in rec.flags or [] if f != TIME_SET], TIME_SET]
    session.flush()
    link_recordings(session, [rec.id])


def _stated(event: dict[str, Any]) -> bool:
    subject, details = event.get("subject"), event.get("details")
    return isinstance(subject, dict) and isinstance(details, dict) and isinstance(subject.get("sha256"), str)


def _ingests(session: Session, station_id: str, ingests: list[Accepted]) -> None:
    shas = list({a.event["subject"]["sha256"] for a in ingests})
    known = dict(session.execute(select(Recording.sha256, Recording.id).where(Recording.sha256.in_(shas))).all())
    new: dict[str, dict[str, Any]] = {}
    sightings, devices = [], {}
    for item in ingests:
        event, subject, details = item.event, item.event["subject"], item.event["details"]
        when, device = _time(event), subject.get("device")
        device = device if isinstance(device, str) and device else None
        fields = read_facts(details if has_facts(details) else item.facts or {})
        original = str(details.get("original_path", ""))
        size = details.get("size") if isinstance(details.get("size"), int) else 0
        sha = subject["sha256"]
        if sha not in known and sha not in new:
            raw = details.get("original_path_b64")
            new[sha] = {"sha256": sha, "sm3": details.get("sm3"), "size": size, "original_path": original,
                        "original_path_bytes": base64.b64decode(raw) if isinstance(raw, str) else None,
                        "device_serial": device, "archive_path": f"{station_id}:{details.get('archive_path', '')}",
                        "ingested_at": when, "verified_at": when, "station": station_id,
                        "flags": [str(f) for f in details.get("flags") or []], "media": None,
                        "retention_class": None, "purged_at": None, "purge_request_id": None, **fields}
        sightings.append({"sha256": sha, "device_key": device or "", "original_path": original, "size": size,
                          "source": f"{station_id}:{details.get('source', '')}", "mtime_ns": 0, "seen_at": when})
        if device is not None:
            seen = devices.setdefault(device, {"officer_no": fields["officer_no"], "first": when, "last": when})
            seen["last"] = max(seen["last"], when)
    arrived = []
    if new:
        for rid, sha in session.execute(insert(Recording).returning(Recording.id, Recording.sha256),
                                        list(new.values())):
            known[sha] = rid
            arrived.append(rid)
    session.execute(insert(Sighting), [{**{k: v for k, v in s.items() if k != "sha256"},
                                        "recording_id": known[s["sha256"]], "ingest_run_id": None} for s in sightings])
    _devices(session, devices)
    link_recordings(session, arrived)  # to the central cases' actions they fall in


def _devices(session: Session, seen: dict[str, dict[str, Any]]) -> None:
    held = {d.serial: d for d in session.scalars(select(Device).where(Device.serial.in_(list(seen))))}
    for serial, what in seen.items():
        row = held.get(serial)
        if row is None:
            session.add(Device(serial=serial, officer_no=what["officer_no"], first_seen=what["first"],
                               last_docked=what["last"]))
        elif row.last_docked is None or row.last_docked < what["last"]:
            row.last_docked = what["last"]
