"""`archiver recordings list|show|get`."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import click
from rich.table import Table

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
from archiver.cli.output import console, echo_json, human_bytes
from archiver.errors import ArchiverError, RefusedError


@click.group()
def recordings() -> None:
    """Look up archived recordings."""


@recordings.command("list")
@click.option("--device", metavar="SERIAL", help="Only this device.")
@click.option("--officer", metavar="NO", help="Only this officer number.")
@click.option("--since", metavar="TIME", help="Only recordings running at or after TIME (ISO 8601).")
@click.option("--until", metavar="TIME", help="Only recordings starting at or before TIME (ISO 8601).")
@click.option("--case", "case_no", metavar="CASE_NO", help="Only recordings linked to this case.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_obj
def list_(app: App, device, officer, since, until, case_no, as_json: bool) -> None:
    """List recordings, oldest first. Times without an offset are in the configured timezone."""
    tz = app.config.timezone
    catalog = app.workspace().catalog
    own = app.own_officer("recordings list")
    if own is not None and officer not in (None, own):
        raise RefusedError(f"{app.person.user} may look up only their own recordings (officer {own})")
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
    table = Table("ID", "Start", "Device", "Officer", "Type", "Duration", "Size", "SHA-256", "Flags", "Original path")
    for r in rows:
        table.add_row(
            str(r.id), r.start.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if r.start else "-",
            r.device_serial or "-", r.officer_no or "-", r.media_type,
            f"{r.duration_s:.0f} s" if r.duration_s is not None else "-", human_bytes(r.size),
            r.sha256[:12], ",".join(r.flags or []), repr(r.original_path)[1:-1],
        )
    console().print(table)
    click.echo(f"{len(rows)} recording(s)")


@recordings.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def show(app: App, ref: str, as_json: bool) -> None:
    """Show one recording. REF is its id or a sha256 prefix of 8 or more hex digits."""
    catalog = app.workspace().catalog
    rec = find_recording(catalog, ref)
    own = app.own_officer("recordings show")
    if own is not None and rec.officer_no != own:
        raise RefusedError(f"{app.person.user} may look up only their own recordings (officer {own}): {ref} "
                           "is not one of them")
    app.record("lookup", {"sha256": rec.sha256, "device": rec.device_serial}, {"command": "recordings show"})
    data = recording_detail_json(rec, app.config.timezone, cases_for_recordings(catalog, [rec.id]).get(rec.id, []))
    if as_json:
        echo_json(data)
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        if key in ("media", "sightings"):
            continue
        table.add_row(key, "-" if value in (None, []) else repr(value)[1:-1] if isinstance(value, str)
                      else ", ".join(value) if isinstance(value, list) else str(value))
    out = console()
    out.print(table)
    media = data["media"] or {}
    if media:
        out.print(f"media: {media.get('format')}, "
                  + "; ".join(f"{s.get('codec_type')} {s.get('codec_name')}" for s in media.get("streams", [])))
    for s in data["sightings"]:
        out.print(f"seen: {s['seen_at']} {s['source']} / {s['original_path']!r} (run {s['ingest_run']})")


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
        raise ArchiverError("--reason must say why the footage is retrieved")
    if bool(refs) == bool(case_no):
        raise ArchiverError("give recording references or --case (one of them) and DEST")
    ws = app.workspace()
    case_no = resolve_case_no(ws.catalog, case_no) if case_no else None
    ids = recording_ids_for_case(ws.catalog, case_no, app.config.linking) if case_no else None
    recs = [find_recording(ws.catalog, str(i)) for i in ids] if ids is not None else \
        [find_recording(ws.catalog, ref) for ref in refs]
    names = {PurePosixPath(r.archive_path).name for r in recs}
    if len(names) < len({r.id for r in recs}):
        raise ArchiverError("two of these recordings have the same file name: retrieve them into separate folders")
    total = 0
    for rec in recs:
        target = dest / PurePosixPath(rec.archive_path).name
        app.record("retrieve", {"sha256": rec.sha256, "device": rec.device_serial},
                   {"reason": reason, "dest": str(app.files.absolute(target)), "case_no": case_no, "id": rec.id})
        with ws.archive.open(app.config.data_dir / rec.archive_path) as fh:
            app.files.deliver(fh.fileno(), target, rec.sha256, rec.size)
        total += rec.size
        click.echo(f"#{rec.id} {target.name}: {human_bytes(rec.size)}, sha256 {rec.sha256} checked")
    click.echo(f"retrieved {len(recs)} recording(s), {human_bytes(total)}, into {dest}")
