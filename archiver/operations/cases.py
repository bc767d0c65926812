"""Changing cases: importing a case file handed in, linking and unlinking recordings by hand, removing a case
imported by mistake; and a case's report. Each change and its custody event commit together."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from archiver.cases import hand, links, people
from archiver.cases.casefile import read_case_file
from archiver.catalog.lookup import find_recording
from archiver.errors import ArchiverError
from archiver.i18n import _
from archiver.operations.core import Context, operation

CASE_FILE_LIMIT = 64 << 20


def _records(ctx: Context, encoding: str | None) -> tuple[str, list, list[str]]:
    """(the file's name, its cases with officers named by 执法证号, notes on what was left out and warnings on
    officers nothing here knows) of the case file handed in."""
    source = ctx.the_input()
    records, notes = read_case_file(source.name, source.read(CASE_FILE_LIMIT), ctx.cfg.timezone, encoding,
                                    ctx.cfg.linking.not_required_stages)
    unknown = sorted({r.retention_class for r in records} - set(ctx.cfg.retention.classes) - {None})
    if unknown:
        raise ArchiverError(_("{file}: retention class(es) {names} are not in retention.classes ({known}); nothing "
                              "imported").format(file=source.name, names=", ".join(unknown),
                                                 known=", ".join(sorted(ctx.cfg.retention.classes))))
    with ctx.workspace(upgrade=True).catalog.reading() as session:
        records, warnings = people.resolve(records, *people.name_index(session))
        strangers = people.unknown_officers(session, {o for r in records for a in r.actions for o in a.officers})
    return source.name, records, notes + warnings + [people.unknown_officer(o) for o in strangers]


@operation("cases import")
def cases_import(ctx: Context, file: str, encoding: str | None = None, dry_run: bool = False) -> dict[str, Any]:
    """`file`: how the person named it, for the record; the bytes come from the descriptor handed in."""
    _name, records, notes = _records(ctx, encoding)
    if dry_run:
        tz = ctx.cfg.timezone
        return {"notes": notes, "cases": [{"case_no": r.case_no, "title": r.title, "actions": [
            {"stage": a.stage, "officers": list(a.officers), "start": a.start.astimezone(tz).isoformat(),
             "end": a.end.astimezone(tz).isoformat(), "recording_required": a.recording_required}
            for a in r.actions]} for r in records]}
    ws = ctx.workspace(upgrade=True)

    def record(session: Any, result: links.ImportResult) -> None:
        ctx.record("case_import", {"file": file},
                   {**result.to_json(), "case_nos": [r.case_no for r in records[:1000]], "cases": len(records)},
                   session=session)

    result = links.import_cases(ws.catalog, records, ctx.cfg.linking, record)
    return {"notes": notes, "result": result.to_json()}


@operation("cases remove")
def cases_remove(ctx: Context, case_no: str, reason: str) -> dict[str, Any]:
    if not reason.strip():
        raise ArchiverError(_("--reason must say why the case is removed"))

    def record(session: Any, removed: links.Removed) -> None:
        number, actions, recordings = removed
        ctx.record("case_remove", {"case_no": number}, {"reason": reason, "actions": actions,
                                                        "recordings": recordings}, session=session)

    number, actions, recordings = links.remove_case(ctx.workspace().catalog, case_no, record)
    return {"case_no": number, "actions": actions, "recordings": recordings}


def _manual(ctx: Context, case_no: str, refs: list[str], kind: str) -> dict[str, Any]:
    if not refs:
        raise ArchiverError(_("give one or more recordings (ids or sha256 prefixes)"))
    catalog = ctx.workspace().catalog
    number = links.resolve_case_no(catalog, case_no)
    recs = [find_recording(catalog, ref) for ref in refs]
    ids = [r.id for r in recs]

    def record(session: Any, number: str) -> None:
        ctx.record(kind.removesuffix("ed"), {"case_no": number}, {"recordings": ids,
                                                                  "sha256": [r.sha256 for r in recs]},
                   session=session)

    number = links.set_manual_link(catalog, number, ids, kind, ctx.actor.user, record)
    notes = hand.idle_links(catalog, number, recs, ctx.cfg.timezone) if kind == "linked" else []
    return {"case_no": number, "kind": kind, "recordings": ids, "notes": notes}


@operation("cases link")
def cases_link(ctx: Context, case_no: str, refs: list[str]) -> dict[str, Any]:
    return _manual(ctx, case_no, refs, "linked")


@operation("cases unlink")
def cases_unlink(ctx: Context, case_no: str, refs: list[str]) -> dict[str, Any]:
    return _manual(ctx, case_no, refs, "unlinked")


@operation("cases report")
def cases_report(ctx: Context, case_no: str, file: str | None = None) -> dict[str, Any]:
    """The report as one HTML page; `file` is where the person will keep it, for the record."""
    from archiver.cases.report import render_case
    from archiver.cases.thumbnails import strip

    catalog = ctx.workspace().catalog
    case_no = links.resolve_case_no(catalog, case_no)
    (item,) = links.check_cases(catalog, [case_no], ctx.cfg.linking, full=True)
    videos = {r.id: r for a in item.actions for r in a.recordings if r.media_type == "video"}
    videos |= {r.id: r for r in item.linked_only if r.media_type == "video"}
    pictures = {rid: strip(ctx.cfg.data_dir, r.archive_path, r.sha256, r.duration_s)
                for rid, r in videos.items() if getattr(r, "purged_at", None) is None}
    page = render_case(item, ctx.cfg.timezone, datetime.now(UTC), pictures)
    ctx.record("handover", {"case_no": case_no}, {"command": "cases report", "file": file,
                                                  "sha256": hashlib.sha256(page.encode()).hexdigest()})
    return {"case_no": case_no, "compliant": item.compliant, "html": page}


PEOPLE_FILE_LIMIT = 16 << 20


@operation("people import")
def people_import(ctx: Context, file: str, encoding: str | None = None) -> dict[str, Any]:
    """The personnel register handed in; `file`: how the person named it, for the record."""
    source = ctx.the_input()
    found = people.read_people(source.name, source.read(PEOPLE_FILE_LIMIT), encoding)

    def record(session: Any, result: people.PeopleResult) -> None:
        ctx.record("people_import", {"file": file}, {**result.to_json(),
                                                     "officer_nos": [p.officer_no for p in found[:1000]]},
                   session=session)

    return people.import_people(ctx.workspace(upgrade=True).catalog, found, record).to_json()


@operation("people list")
def people_list(ctx: Context) -> list[dict[str, Any]]:
    return people.list_people(ctx.workspace().catalog)


@operation("recordings set-time")
def recordings_set_time(ctx: Context, ref: str, start: str, reason: str) -> dict[str, Any]:
    """A file whose name carries no time (a voice recorder's 录音001.MP3) given its start by a person: its name and
    bytes stay as they are; who set it, when, from what and why is a custody event."""
    from archiver.cases.times import parse_time

    if not reason.strip():
        raise ArchiverError(_("--reason must say where the time comes from (a note, the register, a witness)"))
    tz = ctx.cfg.timezone
    moment = parse_time(start, tz, need_time=True)
    rec = find_recording(ctx.workspace().catalog, ref)

    def record(session: Any, changed: Any, before: datetime | None) -> None:
        ctx.record("recording_set_time", {"sha256": changed.sha256, "device": changed.device_serial},
                   {"id": changed.id, "start": moment.isoformat(), "before": before.isoformat() if before else None,
                    "original_path": changed.original_path, "reason": reason}, session=session)

    changed = hand.set_start(ctx.workspace().catalog, rec.id, moment, record)
    return {"id": changed.id, "start": changed.start.astimezone(tz).isoformat(),
            "end": changed.end.astimezone(tz).isoformat() if changed.end else None,
            "cases": links.cases_for_recordings(ctx.workspace().catalog, [changed.id]).get(changed.id, [])}
