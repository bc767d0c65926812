"""The two-person purge: requested by one person, approved by another, then carried out, each step a
custody event; and legal holds, which always win.

A purge removes only what is still due when it runs (a hold added meanwhile wins). Each recording goes
in one catalog transaction that records its `purge` custody event and makes its row a tombstone
(`purged_at`); then its file leaves the archive, then its day manifests are rewritten. Killed anywhere,
running the purge again finishes every tombstone and goes on; a recording is never half purged in the
catalog. Backup targets drop the objects of purged recordings (backup/targets.py), except those in
backup.keep_purged.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import func, select

from archiver.archive.manifests import write_day_manifests
from archiver.archive.workspace import Workspace
from archiver.catalog import Case, Hold, PurgeRequest, Recording
from archiver.catalog.db import commit
from archiver.errors import ArchiverError, NotFoundError, RefusedError
from archiver.i18n import _
from archiver.retention.plan import make_plan
from archiver.retention.rules import INVALID


class RetentionError(ArchiverError):
    """A retention command cannot go on (nothing due, a request in the wrong state, a bad class)."""


def _who(ws: Workspace) -> str:
    return str(ws.custody.actor.get("user"))


def request_purge(ws: Workspace, now: datetime) -> PurgeRequest:
    """Record a request listing exactly what is due now (a signed custody event holds the list)."""
    plan = make_plan(ws, now)
    if not plan.due_now:
        raise RetentionError(_("nothing is due for purging on {today}: see 'archiver retention plan'").format(
            today=plan.today.isoformat()))
    items = [{k: item[k] for k in ("id", "sha256", "archive_path", "bytes", "class", "due")} for item in plan.due_now]
    total = sum(item["bytes"] for item in items)
    with ws.catalog.session() as session:
        request = PurgeRequest(requested_by=_who(ws), requested_at=now, items=items, bytes=total, state="requested")
        session.add(request)
        session.flush()
        ws.custody.append("purge_request", {"request": request.id}, {"items": items, "bytes": total}, session)
        commit(session)
        session.refresh(request)
        session.expunge(request)
    return request


def _request(session, request_id: int) -> PurgeRequest:
    request = session.get(PurgeRequest, request_id)
    if request is None:
        raise NotFoundError(_("no purge request {id}: see 'archiver retention requests'").format(id=request_id))
    return request


def _expire(ws: Workspace, session, request: PurgeRequest, now: datetime) -> None:
    """A request not carried out within retention.request_days expires (a custody event says so): refused."""
    if now - request.requested_at <= timedelta(days=ws.cfg.retention.request_days):
        return
    request.state, request.finished_at = "expired", now
    ws.custody.append("purge_expired", {"request": request.id}, {"requested_at": request.requested_at.isoformat(),
                                                                  "days": ws.cfg.retention.request_days}, session)
    commit(session)
    raise RetentionError(_("purge request {id} was made more than {days} day(s) ago and has expired: request the "
                           "purge again ('archiver retention purge --request')").format(
                           id=request.id, days=ws.cfg.retention.request_days))


def approve(ws: Workspace, request_id: int, now: datetime) -> PurgeRequest:
    """The second person's approval: never the person who requested it."""
    with ws.catalog.session() as session:
        request = _request(session, request_id)
        if request.state != "requested":
            raise RetentionError(_("purge request {id} is {state}, not waiting for approval").format(
                id=request_id, state=request.state))
        _expire(ws, session, request, now)
        if request.requested_by == _who(ws):
            raise RefusedError(_("{user} requested purge {id}: a different person (auditor or legal) must approve "
                                 "it").format(user=_who(ws), id=request_id))
        request.approved_by, request.approved_at, request.state = _who(ws), now, "approved"
        ws.custody.append("purge_approve", {"request": request_id},
                          {"requested_by": request.requested_by, "items": len(request.items), "bytes": request.bytes},
                          session)
        commit(session)
        session.expunge(request)
    return request


def purge(ws: Workspace, request_id: int, now: datetime) -> dict[str, Any]:
    """Carry out an approved request: purge each listed recording that is still due, skip the rest. A request
    is used once: run again once done, it purges nothing (what it skipped needs a new request); killed
    before it was done, it finishes."""
    with ws.catalog.session() as session:
        request = _request(session, request_id)
        if request.state == "done":
            done = session.scalar(select(func.count()).select_from(Recording)
                                  .where(Recording.purge_request_id == request_id))
            return {"request": request_id, "purged": 0, "skipped": [], "bytes": 0, "purged_before": done,
                    "done_at": request.finished_at.isoformat() if request.finished_at else None}
        if request.state not in ("approved", "purging"):
            raise RetentionError(_("purge request {id} is {state}: it must be approved by a second person "
                                   "first").format(id=request_id, state=request.state))
        if request.state == "approved":
            _expire(ws, session, request, now)
            request.state = "purging"
            commit(session)
        items, approved_by, requested_by = list(request.items), request.approved_by, request.requested_by
    listed = {item["id"]: item for item in items}
    still_due = {item["id"] for item in make_plan(ws, now, list(listed)).due_now}
    purged, skipped = [], []
    for rid, item in listed.items():
        with ws.catalog.session() as session:
            rec = session.get(Recording, rid)
            if rec is None or rec.sha256 != item["sha256"]:
                skipped.append({"id": rid, "why": "gone"})
                continue
            if rec.purged_at is not None:
                purged.append(rid)  # a run that was killed got this far
                continue
            if rid not in still_due:
                skipped.append({"id": rid, "why": "no longer due"})
                continue
            ws.custody.append("purge", {"sha256": rec.sha256, "device": rec.device_serial},
                              {"request": request_id, "class": item["class"], "due": item["due"],
                               "archive_path": rec.archive_path, "bytes": rec.size,
                               "requested_by": requested_by, "approved_by": approved_by}, session)
            rec.purged_at, rec.purge_request_id = now, request_id
            commit(session)
        purged.append(rid)
    finish(ws, request_id)
    with ws.catalog.session() as session:
        request = _request(session, request_id)
        if request.state != "done":
            request.state, request.finished_at = "done", now
            ws.custody.append("purge_done", {"request": request_id},
                              {"purged": len(purged), "skipped": skipped}, session)
            commit(session)
    return {"request": request_id, "purged": len(purged), "skipped": skipped,
            "bytes": sum(listed[r]["bytes"] for r in purged)}


def finish(ws: Workspace, request_id: int | None = None) -> int:
    """Remove from the archive the files of tombstoned recordings that are still there (a purge killed
    between its catalog commit and the unlink), and rewrite their day manifests. How many files."""
    with ws.catalog.session() as session:
        query = select(Recording.archive_path).where(Recording.purged_at.is_not(None))
        if request_id is not None:
            query = query.where(Recording.purge_request_id == request_id)
        paths = list(session.scalars(query))
    removed, days = 0, set()
    for rel in paths:
        path = PurePosixPath(rel)
        days.add(ws.archive.data_dir.joinpath(*path.parts[:4]))
        try:
            with ws.archive.folder(ws.archive.data_dir / path.parent) as folder:
                if folder.exists(path.name):
                    folder.unlink(path.name)
                    folder.sync()
                    removed += 1
        except FileNotFoundError:
            continue
    with ws.archive.writing():
        write_day_manifests(ws.archive, ws.catalog, {d for d in days if d.is_dir()}, ws.cfg.hashes)
    return removed


def unfinished(ws: Workspace) -> list[int]:
    """Purge requests a killed run left half done."""
    with ws.catalog.reading() as session:
        return list(session.scalars(select(PurgeRequest.id).where(PurgeRequest.state == "purging")))


def list_requests(ws: Workspace) -> list[dict[str, Any]]:
    with ws.catalog.reading() as session:
        return [{"id": r.id, "state": r.state, "requested_by": r.requested_by, "requested_at": r.requested_at,
                 "approved_by": r.approved_by, "approved_at": r.approved_at, "recordings": len(r.items),
                 "bytes": r.bytes, "finished_at": r.finished_at}
                for r in session.scalars(select(PurgeRequest).order_by(PurgeRequest.id))]


# -- holds and classes ------------------------------------------------------------------------------
def add_hold(ws: Workspace, recordings: list[Recording], case: Case | None, reason: str,
             now: datetime) -> list[int]:
    with ws.catalog.session() as session:
        made = []
        for rec in recordings:
            hold = Hold(recording_id=rec.id, reason=reason, placed_by=_who(ws), placed_at=now)
            session.add(hold)
            session.flush()
            ws.custody.append("hold_add", {"sha256": rec.sha256, "device": rec.device_serial},
                              {"hold": hold.id, "reason": reason}, session)
            made.append(hold.id)
        if case is not None:
            hold = Hold(case_id=case.id, reason=reason, placed_by=_who(ws), placed_at=now)
            session.add(hold)
            session.flush()
            ws.custody.append("hold_add", {"case_no": case.case_no}, {"hold": hold.id, "reason": reason}, session)
            made.append(hold.id)
        commit(session)
    return made


def lift_holds(ws: Workspace, recordings: list[Recording], case: Case | None, reason: str,
               now: datetime) -> int:
    """Lift every standing hold on these recordings (their own) or on the case."""
    with ws.catalog.session() as session:
        query = select(Hold).where(Hold.lifted_at.is_(None))
        if case is not None:
            query = query.where(Hold.case_id == case.id)
        else:
            query = query.where(Hold.recording_id.in_([r.id for r in recordings]))
        holds = list(session.scalars(query))
        for hold in holds:
            hold.lifted_by, hold.lifted_at, hold.lift_reason = _who(ws), now, reason
            subject = {"case_no": case.case_no} if case is not None else \
                {"sha256": next(r.sha256 for r in recordings if r.id == hold.recording_id)}
            ws.custody.append("hold_remove", subject, {"hold": hold.id, "reason": reason}, session)
        commit(session)
    return len(holds)


def list_holds(ws: Workspace) -> list[dict[str, Any]]:
    with ws.catalog.reading() as session:
        rows = session.execute(select(Hold, Case.case_no, Recording.sha256, Recording.archive_path)
                               .outerjoin(Case, Case.id == Hold.case_id)
                               .outerjoin(Recording, Recording.id == Hold.recording_id)
                               .where(Hold.lifted_at.is_(None)).order_by(Hold.id)).all()
    return [{"id": hold.id, "case_no": case_no, "recording": hold.recording_id, "sha256": sha256,
             "archive_path": path, "reason": hold.reason, "placed_by": hold.placed_by, "placed_at": hold.placed_at}
            for hold, case_no, sha256, path in rows]


def classify(ws: Workspace, rec: Recording, name: str, reason: str, linked: bool, held: bool) -> None:
    """A person's class for a recording; `invalid` never on one linked to a case or held."""
    if name not in ws.cfg.retention.classes:
        raise RetentionError(_("no retention class {name!r}: the classes are {names} (retention.classes in the "
                               "config)").format(name=name, names=", ".join(sorted(ws.cfg.retention.classes))))
    if name == INVALID and (linked or held):
        raise RetentionError(_("recording #{id} is linked to a case or held: it cannot be classed invalid").format(
            id=rec.id))
    with ws.catalog.session() as session:
        row = session.get(Recording, rec.id)
        assert row is not None
        before, row.retention_class = row.retention_class, name
        ws.custody.append("classify", {"sha256": rec.sha256, "device": rec.device_serial},
                          {"class": name, "before": before, "reason": reason}, session)
        commit(session)

