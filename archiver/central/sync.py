"""The station's side of a sync: hand the custody events the centre does not hold yet into its inbox.

The custody log is the replication stream. The station's database login may do one thing: append its own
lines to the centre's inbox (and read its own head, receipts and refusals). The centre's own process
(`archiver central`) checks each line against the station's registered key and chain, applies it, and signs a
receipt of the station's head, which the station keeps for `verify`. A sync killed at any point loses
nothing: the next one hands in again from what the centre holds. A sync writes no custody event of its own:
it would give every sync something new to ship.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from archiver.archive.workspace import Workspace
from archiver.catalog import Catalog, Receipt, Recording, SyncState
from archiver.catalog.db import SCHEMA_HEAD, commit, shown_url
from archiver.catalog.models import utcnow
from archiver.errors import ArchiverError, CentralError, ConfigError, NotFoundError
from archiver.i18n import _
from archiver.ingest.facts import has_facts, signed_facts
from archiver.ledger.custody import Head, events, log_head
from archiver.ledger.keys import PublicKey
from archiver.ledger.receipts import receipt_head

log = logging.getLogger(__name__)
BATCH = 500


@dataclass
class SyncReport:
    station: str
    central_seq: int = 0  # what the centre holds after this sync
    head: int = 0  # the station's own last event
    handed_in: int = 0  # lines put into the centre's inbox
    applied: int = 0  # events the centre applied while this sync waited
    refused: list[dict[str, Any]] = field(default_factory=list)
    receipt: int | None = None  # the sequence number of the latest receipt kept

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
    """Hand in every event the centre lacks (until `cancel` is set, between batches), wait up to
    `central.wait_s` for the centre to apply them, keep its receipts; record the outcome in the station's own
    catalog."""
    central = open_central(ws)
    report = SyncReport(ws.cfg.station_id)
    head = log_head(ws.custody.path)
    report.head = head.seq if head else 0
    try:
        held = _registered(central, ws)
        refusals = _refusals(central, after=None)
        seen = max((r["id"] for r in refusals), default=0)
        report.central_seq = held
        if report.head < held:
            report.refused.append({"seq": report.head, "kind": "truncated", "detail": _(
                "the centre holds this station's log up to {seq}, but the log here ends at {head}: lines were cut "
                "off; run 'archiver verify' and restore the log from a backup").format(seq=held, head=report.head)})
        pending: list[InboxItem] = []
        # From the last line the centre holds: it confirms that line (a duplicate) or finds the log rewritten.
        for _seq, line in _after(ws, max(0, held - 1)):
            pending.append(InboxItem(line, None))
            if len(pending) >= batch:
                _hand_in(ws, central, pending, report, progress)
                pending = []
                if cancel is not None and cancel.is_set():
                    break
        else:
            if pending:
                _hand_in(ws, central, pending, report, progress)
        _wait(central, ws, report, seen, cancel)
        report.receipt = _keep_receipts(ws, central)
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
    """How far the centre holds this station's log, as the station's own login sees it. Which key the station
    signs with is the centre's to judge (it refuses, and records, a line another key signed), not ours."""
    station_id = ws.cfg.station_id
    current = central.revision()  # the first contact: a centre out of reach fails here (SQLAlchemyError)
    if current != SCHEMA_HEAD:
        raise CentralError(_("the central catalog {url} is at schema {current}, this program needs {head}: run "
                             "'archiver init' with the centre's config").format(
                             url=central.url, current=current or "-", head=SCHEMA_HEAD))
    with central.reading() as session:
        row = session.execute(text("SELECT id, seq FROM station_self")).first()
    if row is None or row.id != station_id:
        raise NotFoundError(_("the centre knows no station {station} by the login in [central] url: there, run "
                              "'archiver stations add {station} --key {key}' and set the url it prints").format(
                              station=station_id, key=ws.custody.public_key.text))
    return int(row.seq)


def _refusals(central: Catalog, after: int | None) -> list[dict[str, Any]]:
    query = "SELECT id, seq, kind, detail FROM station_own_refusals" + (" WHERE id > :after" if after else "")
    with central.reading() as session:
        return [dict(r._mapping) for r in session.execute(text(query + " ORDER BY id"), {"after": after or 0})]


@dataclass(frozen=True)
class InboxItem:
    line: bytes  # one custody-log line, without its newline
    facts: dict[str, Any] | None  # the station catalog's facts, for an ingest event that lacks them


def _after(ws: Workspace, seq: int) -> Iterator[tuple[int, bytes]]:
    """The log's lines after sequence number `seq`."""
    for _number, line in events(ws.custody.path):
        try:
            number = int(json.loads(line)["seq"])
        except (ValueError, KeyError, TypeError):
            number = seq + 1  # handed in as it is: the centre refuses it and says why
        if number > seq:
            yield number, line


def _hand_in(ws: Workspace, central: Catalog, pending: list[InboxItem], report: SyncReport,
             progress: Callable[[int], None] | None) -> None:
    """Append the lines to the centre's inbox (a line the inbox holds already is left as it is)."""
    rows = [{"line": item.line.decode("utf-8", "replace"), "facts": item.facts} for item in _with_facts(ws, pending)]
    with central.session() as session:  # the function takes the station from this login, never from us
        session.execute(text("SELECT archiver_hand_in(CAST(:batch AS jsonb))"), {"batch": json.dumps(rows)})
        commit(session)
    report.handed_in += len(rows)
    if progress is not None:
        progress(len(rows))


def _wait(central: Catalog, ws: Workspace, report: SyncReport, seen: int, cancel: threading.Event | None) -> None:
    """Until the centre has applied up to the station's head, refused something new, or `central.wait_s` passed."""
    start, deadline = report.central_seq, time.monotonic() + ws.cfg.central.wait_s
    while True:
        with central.reading() as session:
            report.central_seq = int(session.execute(text("SELECT seq FROM station_self")).scalar_one())
        report.refused += _refusals(central, after=seen)
        seen = max((r["id"] for r in report.refused if "id" in r), default=seen)
        if (report.central_seq >= report.head or report.refused or time.monotonic() >= deadline
                or not report.handed_in or (cancel is not None and cancel.is_set())):
            break
        time.sleep(0.1)
    report.applied = max(0, report.central_seq - start)
    report.refused = [{k: r[k] for k in ("seq", "kind", "detail")} for r in report.refused]


def _keep_receipts(ws: Workspace, central: Catalog) -> int | None:
    """Keep the centre's latest receipt for this station (checked against [central] key when set); its seq."""
    with central.reading() as session:
        row = session.execute(text("SELECT seq, hash, time, receipt FROM station_own_receipts "
                                   "ORDER BY seq DESC LIMIT 1")).first()
    if row is None:
        return None
    key = PublicKey.parse(ws.cfg.central.key) if ws.cfg.central.key else None
    if receipt_head(row.receipt, ws.cfg.station_id, key) != Head(int(row.seq), row.hash):
        log.error("receipt not the centre's station=%s seq=%s: not kept", ws.cfg.station_id, row.seq)
        return None
    with ws.catalog.session() as session:
        if session.scalar(select(Receipt.id).where(Receipt.seq == row.seq, Receipt.hash == row.hash)) is None:
            session.add(Receipt(station=ws.cfg.station_id, seq=row.seq, hash=row.hash,
                                time=row.time.replace(tzinfo=UTC),  # stored as naive UTC; read through a view
                                receipt=row.receipt))
            commit(session)
    return int(row.seq)


def _with_facts(ws: Workspace, pending: list[InboxItem]) -> list[InboxItem]:
    """Ingest events written before they carried their facts get the station catalog's row beside them."""
    lacking: dict[str, int] = {}
    for index, item in enumerate(pending):
        try:
            event = json.loads(item.line)
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
            out[index] = InboxItem(pending[index].line, signed_facts(rec))
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
