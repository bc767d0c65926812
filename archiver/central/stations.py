"""The centre's stations: registering a station's public key, listing them, and checking again
everything the centre holds of each (chain, signatures, head) together with the refusals on record."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from archiver.archive.workspace import Workspace
from archiver.catalog import BackupObject, Recording, Station, StationEvent, StationRefusal
from archiver.catalog.db import commit
from archiver.config import S3_SCHEME, STATION_ID
from archiver.errors import ConfigError
from archiver.i18n import _
from archiver.ingest.facts import has_facts, read_facts
from archiver.ledger.custody import GENESIS
from archiver.ledger.keys import PublicKey, canonical

_OBJECT = re.compile(r"^objects/[0-9a-f]{2}/[0-9a-f]{64}\.age$")  # what a station writes in a store
_STREAM = 5000  # events read per round trip when checking (the lines are streamed, never all in memory)


def add_station(ws: Workspace, station_id: str, key_text: str) -> Station:
    """Register a station under its public key; the same key again is a no-op, another key is refused."""
    if not STATION_ID.match(station_id):
        raise ConfigError(_("{value!r} is not a station id: use 1 to 64 letters, digits, '-' or '_'").format(
                            value=station_id))
    key = PublicKey.parse(key_text)
    with ws.catalog.session() as session:
        row = session.get(Station, station_id)
        if row is not None:
            if row.public_key != key.text:
                raise ConfigError(_("station {station} is registered already with another key ({fingerprint}); a "
                                    "station keeps its key for good").format(
                                    station=station_id, fingerprint=PublicKey.parse(row.public_key).fingerprint))
            return row
        row = Station(id=station_id, public_key=key.text, added_by=ws.custody.actor.get("user") or "?", seq=0,
                      hash=GENESIS)
        session.add(row)
        ws.custody.append("station_add", {"station": station_id}, {"key": key.text}, session)
        commit(session)
        return row


@dataclass
class StationSummary:
    id: str
    fingerprint: str
    seq: int
    recordings: int
    synced_at: datetime | None
    refusals: int


def list_stations(ws: Workspace) -> list[StationSummary]:
    with ws.catalog.reading() as session:
        counts = dict(session.execute(select(Recording.station, func.count()).group_by(Recording.station)).all())
        refusals = dict(session.execute(select(StationRefusal.station, func.count())
                                        .group_by(StationRefusal.station)).all())
        return [StationSummary(row.id, PublicKey.parse(row.public_key).fingerprint, row.seq, counts.get(row.id, 0),
                               row.synced_at, refusals.get(row.id, 0))
                for row in session.scalars(select(Station).order_by(Station.id))]


@dataclass
class StationCheck:
    station: str
    events: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)  # {"station", "seq", "kind", "detail"}
    ingested: dict[str, dict[str, Any]] = field(default_factory=dict)  # sha256 -> what its ingest event states
    # S3 objects its signed `backup` events say it wrote, less those its `backup_drop_purged` events took off:
    # (target, object, version) -> {"ciphertext_sha256", "size", "locked_until"}
    stored: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)


def check_stations(ws: Workspace, only: str | None = None) -> list[StationCheck]:
    """Every station's events as the centre holds them, checked again from the first: numbering, chain,
    signature, the recorded head; and the refusals on record, each a problem."""
    results = []
    with ws.catalog.reading() as session:
        stations = session.scalars(select(Station).order_by(Station.id)
                                   .where(Station.id == only if only else True)).all()
    if only and not stations:
        raise ConfigError(_("no station {station} at the centre: see 'archiver stations list'").format(station=only))
    for station in stations:
        results.append(_check_one(ws, station))
    return results


def _check_one(ws: Workspace, station: Station) -> StationCheck:
    result = StationCheck(station.id)
    key = PublicKey.parse(station.public_key)

    def problem(kind: str, seq: int | None, detail: str) -> None:
        result.problems.append({"station": station.id, "seq": seq, "kind": kind, "detail": detail})

    prev, expected = GENESIS, 1
    with ws.catalog.reading() as session:
        rows = session.execute(select(StationEvent.seq, StationEvent.hash, StationEvent.line)
                               .where(StationEvent.station == station.id).order_by(StationEvent.seq)
                               .execution_options(yield_per=_STREAM))
        for seq, digest, line in rows:
            raw = line.encode()
            if seq != expected:
                problem("gap", seq, _("expected sequence {expected}").format(expected=expected))
            if hashlib.sha256(raw).hexdigest() != digest:
                problem("changed", seq, _("the stored line no longer has the hash it was received with"))
            try:
                event = json.loads(raw)
                signature = base64.b64decode(event.pop("sig"), validate=True)
                ok = event.get("seq") == seq and event.get("prev") == prev and key.verify(signature, canonical(event))
            except (ValueError, KeyError, TypeError, AttributeError):
                ok = False
            if not ok:
                problem("signature", seq, _("the stored event does not chain or verify with the station's key"))
            elif event.get("action") == "ingest" and isinstance(event.get("subject"), dict):
                result.ingested.setdefault(str(event["subject"].get("sha256")), {**event["details"], "seq": seq})
            elif event.get("action") == "recording_set_time" and isinstance(event.get("subject"), dict) \
                    and str(event["subject"].get("sha256")) in result.ingested:  # the start is now the one given
                stated = result.ingested[str(event["subject"]["sha256"])]
                stated["start"] = (event.get("details") or {}).get("start")
            else:
                _note_stored(result.stored, event)
            prev, expected = digest, seq + 1
            result.events += 1
        if (result.events and station.seq != expected - 1) or station.hash != prev:
            problem("head", station.seq, _("the centre's head for the station is not its last stored event"))
        for refusal in session.scalars(select(StationRefusal).where(StationRefusal.station == station.id)
                                       .order_by(StationRefusal.id)):
            problem(refusal.kind, refusal.seq, _("refused at {time}: {detail}").format(
                time=refusal.at.isoformat(timespec="seconds"), detail=refusal.detail))
    return result


def _note_stored(stored: dict[tuple[str, str, str], dict[str, Any]], event: dict[str, Any]) -> None:
    """Keep what a signed `backup` event says it put in an S3 store; only recording objects under the
    target's own prefix, with a hash, a size and a lock date that parse (anything else is no claim)."""
    details = event.get("details")
    if not isinstance(details, dict) or not str(details.get("target", "")).startswith(S3_SCHEME):
        return
    if event.get("action") == "backup" and details.get("version"):
        try:
            locked = datetime.fromisoformat(details["locked_until"]) if details.get("locked_until") else None
        except (TypeError, ValueError):
            return
        if _OBJECT.match(str(details.get("object"))) and isinstance(details.get("size"), int) \
                and isinstance(details.get("ciphertext_sha256"), str):
            stored[(details["target"], details["object"], str(details["version"]))] = {**details,
                                                                                       "locked_until": locked}
    elif event.get("action") == "backup_drop_purged":
        for gone in details.get("objects") or []:
            if isinstance(gone, dict):
                stored.pop((details["target"], str(gone.get("object")), str(gone.get("version"))), None)


def verify_central(ws: Workspace) -> tuple[list[StationCheck], list[dict[str, Any]], int]:
    """`verify --central`: every station checked as by `stations check`; every recording the centre
    holds matched against its station's signed ingest event (a row nobody's event states is reported);
    and every object the stations' signed `backup` events put in an S3 store read back there (streamed:
    size and ciphertext hash as signed, the lock, no later version on top). (checks, problems, objects)."""
    checks = check_stations(ws)
    problems = [p for c in checks for p in c.problems]
    objects = 0
    by_target: dict[str, list[BackupObject]] = defaultdict(list)
    for check in checks:
        for (target, name, version), what in sorted(check.stored.items()):
            by_target[target].append(BackupObject(
                target=target, name=name, version_id=version, ciphertext_sha256=what.get("ciphertext_sha256"),
                size=what.get("size"), kind="recording", plain_sha256="", locked_until=what["locked_until"]))
    from archiver.backup.s3 import S3TargetError, check_versions  # boto3 itself loads only for a client

    for target, rows in sorted(by_target.items()):
        objects += len(rows)
        try:
            problems += check_versions(ws.cfg, target, rows, None)
        except S3TargetError as exc:
            problems.append({"kind": "backup_target", "path": target, "detail": str(exc)})
    events = {c.station: c.ingested for c in checks}
    with ws.catalog.reading() as session:
        rows = session.execute(select(Recording.sha256, Recording.station, Recording.size, Recording.archive_path,
                                      Recording.officer_no, Recording.start)
                               .where(Recording.station.is_not(None)).execution_options(yield_per=_STREAM))
        for sha256, station, size, archive_path, officer, start in rows:
            stated = events.get(station, {}).get(sha256)
            if stated is None:
                problems.append({"station": station, "seq": None, "kind": "unsigned", "detail": _(
                    "recording {sha256} has no ingest event of its station: it was not put there by a sync").format(
                    sha256=sha256)})
                continue
            found = {"size": size, "archive_path": archive_path.split(":", 1)[-1]}
            wanted = {"size": stated.get("size"), "archive_path": stated.get("archive_path")}
            if has_facts(stated):
                facts = read_facts(stated)
                found.update(officer=officer, start=start)
                wanted.update(officer=facts["officer_no"], start=facts["start"])
            if found != wanted:
                problems.append({"station": station, "seq": stated["seq"], "kind": "changed", "detail": _(
                    "recording {sha256} differs from what its ingest event states: {fields}").format(
                    sha256=sha256, fields=", ".join(k for k in found if found[k] != wanted[k]))})
    return checks, [{"station": None, "seq": None, "path": None, **p} for p in problems], objects  # one shape
