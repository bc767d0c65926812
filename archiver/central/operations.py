"""The operations that reach the county, registered here because this room sits above the operations room:
`sync` (a station hands its log in), `stations add|list|check` (at the centre), `verify` (whose --central form
checks every station), and `status` (which says how far the centre is behind)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from archiver.cases.times import parse_time
from archiver.errors import ArchiverError
from archiver.i18n import _
from archiver.operations.core import Context, operation


@operation("sync")
def sync(ctx: Context) -> dict[str, Any]:
    from archiver.central.sync import sync as run_sync

    report = run_sync(ctx.workspace())
    return {"station": report.station, "central_seq": report.central_seq, "head": report.head,
            "behind": report.behind, "handed_in": report.handed_in, "applied": report.applied,
            "refused": report.refused, "receipt": report.receipt}


@operation("central")
def central(ctx: Context) -> None:
    """Never served: the centre's process runs on its own (`archiver central`)."""
    from archiver.operations.access import NOT_SERVED

    raise ArchiverError(_(NOT_SERVED["central"]))


@operation("stations add")
def stations_add(ctx: Context, station_id: str, key: str) -> dict[str, str]:
    from archiver.central.stations import add_station

    done = add_station(ctx.workspace(), station_id, key)
    return {"station": done.station.id, "key": done.station.public_key, "url": done.url,
            "centre_key": ctx.workspace().station_key.public.text}


@operation("stations list")
def stations_list(ctx: Context) -> list[dict[str, Any]]:
    from archiver.central.stations import list_stations

    tz = ctx.cfg.timezone
    return [{"station": r.id, "key_fingerprint": r.fingerprint, "events": r.seq, "recordings": r.recordings,
             "synced_at": r.synced_at.astimezone(tz).isoformat() if r.synced_at else None, "refusals": r.refusals}
            for r in list_stations(ctx.workspace())]


@operation("stations check")
def stations_check(ctx: Context, station_id: str | None = None) -> dict[str, Any]:
    from archiver.central.stations import check_stations

    results = check_stations(ctx.workspace(), station_id)
    problems = [p for r in results for p in r.problems]
    return {"stations": [{"station": r.station, "events": r.events,
                          "problems": [p.to_station_json() for p in r.problems]} for r in results],
            "problems": len(problems)}


@operation("verify")
def verify(ctx: Context, case_no: str | None = None, since: str | None = None, max_minutes: float | None = None,
           heads: list[str] | None = None, central: bool = False) -> dict[str, Any]:
    """The archive and the custody log checked (see `audit.verify`); with `central`, every station's events
    and every S3 object at the centre."""
    if case_no and since:
        raise ArchiverError(_("give --case or --since, not both"))
    if max_minutes is not None and max_minutes < 0:
        raise ArchiverError(_("--max-minutes must be 0 or more"))
    if central:
        from archiver.central.stations import verify_central

        checks, problems, objects = verify_central(ctx.workspace())
        ctx.record("verify", {"scope": "central"}, {"stations": len(checks), "objects": objects,
                                                    "problems": len(problems)})
        return {"stations": [{"station": c.station, "events": c.events} for c in checks], "objects": objects,
                "problems": [p.to_station_json() for p in problems]}
    from archiver.audit.verify import verify as run_verify
    from archiver.ledger.anchor import parse_head

    anchors = [parse_head(text) for text in heads or []]
    report = run_verify(ctx.workspace(), case_no, parse_time(since, ctx.cfg.timezone) if since else None,
                        max_minutes, ctx.progress, anchors)
    return report.to_json()


def _central_lag(ws: Any, tz: Any) -> dict[str, Any] | None:
    from archiver.central.sync import lag

    behind = lag(ws)
    if behind is None:
        return None

    def when(value: Any) -> str | None:
        return value.astimezone(tz).isoformat() if value else None

    return {"url": behind.url, "station": behind.station, "central_seq": behind.central_seq, "head": behind.head,
            "events_behind": behind.events, "recordings_behind": behind.recordings,
            "oldest_behind": when(behind.oldest), "synced_at": when(behind.synced_at),
            "error": behind.error, "error_at": when(behind.error_at)}


@operation("status")
def status(ctx: Context) -> dict[str, Any]:
    from archiver.catalog import Case, Device, IngestRun, Recording, VerifyRun
    from archiver.ledger.custody import catalog_head, log_head
    from archiver.retention.capacity import capacity
    from archiver.retention.clock import now

    ws = ctx.workspace()
    tz = ctx.cfg.timezone
    with ws.catalog.reading() as session:
        count, size = session.execute(select(func.count(), func.coalesce(func.sum(Recording.size), 0))
                                      .select_from(Recording)).one()
        cases = session.scalar(select(func.count()).select_from(Case))
        devices = session.scalar(select(func.count()).select_from(Device))
        ingest = session.scalar(select(IngestRun).order_by(IngestRun.id.desc()).limit(1))
        checked = session.scalar(select(VerifyRun).order_by(VerifyRun.id.desc()).limit(1))
    head = log_head(ws.custody.path)
    recorded = catalog_head(ws.catalog)
    return {
        "data_dir": str(ctx.cfg.data_dir),
        "recordings": count, "bytes": int(size), "cases": cases, "devices": devices,
        "last_ingest": None if ingest is None else {
            "run_id": ingest.id, "source": ingest.source, "status": ingest.status,
            "finished_at": ingest.finished_at.astimezone(tz).isoformat() if ingest.finished_at else None,
            "ingested": ingest.ingested, "failed": ingest.failed},
        "last_verify": None if checked is None else {
            "run_id": checked.id, "scope": checked.scope,
            "finished_at": checked.finished_at.astimezone(tz).isoformat() if checked.finished_at else None,
            "checked": checked.checked, "ok": checked.ok, "remaining": checked.remaining,
            "problems": len(checked.problems), "result": "ok" if not checked.problems else "problems"},
        "custody_head": None if head is None else {"seq": head.seq, "hash": head.hash},
        "custody_head_in_catalog": None if recorded is None else {"seq": recorded.seq, "hash": recorded.hash},
        "capacity": capacity(ws, now()),
        "central": _central_lag(ws, tz),
    }
