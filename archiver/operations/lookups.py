"""Looking things up: recordings, cases and the full-process check, devices, the custody trail, the station's
key, who may do what, and the year's figures. Every lookup of footage or cases is a custody event
(retrieval is logged); an officer sees only their own recordings and the cases they act in, and is told
of anyone else's exactly what they would be told of something that does not exist."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from archiver.cases import links
from archiver.cases.casefile import officer_key
from archiver.cases.people import unknown_officer, unknown_officers
from archiver.cases.times import parse_time
from archiver.catalog.lookup import (
    RecordingFilter,
    find_recording,
    list_recordings,
    missing_recording,
    recording_detail_json,
    recording_json,
)
from archiver.errors import ArchiverError, NotFoundError, RefusedError
from archiver.i18n import _
from archiver.operations import access as rules
from archiver.operations.core import Context, operation


def _own_recording(ctx: Context, ref: str) -> Any:
    """The recording `ref` names, as this actor may see it."""
    own = ctx.own_officer()
    try:
        rec = find_recording(ctx.workspace().catalog, ref)
    except NotFoundError:
        if own is None:
            raise
        raise missing_recording(ref) from None
    if own is not None and rec.officer_no != own:
        raise missing_recording(ref)
    return rec


@operation("recordings list")
def recordings_list(ctx: Context, device: str | None = None, officer: str | None = None, since: str | None = None,
                    until: str | None = None, case_no: str | None = None) -> list[dict[str, Any]]:
    tz = ctx.cfg.timezone
    catalog = ctx.workspace().catalog
    own = ctx.own_officer()
    officer = officer_key(officer) if officer else None  # ＪＸ０２２７, jx0227 and "JX0227 " are JX0227
    if own is not None and officer not in (None, own):
        raise RefusedError(_("{user} may look up only their own recordings (officer {own})").format(
                             user=ctx.actor.user, own=own))
    officer = own or officer
    case_no = links.resolve_case_no(catalog, case_no, own) if case_no else None
    ids = tuple(links.recording_ids_for_case(catalog, case_no, ctx.cfg.linking)) if case_no else None
    flt = RecordingFilter(device, officer, parse_time(since, tz) if since else None,
                          parse_time(until, tz) if until else None, ids)
    rows = list_recordings(catalog, flt)
    ctx.record("lookup", {"recordings": "list"}, {"device": device, "officer": officer, "since": since,
                                                  "until": until, "case_no": case_no, "results": len(rows)})
    linked = links.cases_for_recordings(catalog, (r.id for r in rows))
    return [recording_json(r, tz, linked.get(r.id)) for r in rows]


@operation("recordings show")
def recordings_show(ctx: Context, ref: str) -> dict[str, Any]:
    rec = _own_recording(ctx, ref)
    ctx.record("lookup", {"sha256": rec.sha256, "device": rec.device_serial}, {"command": "recordings show"})
    cases = links.cases_for_recordings(ctx.workspace().catalog, [rec.id]).get(rec.id, [])
    return recording_detail_json(rec, ctx.cfg.timezone, cases)


@operation("recordings view")
def recordings_view(ctx: Context, ref: str) -> dict[str, Any]:
    """A recording opened for playback (the web view streams it from the archived file, never a copy), handed back
    read-only; each playback start is a custody `view` event."""
    import os

    rec = _own_recording(ctx, ref)
    if rec.purged_at is not None:
        raise missing_recording(ref)
    ws = ctx.workspace()
    ctx.record("view", {"sha256": rec.sha256, "device": rec.device_serial}, {"id": rec.id})
    with ws.archive.open(ctx.cfg.data_dir / rec.archive_path) as fh:
        ctx.hand_back(f"{rec.id}", os.dup(fh.fileno()), rec.sha256, rec.size)
    return {"id": rec.id, "size": rec.size, "media_type": rec.media_type,
            "name": rec.archive_path.rsplit("/", 1)[-1]}


def _cases(ctx: Context, text: str | None) -> list[dict[str, Any]]:
    tz = ctx.cfg.timezone
    rows = links.list_cases(ctx.workspace().catalog, text, officer=ctx.own_officer())
    return [{**r, "start": r["start"].astimezone(tz).isoformat() if r["start"] else None,
             "end": r["end"].astimezone(tz).isoformat() if r["end"] else None} for r in rows]


@operation("cases list")
def cases_list(ctx: Context) -> list[dict[str, Any]]:
    rows = _cases(ctx, None)
    ctx.record("lookup", {"cases": "list"}, {"results": len(rows)})
    return rows


SEARCH_LIMIT = 1000  # characters of a search text (no case number, title or officer number is longer)


@operation("cases search")
def cases_search(ctx: Context, text: str) -> list[dict[str, Any]]:
    if len(text) > SEARCH_LIMIT:
        raise ArchiverError(_("a search text of {count} characters: give at most {limit}").format(
                              count=len(text), limit=SEARCH_LIMIT))
    rows = _cases(ctx, text)
    ctx.record("lookup", {"cases": "search"}, {"text": text, "results": [r["case_no"] for r in rows[:100]]})
    return rows


@operation("cases show")
def cases_show(ctx: Context, case_no: str, thumbnails: bool = False) -> dict[str, Any]:
    """The case and its checked actions; with `thumbnails` (the web view), each video's strip of four frames."""
    tz = ctx.cfg.timezone
    catalog = ctx.workspace().catalog
    case_no = links.resolve_case_no(catalog, case_no, ctx.own_officer())
    (check,) = links.check_cases(catalog, [case_no], ctx.cfg.linking, full=True)
    ctx.record("lookup", {"case_no": case_no}, {"command": "cases show"})
    data = links.check_json(check, tz)
    data.update(title=check.case.title, party=check.case.party, kind=check.case.kind,
                closed_at=check.case.closed_at.astimezone(tz).isoformat() if check.case.closed_at else None)
    strips = _thumbnails(ctx, [r for item in check.actions for r in item.recordings]) if thumbnails else None
    for entry, item in zip(data["actions"], check.actions, strict=True):
        entry["recordings"] = [{**recording_json(r, tz), "link": "manual" if r.id in item.manual else "automatic",
                                **({"thumbnail": strips[r.id]} if strips is not None else {})}
                               for r in item.recordings]
    data["linked_by_hand"] = [recording_json(r, tz) for r in check.linked_only]
    data["unlinked_by_hand"] = [recording_json(r, tz) for r in check.unlinked]
    return data


def _thumbnails(ctx: Context, recordings: list[Any]) -> dict[int, str | None]:
    """Each video's strip of four frames (made once, cached outside the archive) as a data: URI, by recording id;
    None for the rest. Those not yet made are made side by side, one ffmpeg per core."""
    from concurrent.futures import ThreadPoolExecutor

    from archiver.cases.thumbnails import strip

    videos = {r.id: r for r in recordings if r.media_type == "video" and r.purged_at is None}
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        made = dict(zip(videos, pool.map(lambda r: strip(ctx.cfg.data_dir, r.archive_path, r.sha256, r.duration_s),
                                         videos.values()), strict=True))
    return {r.id: made.get(r.id) for r in recordings}


@operation("cases check")
def cases_check(ctx: Context, case_nos: list[str], all_cases: bool = False) -> list[dict[str, Any]]:
    if bool(case_nos) == all_cases:
        raise ArchiverError(_("give case numbers or --all (not both)"))
    catalog = ctx.workspace().catalog
    numbers = [links.resolve_case_no(catalog, c) for c in case_nos]
    results = [links.check_json(item, ctx.cfg.timezone)
               for item in links.check_cases(catalog, None if all_cases else numbers, ctx.cfg.linking)]
    with catalog.reading() as session:
        strangers = set(unknown_officers(session, {o for r in results for a in r["actions"] for o in a["officers"]}))
    for result in results:  # officers whose footage could never count: a warning, not a silent 0 %
        result["unknown_officers"] = sorted({o for a in result["actions"] for o in a["officers"]} & strangers)
        result["warnings"] = [unknown_officer(o) for o in result["unknown_officers"]]
    ctx.record("lookup", {"case_no": None if all_cases else numbers},
               {"command": "cases check", "all": all_cases,
                "not_compliant": sum(not r["compliant"] for r in results)})
    return results


@operation("devices list")
def devices_list(ctx: Context) -> list[dict[str, Any]]:
    from archiver.ingest.devices import list_devices

    return list_devices(ctx.workspace().catalog, ctx.cfg.timezone)


@operation("keys show")
def keys_show(ctx: Context) -> dict[str, str]:
    from archiver.ledger.keys import key_paths, load_public_key

    key = load_public_key(ctx.cfg.data_dir)
    return {"key": key.text, "fingerprint": key.fingerprint, "file": str(key_paths(ctx.cfg.data_dir)[1])}


@operation("custody show")
def custody_show(ctx: Context, user: str | None = None, since: str | None = None,
                 action: str | None = None, recording: str | None = None) -> dict[str, Any]:
    """The events as signed, and for each the station's local time and the user it names (as a table shows);
    with `recording` (an id or sha256 prefix), only the events about that recording: its own trail."""
    from archiver.ledger.custody import actor_name, trail

    ws, tz = ctx.workspace(), ctx.cfg.timezone
    rec = find_recording(ws.catalog, recording) if recording else None
    rows = [e for e in trail(ws.custody.path, user, parse_time(since, tz) if since else None, action)
            if rec is None or _about(e, rec.id, rec.sha256)]
    ctx.record("lookup", {"custody": "show"}, {"user": user, "since": since, "action": action, "results": len(rows),
                                               **({"recording": rec.id} if rec else {})})
    return {"events": rows, "shown": [{"time": datetime.fromisoformat(e["time"]).astimezone(tz).isoformat(),
                                       "user": actor_name(e)} for e in rows]}


def _about(event: dict[str, Any], rec_id: int, sha256: str) -> bool:
    """Whether an event names the recording: its sha256 as the subject (or among them), its id among the
    recordings linked or unlinked, or among a purge request's items."""
    subject, details = event.get("subject"), event.get("details")
    named = subject.get("sha256") if isinstance(subject, dict) else None
    if named == sha256 or (isinstance(named, list) and sha256 in named):
        return True
    if not isinstance(details, dict):
        return False
    ids = details.get("recordings")
    items = details.get("items")
    return (isinstance(ids, list) and rec_id in ids) or (
        isinstance(items, list) and any(isinstance(i, dict) and i.get("sha256") == sha256 for i in items))


@operation("access show")
def access_show(ctx: Context) -> dict[str, Any]:
    cfg = ctx.cfg.access
    holders = rules.holders(cfg)
    return {
        "service_user": cfg.service_user,
        "roles": [{"role": r, "group": cfg.groups[r], "users": holders[r], "purpose": rules.PURPOSE[r]}
                  for r in rules.ROLES],
        "commands": {command: list(rules.who_may(command)) for command in rules.MATRIX},
        "officers": dict(sorted(cfg.officers.items())),
        "own_only": sorted(rules.OWN_ONLY),
    }


@operation("access check")
def access_check(ctx: Context, user: str) -> dict[str, Any]:
    try:
        person = rules.person_for(user, ctx.cfg.access)
    except KeyError:
        raise NotFoundError(_("no local user {user!r}: see /etc/passwd (people are the machine's own users)").format(
                              user=user)) from None
    commands = list(rules.MATRIX) if person.privileged else rules.allowed(person.roles)
    return {"user": person.user, "uid": person.uid, "roles": list(person.roles), "officer_no": person.officer_no,
            "privileged": person.privileged, "commands": commands,
            "own_only": [c for c in commands if person.only_own(c)]}


def _figures(ctx: Context, since: datetime, until: datetime, title: str, html: bool, csv: bool) -> dict[str, Any]:
    from archiver.audit.annual import csv_tables, figures, table_text
    from archiver.audit.annual_html import render

    data = figures(ctx.workspace(), since, until, ctx.cfg.report.late_dock_hours)
    page = render(data, title, ctx.cfg.report.unit) if html else None
    tables = {f"{name}.csv": table_text(rows) for name, rows in csv_tables(data).items()} if csv else None
    handed = {**({"report.html": page} if page is not None else {}), **(tables or {})}
    ctx.record("handover" if handed else "lookup", {"report": title},
               {"since": data["since"], "until": data["until"], **({"files": _digests(handed)} if handed else {})})
    return {"title": title, "figures": data, "html": page, "csv": tables}


def _digests(files: dict[str, str]) -> dict[str, str]:
    """What a hand-over gave the person, as the custody log keeps it: each file's SHA-256."""
    import hashlib

    return {name: hashlib.sha256(text.encode()).hexdigest() for name, text in files.items()}


@operation("report year")
def report_year(ctx: Context, year: int, html: bool = False, csv: bool = False) -> dict[str, Any]:
    if not 2000 <= year <= 2100:
        raise ArchiverError(_("the year must be between 2000 and 2100"))
    tz = ctx.cfg.timezone
    return _figures(ctx, datetime(year, 1, 1, tzinfo=tz), datetime(year + 1, 1, 1, tzinfo=tz),
                    _("Enforcement recording in {year}").format(year=year), html, csv)


@operation("report period")
def report_period(ctx: Context, since: str, until: str, html: bool = False, csv: bool = False) -> dict[str, Any]:
    tz = ctx.cfg.timezone
    start, end = parse_time(since, tz), parse_time(until, tz)
    if end <= start:
        raise ArchiverError(_("--until must be after --since"))
    return _figures(ctx, start, end, _("Enforcement recording {since} – {until}").format(since=since, until=until),
                    html, csv)
