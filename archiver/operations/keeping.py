"""How long footage is kept: retention classes, legal holds, the purge plan and the two-person purge. The rules
themselves (periods, what holds a recording back, who may approve) live in `retention`; these operations
give them the person."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from archiver.cases.links import missing_case, resolve_case_no
from archiver.catalog import Case
from archiver.catalog.lookup import find_recording
from archiver.errors import ArchiverError
from archiver.i18n import _
from archiver.operations.core import Context, operation
from archiver.retention import purge as lib
from archiver.retention.clock import now
from archiver.retention.plan import gather, make_plan


def _iso(ctx: Context, value: datetime | None) -> str | None:
    return value.astimezone(ctx.cfg.timezone).isoformat() if value else None


@operation("recordings classify")
def recordings_classify(ctx: Context, ref: str, retention_class: str, reason: str) -> dict[str, Any]:
    if not reason.strip():
        raise ArchiverError(_("--reason must say why"))
    ws = ctx.workspace()
    rec = find_recording(ws.catalog, ref)
    (facts,) = gather(ws, [rec.id]) or [None]
    if facts is None:
        raise ArchiverError(_("recording #{id} was purged: only its tombstone is kept").format(id=rec.id))
    lib.classify(ws, rec, retention_class, reason, linked=bool(facts.cases), held=facts.held)
    return {"id": rec.id, "class": retention_class}


def _targets(ctx: Context, refs: list[str], case_no: str | None) -> tuple[list[Any], Any]:
    if bool(refs) == bool(case_no):
        raise ArchiverError(_("give recording references or --case (one of them)"))
    catalog = ctx.workspace().catalog
    if case_no:
        number = resolve_case_no(catalog, case_no)
        with catalog.reading() as session:
            case = session.scalars(select(Case).where(Case.case_no == number)).first()
        if case is None:
            raise missing_case(case_no)
        return [], case
    return [find_recording(catalog, ref) for ref in refs], None


def _reason(reason: str) -> str:
    if not reason.strip():
        raise ArchiverError(_("--reason must say why"))
    return reason


@operation("hold add")
def hold_add(ctx: Context, refs: list[str], reason: str, case_no: str | None = None) -> dict[str, int]:
    recordings, case = _targets(ctx, refs, case_no)
    return {"placed": len(lib.add_hold(ctx.workspace(), recordings, case, _reason(reason), now()))}


@operation("hold remove")
def hold_remove(ctx: Context, refs: list[str], reason: str, case_no: str | None = None) -> dict[str, int]:
    recordings, case = _targets(ctx, refs, case_no)
    return {"lifted": lib.lift_holds(ctx.workspace(), recordings, case, _reason(reason), now())}


@operation("hold list")
def hold_list(ctx: Context) -> list[dict[str, Any]]:
    return [{**r, "placed_at": _iso(ctx, r["placed_at"])} for r in lib.list_holds(ctx.workspace())]


@operation("retention plan")
def retention_plan(ctx: Context) -> dict[str, Any]:
    result = make_plan(ctx.workspace(), now())
    ctx.record("lookup", {"retention": "plan"}, {"due_now": len(result.due_now), "upcoming": len(result.upcoming)})
    return result.to_json()


@operation("retention requests")
def retention_requests(ctx: Context) -> list[dict[str, Any]]:
    return [{**r, **{k: _iso(ctx, r[k]) for k in ("requested_at", "approved_at", "finished_at")}}
            for r in lib.list_requests(ctx.workspace())]


@operation("retention purge")
def retention_purge(ctx: Context, request_id: int | None = None, make_request: bool = False) -> dict[str, Any]:
    """With `make_request`, a request listing what is due now; with `request_id`, that approved purge."""
    if make_request == (request_id is not None):
        raise ArchiverError(_("give --request, or the ID of an approved request (one of them)"))
    ws = ctx.workspace()
    if make_request:
        request = lib.request_purge(ws, now())
        return {"id": request.id, "recordings": len(request.items), "bytes": request.bytes, "items": request.items}
    return lib.purge(ws, request_id, now())


@operation("retention approve")
def retention_approve(ctx: Context, request_id: int) -> dict[str, Any]:
    request = lib.approve(ctx.workspace(), request_id, now())
    return {"id": request_id, "recordings": len(request.items), "bytes": request.bytes}
