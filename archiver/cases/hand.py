"""What a person decides by hand about a recording and a case: a start for a file whose name carries no time
(`recordings set-time`), and why a recording linked by hand still covers no step."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from archiver.cases.links import COVERING, link_recordings
from archiver.catalog import Action, Case, Catalog, Recording
from archiver.catalog.db import commit
from archiver.errors import ArchiverError
from archiver.i18n import _

TIME_SET = "time_set"  # the flag of a recording whose start a person gave (recordings set-time)


def set_start(catalog: Catalog, recording_id: int, start: datetime,
              event: Callable[[Session, Recording, datetime | None], None] | None = None) -> Recording:
    """Give a recording whose name carries no time its start (its end follows from its duration), and derive its
    links again; `event` writes the custody event (given the start before) in that transaction. A start read
    from the file's name is refused: the recorder's own time is evidence, not to be overwritten."""
    with catalog.session() as session:
        rec = session.get(Recording, recording_id)
        if rec.start is not None and "name_unparsed" not in rec.flags and TIME_SET not in rec.flags:
            raise ArchiverError(_("#{id}: its start {start} is read from its file name, as the recorder wrote it; "
                                  "'archiver recordings set-time' is for a file whose name carries no time").format(
                                  id=rec.id, start=rec.start.astimezone(start.tzinfo).strftime("%Y-%m-%d %H:%M:%S")))
        before = rec.start
        rec.start = start
        rec.end = start + timedelta(seconds=rec.duration_s) if rec.duration_s is not None else start
        rec.flags = [*[f for f in rec.flags if f != TIME_SET], TIME_SET]
        session.flush()
        link_recordings(session, [rec.id])
        if event is not None:
            event(session, rec, before)
        commit(session)
        return rec



def idle_links(catalog: Catalog, case_no: str, recordings: list[Any], tz: tzinfo) -> list[str]:
    """Why each of these recordings, linked to the case by hand, still covers none of its steps: a photo, no
    start time, or a time outside every step. One line each, in the reader's language."""
    with catalog.reading() as session:
        windows = list(session.execute(select(Action.link_from, Action.link_to).join(Case, Case.id == Action.case_id)
                                       .where(Case.case_no == case_no)))
    notes = []
    for rec in recordings:
        if rec.media_type not in COVERING:
            notes.append(_("#{id}: a photo is evidence of the case but covers no stretch of a step").format(id=rec.id))
        elif rec.start is None:
            notes.append(_("#{id} has no start time, so it covers no step: give it one with 'archiver recordings "
                           "set-time {id} START --reason ...'").format(id=rec.id))
        elif not any(rec.start <= to and (rec.end or rec.start) >= since for since, to in windows):
            notes.append(_("#{id} ({start}) falls outside every step of {case_no}: linked, but it covers none").format(
                id=rec.id, start=rec.start.astimezone(tz).strftime("%Y-%m-%d %H:%M"), case_no=case_no))
    return notes
