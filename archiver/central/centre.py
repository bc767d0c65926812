"""The centre's own process (`archiver central`, under its own systemd unit): it takes each station's lines out
of the inbox, checks and applies them (`receive`: numbering, chain and signature against the registered key,
one transaction per delivery), removes what it took, and signs a receipt of the station's head with the
centre's key. A station can only append to the inbox; everything that decides what the county's catalog holds
runs here.

The receipts are `ledger/receipts.py`'s.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from archiver.archive.workspace import Workspace
from archiver.catalog import InboxLine, Receipt
from archiver.catalog.models import utcnow
from archiver.central.receive import Delivery, Received, receive
from archiver.ledger.custody import Head
from archiver.ledger.receipts import make_receipt

log = logging.getLogger(__name__)
BATCH = 2000  # lines taken out of one station's inbox at a time: one transaction


def drain(ws: Workspace, batch: int = BATCH) -> list[Received]:
    """Apply everything waiting in the inbox, station by station, in the order it was handed in."""
    results = []
    with ws.catalog.reading() as session:
        stations = list(session.scalars(select(InboxLine.station).distinct().order_by(InboxLine.station)))
    for station in stations:
        while True:
            with ws.catalog.reading() as session:
                rows = session.execute(select(InboxLine.id, InboxLine.line, InboxLine.facts)
                                       .where(InboxLine.station == station).order_by(InboxLine.id).limit(batch)).all()
            if not rows:
                break
            taken = [row.id for row in rows]

            def done(session: Session, head: Head, station: str = station, taken: list[int] = taken) -> None:
                session.execute(delete(InboxLine).where(InboxLine.id.in_(taken)))
                last = session.scalar(select(func.max(Receipt.seq)).where(Receipt.station == station))
                if head.seq and (last is None or head.seq > last):
                    when = utcnow()
                    session.add(Receipt(station=station, seq=head.seq, hash=head.hash, time=when,
                                        receipt=make_receipt(ws.station_key, station, head, when)))

            result = receive(ws.catalog, station, [Delivery(row.line.encode(), row.facts) for row in rows], done)
            results.append(result)
            log.info("applied station=%s lines=%d applied=%d duplicates=%d seq=%d refused=%s", station, len(rows),
                     result.applied, result.duplicates, result.seq,
                     ";".join(f"{r['seq']}:{r['kind']}" for r in result.refused) or "-")
            if result.refused:
                break  # the rest waits for the station to hand its lines in again, from the centre's head
    return results


def serve(ws: Workspace, stop: threading.Event, poll_s: float) -> None:
    """Drain the inbox until `stop` is set, looking again every `poll_s` seconds when it was empty."""
    log.info("centre ready catalog=%s poll_s=%s", ws.catalog.url, poll_s)
    while not stop.is_set():
        started = time.monotonic()
        try:
            worked = any(r.applied or r.duplicates or r.refused for r in drain(ws))
        except Exception:  # the database gone for a moment: the lines wait in the inbox
            log.exception("centre drain failed; retrying")
            worked = False
        if not worked:
            stop.wait(max(0.0, poll_s - (time.monotonic() - started)))
