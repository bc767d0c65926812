"""`archiver recordings list|show|get`."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import click

from archiver.cases.links import cases_for_recordings, recording_ids_for_case, resolve_case_no
from archiver.catalog.lookup import (
    RecordingFilter,
    find_recording,
    list_recordings,
    parse_time,
    recording_detail_json,
    recording_json,
)
from archiver.cli import App
from archiver.cli.localized import Group
from archiver.cli.output import Column, echo_fields, echo_json, human_bytes, json_option, print_table
from archiver.errors import ArchiverError, RefusedError
from archiver.i18n import N_, _


@click.group(cls=Group)
def recordings() -> None:
    """Look up archived recordings."""


@recordings.command("list")
@click.option("--device", metavar="SERIAL", help="Only this device.")
@click.option("--officer", metavar="NO", help="Only this officer number.")
@click.option("--since", metavar="TIME", help="Only recordings running at or after TIME (ISO 8601).")
@click.option("--until", metavar="TIME", help="Only recordings starting at or before TIME (ISO 8601).")
@click.option("--case", "case_no", metavar="CASE_NO", help="Only recordings linked to this case.")
@json_option("Print a JSON array.")
@click.pass_obj
def list_(app: App, device, officer, since, until, case_no, as_json: bool) -> None:
    """List recordings, oldest first. Times without an offset are in the configured timezone."""
    tz = app.config.timezone
    catalog = app.workspace().catalog
    own = app.own_officer("recordings list")
    if own is not None and officer not in (None, own):
        raise RefusedError(_("{user} may look up only their own recordings (officer {own})").format(
                             user=app.person.user, own=own))
    officer = own or officer
    case_no = resolve_case_no(catalog, case_no) if case_no else None
    ids = tuple(recording_ids_for_case(catalog, case_no, app.config.linking)) if case_no else None
    flt = RecordingFilter(device, officer, parse_time(since, tz) if since else None,
                          parse_time(until, tz) if until else None, ids)
    rows = list_recordings(catalog, flt)
    app.record("lookup", {"recordings": "list"}, {"device": device, "officer": officer, "since": since,
                                                  "until": until, "case_no": case_no, "results": len(rows)})
    if as_json:
        linked = cases_for_recordings(catalog, (r.id for r in rows))
        echo_json([recording_json(r, tz, linked.get(r.id)) for r in rows])
        return
    print_table([Column(_("ID")), Column(_("Start")), Column(_("Device")), Column(_("Officer")),
                 Column(_("Type"), optional=True), Column(_("Duration"), optional=True),
                 Column(_("Size"), optional=True), Column("SHA-256", prefix=True), Column(_("Flags"), wrap=True),
                 Column(_("Original path"), shorten=True)],
                [[str(r.id), r.start.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if r.start else "-",
                  r.device_serial or "-", r.officer_no or "-", _(r.media_type),
                  f"{r.duration_s:.0f} s" if r.duration_s is not None else "-", human_bytes(r.size),
                  r.sha256[:12], ",".join(r.flags or []), repr(r.original_path)[1:-1]] for r in rows],
                )
    click.echo(_("{count} recording(s)").format(count=len(rows)))


@recordings.command()
@click.argument("ref")
@json_option("Print one JSON object.")
@click.pass_obj
def show(app: App, ref: str, as_json: bool) -> None:
    """Show one recording. REF is its id or a sha256 prefix of 8 or more hex digits."""
    catalog = app.workspace().catalog
    rec = find_recording(catalog, ref)
    own = app.own_officer("recordings show")
    if own is not None and rec.officer_no != own:
        raise RefusedError(_("{user} may look up only their own recordings (officer {own}): {ref} is not one of "
                             "them").format(user=app.person.user, own=own, ref=ref))
    app.record("lookup", {"sha256": rec.sha256, "device": rec.device_serial}, {"command": "recordings show"})
    data = recording_detail_json(rec, app.config.timezone, cases_for_recordings(catalog, [rec.id]).get(rec.id, []))
    if as_json:
        echo_json(data)
        return
    data["media_type"] = _(data["media_type"])
    rows = [(_(FIELDS.get(key, key)), "-" if value in (None, []) else repr(value)[1:-1] if isinstance(value, str)
             else ", ".join(value) if isinstance(value, list) else str(value))
            for key, value in data.items() if key not in ("media", "sightings")]
    media = data["media"] or {}
    if media:
        rows.append((_("media"), f"{media.get('format')}, " + "; ".join(
            f"{s.get('codec_type')} {s.get('codec_name')}" for s in media.get("streams", []))))
    rows += [(_("seen"), _("{seen_at} {source} / {original_path!r} (run {ingest_run})").format(**s))
             for s in data["sightings"]]
    echo_fields(rows)


# How `recordings show` labels the fields of the JSON form.
FIELDS = {"id": N_("id"), "sha256": N_("sha256"), "sm3": N_("sm3"), "size": N_("size (bytes)"),
          "media_type": N_("media type"), "original_path": N_("original path"), "device_serial": N_("device"),
          "officer_no": N_("officer"), "start": N_("start"), "end": N_("end"), "duration_s": N_("duration (s)"),
          "archive_path": N_("archive path"), "ingested_at": N_("ingested at"), "verified_at": N_("verified at"),
          "flags": N_("flags"), "cases": N_("cases"), "original_path_b64": N_("original path (base64)")}


@recordings.command()
@click.argument("refs", nargs=-1, metavar="[REF ...]")
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@click.option("--reason", required=True, help="Why you retrieve it (调阅事由): kept in the custody log.")
@click.option("--case", "case_no", metavar="CASE_NO", help="Retrieve every recording linked to this case.")
@click.pass_obj
def get(app: App, refs: tuple[str, ...], dest: Path, reason: str, case_no: str | None) -> None:
    """Retrieve recordings (ids or sha256 prefixes, or --case) into the folder DEST (made if missing),
    each under its own file name; every copy is checked against the catalog's SHA-256. Each retrieval,
    with its reason and destination, is a custody event. A file already in DEST is kept if identical."""
    if not reason.strip():
        raise ArchiverError(_("--reason must say why the footage is retrieved"))
    if bool(refs) == bool(case_no):
        raise ArchiverError(_("give recording references or --case (one of them) and DEST"))
    ws = app.workspace()
    case_no = resolve_case_no(ws.catalog, case_no) if case_no else None
    ids = recording_ids_for_case(ws.catalog, case_no, app.config.linking) if case_no else None
    recs = [find_recording(ws.catalog, str(i)) for i in ids] if ids is not None else \
        [find_recording(ws.catalog, ref) for ref in refs]
    if ids is not None:
        recs = [r for r in recs if r.purged_at is None]  # a case's purged recordings are tombstones
    for rec in recs:
        if rec.purged_at is not None:
            raise ArchiverError(_("recording #{id} was purged on {date} (purge request {request}): only its "
                                  "tombstone is kept").format(id=rec.id, request=rec.purge_request_id,
                                                              date=rec.purged_at.astimezone(app.config.timezone)
                                                              .date().isoformat()))
    names = {PurePosixPath(r.archive_path).name for r in recs}
    if len(names) < len({r.id for r in recs}):
        raise ArchiverError(_("two of these recordings have the same file name: retrieve them into separate "
                              "folders"))
    total = 0
    for rec in recs:
        target = dest / PurePosixPath(rec.archive_path).name
        app.record("retrieve", {"sha256": rec.sha256, "device": rec.device_serial},
                   {"reason": reason, "dest": str(app.files.absolute(target)), "case_no": case_no, "id": rec.id})
        with ws.archive.open(app.config.data_dir / rec.archive_path) as fh:
            app.files.deliver(fh.fileno(), target, rec.sha256, rec.size)
        total += rec.size
        click.echo(_("#{id} {name}: {size}, sha256 {sha256} checked").format(
                     id=rec.id, name=target.name, size=human_bytes(rec.size), sha256=rec.sha256))
    click.echo(_("retrieved {count} recording(s), {total}, into {dest}").format(
                 count=len(recs), total=human_bytes(total), dest=dest))


@recordings.command()
@click.argument("ref")
@click.argument("retention_class", metavar="CLASS")
@click.option("--reason", required=True, help="Why this class: kept in the custody log.")
@click.pass_obj
def classify(app: App, ref: str, retention_class: str, reason: str) -> None:
    """Set a recording's retention class (one of retention.classes). The longest period that applies
    still wins; `invalid` (a file ingested by mistake) is refused on a recording linked to a case or held."""
    from archiver.retention.plan import gather
    from archiver.retention.purge import classify as set_class

    if not reason.strip():
        raise ArchiverError(_("--reason must say why"))
    ws = app.workspace()
    rec = find_recording(ws.catalog, ref)
    (facts,) = gather(ws, [rec.id]) or [None]
    if facts is None:
        raise ArchiverError(_("recording #{id} was purged: only its tombstone is kept").format(id=rec.id))
    set_class(ws, rec, retention_class, reason, linked=bool(facts.cases), held=facts.held)
    click.echo(_("recording #{id}: class {name}").format(id=rec.id, name=retention_class))
