"""The centre's stations: registering a station's public key, listing them, and checking again
everything the centre holds of each (chain, signatures, head) together with the refusals on record."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from archiver.archive.workspace import Workspace
from archiver.catalog import BackupObject, Recording, Station, StationEvent, StationRefusal
from archiver.catalog.db import commit
from archiver.central import logins
from archiver.config import STATION_ID, names_s3_store
from archiver.errors import ConfigError
from archiver.i18n import N_, _
from archiver.ingest.facts import has_facts, read_facts
from archiver.ledger.custody import GENESIS
from archiver.ledger.keys import PublicKey, canonical
from archiver.problems import MADE, Finding, Kind

_OBJECT = re.compile(r"^objects/[0-9a-f]{2}/[0-9a-f]{64}\.age$")  # what a station writes in a store
_STREAM = 5000  # events read per round trip when checking (the lines are streamed, never all in memory)


@dataclass(frozen=True)
class Registered:
    station: Station
    url: str | None  # what the station sets as [central] url: its own login (shown once, when made)


def add_station(ws: Workspace, station_id: str, key_text: str) -> Registered:
    """Register a station under its public key and, on PostgreSQL, make the database login it hands its lines in
    with; the same key again changes nothing, another key is refused."""
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
            return Registered(row, None)
        row = Station(id=station_id, public_key=key.text, added_by=ws.custody.actor.get("user") or "?", seq=0,
                      hash=GENESIS)
        session.add(row)
        session.flush()
        url = logins.make_login(session, station_id) if ws.catalog.engine.dialect.name == "postgresql" else None
        ws.custody.append("station_add", {"station": station_id}, {"key": key.text, "login": bool(url)}, session)
        commit(session)
        return Registered(row, url)


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
    problems: list[Finding] = field(default_factory=list)
    ingested: dict[str, dict[str, Any]] = field(default_factory=dict)  # sha256 -> what its signed events state
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


def _note_fact(stated: dict[str, dict[str, Any]], event: dict[str, Any], seq: int) -> bool:
    """Fold what an event states of a recording into `stated` (sha256 -> the ingest event's details, then the
    purge's time, the class and a start given by hand); whether it was such an event."""
    action, subject, details = event.get("action"), event.get("subject"), event.get("details")
    if not isinstance(subject, dict) or not isinstance(details, dict):
        return False
    sha = str(subject.get("sha256"))
    if action == "ingest":
        stated.setdefault(sha, {**details, "seq": seq, "device": subject.get("device")})
    elif action in ("purge", "classify", "recording_set_time") and sha in stated:
        fact = stated[sha]
        if action == "purge":
            fact["purged_at"] = event.get("time")
        elif action == "classify":
            fact["class"] = details.get("class")
        else:
            fact["start"], fact["time_set"] = details.get("start"), True
    else:
        return False
    return True


def _check_one(ws: Workspace, station: Station) -> StationCheck:
    result = StationCheck(station.id)
    key = PublicKey.parse(station.public_key)

    def problem(kind: Kind, seq: int | None, text: str, expected: Any = None, **values: Any) -> None:
        result.problems.append(Finding(kind, None, text, values, expected, None if expected is None else seq,
                                       station=station.id, seq=seq))

    prev, expected = GENESIS, 1
    with ws.catalog.reading() as session:
        rows = session.execute(select(StationEvent.seq, StationEvent.hash, StationEvent.line)
                               .where(StationEvent.station == station.id).order_by(StationEvent.seq)
                               .execution_options(yield_per=_STREAM))
        for seq, digest, line in rows:
            raw = line.encode()
            if seq != expected:
                problem(Kind.GAP, seq, N_("expected sequence {expected}"), expected)
            if hashlib.sha256(raw).hexdigest() != digest:
                problem(Kind.CHANGED, seq, N_("the stored line no longer has the hash it was received with"))
            try:
                event = json.loads(raw)
                signature = base64.b64decode(event.pop("sig"), validate=True)
                ok = event.get("seq") == seq and event.get("prev") == prev and key.verify(signature, canonical(event))
            except (ValueError, KeyError, TypeError, AttributeError):
                ok = False
            if not ok:
                problem(Kind.SIGNATURE, seq, N_("the stored event does not chain or verify with the station's key"))
            elif not _note_fact(result.ingested, event, seq):
                _note_stored(result.stored, event)
            prev, expected = digest, seq + 1
            result.events += 1
        if (result.events and station.seq != expected - 1) or station.hash != prev:
            problem(Kind.HEAD, station.seq, N_("the centre's head for the station is not its last stored event"))
        for refusal in session.scalars(select(StationRefusal).where(StationRefusal.station == station.id)
                                       .order_by(StationRefusal.id)):
            problem(Kind(refusal.kind), refusal.seq, N_("refused at {time}: {detail}"),
                    time=refusal.at.isoformat(timespec="seconds"), detail=refusal.detail)
    return result


def _note_stored(stored: dict[tuple[str, str, str], dict[str, Any]], event: dict[str, Any]) -> None:
    """Keep what a signed `backup` event says it put in an S3 store; only recording objects under the
    target's own prefix, with a hash, a size and a lock date that parse (anything else is no claim)."""
    details = event.get("details")
    if not isinstance(details, dict) or not names_s3_store(str(details.get("target", ""))):
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


# The columns of a central recording that its station's signed events state, each compared by verify --central.
FACT_COLUMNS = ("station", "size", "archive_path", "device_serial", "officer_no", "start", "end", "duration_s",
                "media_type", "purged_at", "retention_class")


def stated_facts(stated: dict[str, Any], station: str) -> dict[str, Any]:
    """What a recording's columns must hold, from what its station's events state (`_note_fact`); the times,
    duration, media type and officer only where the ingest event itself carries them."""
    def when(value: Any) -> datetime | None:
        try:
            return datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            return None

    wanted: dict[str, Any] = {"station": station, "size": stated.get("size"),
                              "archive_path": stated.get("archive_path"), "device_serial": stated.get("device") or None,
                              "purged_at": when(stated.get("purged_at")), "retention_class": stated.get("class")}
    if has_facts(stated):
        facts = read_facts(stated)
        wanted.update({k: facts[k] for k in ("officer_no", "start", "end", "duration_s", "media_type")})
        if stated.get("time_set") and facts["start"] is not None:
            duration = facts["duration_s"]
            wanted["end"] = facts["start"] + timedelta(seconds=duration) if duration is not None else facts["start"]
    return wanted


def _shown(value: Any) -> str:
    return "-" if value is None else value.isoformat() if isinstance(value, datetime) else str(value)


def verify_central(ws: Workspace) -> tuple[list[StationCheck], list[Finding], int]:
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
    from archiver.backup.s3 import S3Store, S3TargetError  # boto3 itself loads only for a client

    for target, rows in sorted(by_target.items()):
        objects += len(rows)
        store = S3Store(ws.cfg, target)
        try:
            for row in rows:
                problems += store.check(row, None)
        except S3TargetError as exc:
            problems.append(Finding(Kind.BACKUP_TARGET, target, MADE, {"detail": str(exc)}))
    events = {c.station: c.ingested for c in checks}
    with ws.catalog.reading() as session:
        rows = session.execute(select(*(getattr(Recording, c) for c in ("sha256", *FACT_COLUMNS)))
                               .where(Recording.station.is_not(None)).execution_options(yield_per=_STREAM))
        for row in rows:
            found = dict(zip(FACT_COLUMNS, row[1:], strict=True))
            stated = events.get(found["station"], {}).get(row.sha256)
            if stated is None:
                problems.append(Finding(Kind.UNSIGNED, None, N_("recording {sha256} has no ingest event of its "
                                                                "station: it was not put there by a sync"),
                                        {"sha256": row.sha256}, station=found["station"]))
                continue
            found["archive_path"] = found["archive_path"].split(":", 1)[-1]
            wanted = stated_facts(stated, found["station"])
            for column in (c for c in FACT_COLUMNS if c in wanted and found[c] != wanted[c]):
                problems.append(Finding(Kind.CHANGED, None, N_("recording {sha256}, column {column}: the catalog "
                                                               "holds {found}, the station's signed events state "
                                                               "{expected}"), {"sha256": row.sha256, "column": column},
                                        _shown(wanted[column]), _shown(found[column]), found["station"], stated["seq"]))
    return checks, problems, objects
