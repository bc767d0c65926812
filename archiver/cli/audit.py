"""Auditing: `keys show`, `verify`, `status`, `custody show`, `export`, `verify-export`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click
from sqlalchemy import func, select

from archiver.audit.export import export_case, verify_export
from archiver.audit.rebuild import rebuild_catalog
from archiver.audit.verify import verify as run_verify
from archiver.catalog import Case, Device, IngestRun, Recording, VerifyRun
from archiver.catalog.lookup import parse_time
from archiver.cli import App
from archiver.cli.localized import Command, Group
from archiver.cli.output import (
    Column,
    TerminalProgress,
    echo_fields,
    echo_json,
    human_bytes,
    json_option,
    local_time,
    print_table,
)
from archiver.errors import ArchiverError
from archiver.i18n import _
from archiver.ledger.anchor import parse_head
from archiver.ledger.custody import actor_name, catalog_head, log_head, trail
from archiver.ledger.keys import PublicKey, key_paths, load_public_key
from archiver.retention.capacity import capacity
from archiver.retention.clock import now


@click.group(cls=Group)
def keys() -> None:
    """The station's signing key."""


@keys.command("show")
@click.pass_obj
def keys_show(app: App) -> None:
    """Print the station's public key (what auditors check custody logs and exports against)."""
    key = load_public_key(app.config.data_dir)
    click.echo(key.text)
    click.echo(_("fingerprint {fingerprint}; file {value}").format(
                 fingerprint=key.fingerprint, value=key_paths(app.config.data_dir)[1]), err=True)


@click.command(cls=Command)
@click.option("--case", "case_no", metavar="CASE_NO", help="Only the recordings of this case.")
@click.option("--since", metavar="TIME", help="Only recordings ingested at or after TIME (ISO 8601).")
@click.option("--max-minutes", type=click.FloatRange(min=0), metavar="N",
              help="Stop hashing after N minutes; the least recently verified files go first.")
@click.option("--head", "heads", multiple=True, metavar="SEQ:HASH",
              help="A custody-log head written down earlier (as `archiver status` shows it): the log must still "
                   "hold that line. Repeatable.")
@click.option("--central", is_flag=True,
              help="At the centre (the centre's config): check every station's events instead, and every "
                   "recording against its station's signed ingest event.")
@json_option("Print the result as one JSON document.")
@click.pass_obj
def verify(app: App, case_no: str | None, since: str | None, max_minutes: float | None, heads: tuple[str, ...],
           central: bool, as_json: bool) -> None:
    """Re-hash archived files (two workers) and compare them with the catalog and the manifests; find
    missing and unexpected files; check the custody log's chain and signatures, its tail against the
    catalog's head, the signed heads on the backup targets and every --head; check that every
    recording has its ingest event and (without --case/--since) every ingest event its recording.
    Every problem is listed. Exit 1 on any."""
    if case_no and since:
        raise ArchiverError(_("give --case or --since, not both"))
    if central:
        _verify_central(app, as_json)
        return
    ws = app.workspace()
    progress = TerminalProgress() if TerminalProgress.wanted() else None
    anchors = [parse_head(text) for text in heads]
    report = run_verify(ws, case_no, parse_time(since, app.config.timezone) if since else None, max_minutes,
                        progress, anchors)
    if as_json:
        echo_json(report.to_json())
    else:
        rate = report.bytes / report.seconds if report.seconds else 0
        click.echo(_("checked {checked} file(s), {ok} intact, {bytes} in {seconds:.1f} s ({rate}/s); {remaining} "
                     "left for a later run; custody log: {custody_events} event(s), checked against {count} "
                     "head(s); {count2} problem(s)").format(
                     checked=report.checked, ok=report.ok, bytes=human_bytes(report.bytes), seconds=report.seconds,
                     rate=human_bytes(rate), remaining=report.remaining, custody_events=report.custody_events,
                     count=len(report.anchors), count2=len(report.problems)))
        for p in report.problems:
            click.echo(_("PROBLEM {kind} {path}: {detail}").format(
                         kind=p['kind'], path=p['path'], detail=p['detail']))
    click.get_current_context().exit(1 if report.problems else 0)


def _verify_central(app: App, as_json: bool) -> None:
    from archiver.central.stations import verify_central

    checks, problems, objects = verify_central(app.workspace())
    app.record("verify", {"scope": "central"}, {"stations": len(checks), "objects": objects,
                                                "problems": len(problems)})
    if as_json:
        echo_json({"stations": [{"station": c.station, "events": c.events} for c in checks], "objects": objects,
                   "problems": problems})
    else:
        click.echo(_("{count} station(s), {events} event(s) checked; {objects} object(s) in S3 stores; {problems} "
                     "problem(s)").format(count=len(checks), events=sum(c.events for c in checks), objects=objects,
                                          problems=len(problems)))
        for p in problems:
            click.echo(_("PROBLEM {station} seq {seq} ({kind}): {detail}").format(
                station=p.get("station") or p.get("path", "-"), seq=p.get("seq") or "-", kind=p["kind"],
                detail=p["detail"]))
    click.get_current_context().exit(1 if problems else 0)


@click.command(cls=Command)
@json_option("Print one JSON object.")
@click.pass_obj
def status(app: App, as_json: bool) -> None:
    """Data dir, counts and bytes, last ingest, last verify and its result, custody log head."""
    ws = app.workspace()
    tz = app.config.timezone
    with ws.catalog.reading() as session:
        count, size = session.execute(select(func.count(), func.coalesce(func.sum(Recording.size), 0))
                                      .select_from(Recording)).one()
        cases = session.scalar(select(func.count()).select_from(Case))
        devices = session.scalar(select(func.count()).select_from(Device))
        ingest = session.scalar(select(IngestRun).order_by(IngestRun.id.desc()).limit(1))
        checked = session.scalar(select(VerifyRun).order_by(VerifyRun.id.desc()).limit(1))
    head = log_head(ws.custody.path)
    recorded = catalog_head(ws.catalog)
    data = {
        "data_dir": str(app.config.data_dir),
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
    if as_json:
        echo_json(data)
        return
    ingest_line = verify_line = head_line = "-"
    if (last := data["last_ingest"]) is not None:
        ingest_line = _("{finished_at} {status} ({ingested} new, {failed} failed) from {source}").format(**last)
    if (last := data["last_verify"]) is not None:
        verify_line = _("{finished_at} {result}: {checked} checked, {problems} problem(s), {remaining} left "
                        "({scope})").format(**last)
    if head is not None:
        head_line = _("{seq}:{hash} (write it down: 'archiver verify --head' proves later that no line was "
                      "cut)").format(seq=head.seq, hash=head.hash)
    room = data["capacity"]
    room_line = _("{free} free; growing {daily} a day over the last 30 days").format(
        free=human_bytes(room["free_bytes"]), daily=human_bytes(room["daily_growth_bytes"]))
    if room["days_until_full"] is not None:
        room_line += _("; full in {days} day(s) at that rate, while retention frees {freed} by then").format(
            days=room["days_until_full"], freed=human_bytes(room["retention_frees_bytes"] or 0))
        if room["low"]:
            room_line += _(" (WARNING: fewer than capacity.warn_days = {warn})").format(warn=room["warn_days"])
    echo_fields([
        (_("data dir"), data["data_dir"]),
        (_("disk"), room_line),
        (_("recordings"), _("{count} ({size}); cases {cases}; devices {devices}").format(
            count=count, size=human_bytes(int(size)), cases=cases, devices=devices)),
        (_("last ingest"), ingest_line),
        (_("last verify"), verify_line),
        (_("custody head"), head_line),
        *([(_("central"), _central_line(data["central"]))] if data["central"] else []),
    ])


def _central_lag(ws, tz) -> dict | None:
    from archiver.central.sync import lag

    behind = lag(ws)
    if behind is None:
        return None

    def when(value):
        return value.astimezone(tz).isoformat() if value else None

    return {"url": behind.url, "station": behind.station, "central_seq": behind.central_seq, "head": behind.head,
            "events_behind": behind.events, "recordings_behind": behind.recordings,
            "oldest_behind": when(behind.oldest), "synced_at": when(behind.synced_at),
            "error": behind.error, "error_at": when(behind.error_at)}


def _central_line(lag: dict) -> str:
    line = _("{station} at {url}: {events_behind} event(s) not yet central ({recordings_behind} recording(s))").format(
        **lag)
    if lag["oldest_behind"]:
        line += _(", the oldest from {time}").format(time=local_time(lag["oldest_behind"]))
    line += _("; last sync {time}").format(time=local_time(lag["synced_at"]))
    if lag["error"]:
        line += _("; the last attempt failed at {time}: {error}").format(time=local_time(lag["error_at"]),
                                                                          error=lag["error"])
    return line


@click.group(cls=Group)
def custody() -> None:
    """The custody log: who did what, when, to which recording or case."""


@custody.command("show")
@click.option("--user", metavar="USER", help="Only the events of this person (their user name).")
@click.option("--since", metavar="TIME", help="Only events at or after TIME (ISO 8601).")
@click.option("--action", metavar="ACTION", help="Only this action (ingest, lookup, retrieve, export, denied, ...).")
@json_option("Print a JSON array of the events, as signed.")
@click.pass_obj
def custody_show(app: App, user: str | None, since: str | None, action: str | None, as_json: bool) -> None:
    """The custody trail as a table, oldest first: sequence number, time, person, role, action, what it was
    done to and the details. Run 'archiver verify' to check the chain and signatures."""
    tz = app.config.timezone
    ws = app.workspace()
    rows = list(trail(ws.custody.path, user, parse_time(since, tz) if since else None, action))
    app.record("lookup", {"custody": "show"}, {"user": user, "since": since, "action": action, "results": len(rows)})
    if as_json:
        echo_json(rows)
        return
    table = []
    for event in rows:
        actor = event.get("actor")
        role = actor.get("role") if isinstance(actor, dict) else None
        table.append([str(event.get("seq")), datetime.fromisoformat(event["time"]).astimezone(tz)
                      .strftime("%Y-%m-%d %H:%M:%S"), actor_name(event), role or "-", str(event.get("action")),
                      _brief(event.get("subject")), _brief(event.get("details"))])
    print_table([Column(_("Seq")), Column(_("Time")), Column(_("User")), Column(_("Role"), optional=True),
                 Column(_("Action")), Column(_("Subject"), wrap=True), Column(_("Details"), wrap=True)], table)
    click.echo(_("{count} event(s)").format(count=len(rows)))


def _brief(value: object, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":")) if value else "-"
    return text if len(text) <= limit else text[:limit - 1] + "…"


@click.command(cls=Command)
@click.argument("case_no")
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@click.pass_obj
def export(app: App, case_no: str, dest: Path) -> None:
    """Export a case's recordings as a BagIt bag in DEST (new or empty), with the custody events of
    those recordings and a detached Ed25519 signature over the tag manifest."""
    ws = app.workspace()
    dest = app.files.absolute(dest)
    with app.files.output_tree(dest) as where:
        result = export_case(ws, case_no, where)
    ws.custody.append("export", {"case_no": case_no}, {"dest": str(dest), "files": result.files,
                                                       "bytes": result.bytes})
    click.echo(_("{case_no}: {files} recording(s), {bytes}, {events} custody event(s) exported to {dest}").format(
                 case_no=case_no, files=result.files, bytes=human_bytes(result.bytes), events=result.events, dest=dest))


@click.command("verify-export", cls=Command)
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@click.option("--key", "key_text", metavar="ed25519:BASE64",
              help="The station's public key (default: this data dir's, as `archiver keys show` prints it).")
@click.pass_obj
def verify_export_cmd(app: App, dest: Path, key_text: str | None) -> None:
    """Check an export: every payload and tag file against its manifest (BagIt), and the signature.
    Exit 1 on any problem."""
    key = PublicKey.parse(key_text) if key_text else load_public_key(app.config.data_dir)
    source = app.files.input_tree(dest)
    if not source.is_dir():
        raise ArchiverError(_("{dest} is not a folder: give the folder of an export").format(dest=dest))
    result = verify_export(source, key)
    for problem in result.problems:
        click.echo(_("PROBLEM {problem}").format(problem=problem))
    verdict = (_("valid, signed by {fingerprint}").format(fingerprint=key.fingerprint) if not result.problems
               else _("{count} problem(s)").format(count=len(result.problems)))
    click.echo(_("{dest}: case {case_no}, {files} file(s): {verdict}").format(
                 dest=dest, case_no=result.case_no, files=result.files, verdict=verdict))
    click.get_current_context().exit(1 if result.problems else 0)


@click.command("rebuild-catalog", cls=Command)
@click.pass_obj
def rebuild_catalog_cmd(app: App) -> None:
    """Rebuild a lost catalog from the archive, the day manifests and the custody log (its ingest
    events); every file is hashed again first. Cases must be imported again afterwards. Exit 1 if
    some recordings could not be restored (each named)."""
    report = rebuild_catalog(app.config)
    if report.problems and not report.recordings:
        for problem in report.problems:
            click.echo(_("PROBLEM {problem}").format(problem=problem))
        raise ArchiverError(_("the custody log or the archive does not check out: nothing rebuilt (see above)"))
    app.record("rebuild_catalog", {"data_dir": str(app.config.data_dir)},
               {"recordings": report.recordings, "problems": report.problems})
    for problem in report.problems:
        click.echo(_("PROBLEM {problem}").format(problem=problem))
    click.echo(_("catalog rebuilt with {recordings} recording(s); import the case files again, then run "
                 "'archiver verify'").format(recordings=report.recordings))
    click.get_current_context().exit(1 if report.problems else 0)
