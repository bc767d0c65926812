"""The station's side of a sync: ship the custody events the centre does not hold yet.

The custody log is the replication stream. The centre says how far it holds the station's log; the
station reads on from there and delivers in batches, each one transaction at the centre, so a sync
killed at any point (either end) loses nothing and the next one goes on from what the centre holds.
A sync writes no custody event of its own: it would give every sync something new to ship.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from archiver.archive.workspace import Workspace
from archiver.catalog import Catalog, Recording, Station, SyncState
from archiver.catalog.db import SCHEMA_HEAD, commit, shown_url
from archiver.catalog.models import utcnow
from archiver.central.receive import Delivery, receive
from archiver.errors import ArchiverError, CentralError, ConfigError, NotFoundError
from archiver.i18n import _
from archiver.ingest.facts import has_facts, signed_facts
from archiver.ledger.custody import events, log_head

log = logging.getLogger(__name__)
BATCH = 500


@dataclass
class SyncReport:
    station: str
    central_seq: int = 0  # what the centre holds after this sync
    head: int = 0  # the station's own last event
    applied: int = 0
    duplicates: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)

    @property
    def behind(self) -> int:
        return max(0, self.head - self.central_seq)


def open_central(ws: Workspace) -> Catalog:
    cfg = ws.cfg
    if not cfg.central.url:
        raise ConfigError(_("no central catalog configured: set [central] url (and [station] id) in the config"))
    return Catalog(cfg.central.url)


def sync(ws: Workspace, batch: int = BATCH, progress: Callable[[int], None] | None = None,
         cancel: threading.Event | None = None) -> SyncReport:
    """Deliver every event the centre lacks (until `cancel` is set, between batches); record the outcome in
    the station's own catalog."""
    central = open_central(ws)
    report = SyncReport(ws.cfg.station_id)
    head = log_head(ws.custody.path)
    report.head = head.seq if head else 0
    try:
        report.central_seq = _registered(central, ws)
        if report.head < report.central_seq:
            report.refused.append({"seq": report.head, "kind": "truncated", "detail": _(
                "the centre holds this station's log up to {seq}, but the log here ends at {head}: lines were cut "
                "off; run 'archiver verify' and restore the log from a backup").format(
                seq=report.central_seq, head=report.head)})
        pending: list[Delivery] = []
        held = report.central_seq
        # From the last line the centre holds: it confirms that line (a duplicate) or finds the log rewritten.
        for _seq, line in _after(ws, max(0, held - 1)):
            pending.append(Delivery(line, None))
            if len(pending) >= batch:
                if not _deliver(ws, central, pending, report, progress) or (cancel and cancel.is_set()):
                    break
                pending = []
        else:
            if pending:
                _deliver(ws, central, pending, report, progress)
        if held and report.duplicates:
            report.duplicates -= 1  # the line the centre held last, sent again to confirm it: not news
    except SQLAlchemyError as exc:
        error = unreachable(central, exc)
        _note(ws, report.central_seq, error)
        raise error from exc
    except ArchiverError as exc:
        _note(ws, report.central_seq, exc)
        raise
    finally:
        central.close()
    _note(ws, report.central_seq, None)
    return report


def unreachable(central: Catalog, exc: SQLAlchemyError) -> CentralError:
    reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
    return CentralError(_("cannot reach the central catalog {url} ({reason}): the station goes on working, and "
                          "the next sync ships what waited").format(url=central.url, reason=reason))


def _registered(central: Catalog, ws: Workspace) -> int:
    """How far the centre holds this station's log; refused if the centre knows it by another key."""
    station_id = ws.cfg.station_id
    current = central.revision()  # the first contact: a centre out of reach fails here (SQLAlchemyError)
    if current != SCHEMA_HEAD:
        raise CentralError(_("the central catalog {url} is at schema {current}, this program needs {head}: run "
                             "'archiver init' with the centre's config").format(
                             url=central.url, current=current or "-", head=SCHEMA_HEAD))
    with central.reading() as session:
        row = session.get(Station, station_id)
    own = ws.custody.public_key
    if row is None:
        raise NotFoundError(_("station {station} is not registered at the centre: there, run 'archiver stations add "
                             "{station} --key {key}'").format(station=station_id, key=own.text))
    if row.public_key != own.text:
        raise ConfigError(_("the centre knows station {station} by another key: this is not the station registered "
                            "under that name; check [station] id (a station keeps its key for good)").format(
                            station=station_id))
    return row.seq


def _after(ws: Workspace, seq: int) -> Iterator[tuple[int, bytes]]:
    """The log's lines after sequence number `seq`."""
    for _number, line in events(ws.custody.path):
        try:
            number = int(json.loads(line)["seq"])
        except (ValueError, KeyError, TypeError):
            number = seq + 1  # delivered as it is: the centre refuses it and says why
        if number > seq:
            yield number, line


def _deliver(ws: Workspace, central: Catalog, pending: list[Delivery], report: SyncReport,
             progress: Callable[[int], None] | None) -> bool:
    received = receive(central, ws.cfg.station_id, _with_facts(ws, pending))
    report.central_seq = received.seq
    report.applied += received.applied
    report.duplicates += received.duplicates
    report.refused += received.refused
    log.info("sync station=%s applied=%d duplicates=%d central_seq=%d refused=%d", report.station,
             received.applied, received.duplicates, received.seq, len(received.refused))
    if progress is not None:
        progress(received.applied + received.duplicates)
    return not received.refused


def _with_facts(ws: Workspace, pending: list[Delivery]) -> list[Delivery]:
    """Ingest events written before they carried their facts get the station catalog's row beside them."""
    lacking: dict[str, int] = {}
    for index, delivery in enumerate(pending):
        try:
            event = json.loads(delivery.line)
            if event.get("action") == "ingest" and not has_facts(event.get("details") or {}):
                lacking[event["subject"]["sha256"]] = index
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    if not lacking:
        return pending
    out = list(pending)
    with ws.catalog.reading() as session:
        for rec in session.scalars(select(Recording).where(Recording.sha256.in_(list(lacking)))):
            index = lacking[rec.sha256]
            out[index] = Delivery(pending[index].line, signed_facts(rec))
    return out


def _note(ws: Workspace, central_seq: int, error: Exception | None) -> None:
    with ws.catalog.session() as session:
        state = session.get(SyncState, 1) or SyncState(id=1, central_seq=0)
        session.add(state)
        state.central_seq = max(state.central_seq or 0, central_seq)
        if error is None:
            state.synced_at, state.error, state.error_at = utcnow(), None, None
        else:
            state.error, state.error_at = str(error), utcnow()
        commit(session)


# -- the lag, as `archiver status` shows it ----------------------------------------------------
@dataclass
class Lag:
    url: str
    station: str
    central_seq: int
    head: int
    events: int  # not yet central
    recordings: int  # ingest events among them: recordings the centre does not know yet
    oldest: datetime | None  # the oldest event not yet central
    synced_at: datetime | None
    error: str | None
    error_at: datetime | None


def lag(ws: Workspace) -> Lag | None:
    """How far the centre is behind, from what the last sync learnt; None when the station does not sync."""
    if not ws.cfg.central.url:
        return None
    with ws.catalog.reading() as session:
        state = session.get(SyncState, 1)
    central_seq = state.central_seq if state else 0
    head = log_head(ws.custody.path)
    count = recordings = 0
    oldest = None
    if head is not None and head.seq > central_seq:
        for _seq, line in _after(ws, central_seq):
            count += 1
            try:
                event = json.loads(line)
                recordings += event.get("action") == "ingest"
                oldest = oldest or datetime.fromisoformat(event["time"])
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
    return Lag(shown_url(ws.cfg.central.url), ws.cfg.station_id, central_seq, head.seq if head else 0, count,
               recordings, oldest, state.synced_at if state else None, state.error if state else None,
               state.error_at if state else None)
