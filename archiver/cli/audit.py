"""Auditing: `keys show`, `verify`, `status`, `custody show`, `export`, `verify-export`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click
from rich.table import Table
from sqlalchemy import func, select

from archiver.audit.export import export_case, verify_export
from archiver.audit.rebuild import rebuild_catalog
from archiver.audit.verify import verify as run_verify
from archiver.catalog import Case, Device, IngestRun, Recording, VerifyRun
from archiver.catalog.lookup import parse_time
from archiver.cli import App
from archiver.cli.output import TerminalProgress, console, echo_json, human_bytes
from archiver.errors import ArchiverError
from archiver.ledger.anchor import parse_head
from archiver.ledger.custody import actor_name, catalog_head, log_head, trail
from archiver.ledger.keys import PublicKey, key_paths, load_public_key


@click.group()
def keys() -> None:
    """The station's signing key."""


@keys.command("show")
@click.pass_obj
def keys_show(app: App) -> None:
    """Print the station's public key (what auditors check custody logs and exports against)."""
    key = load_public_key(app.config.data_dir)
    click.echo(key.text)
    click.echo(f"fingerprint {key.fingerprint}; file {key_paths(app.config.data_dir)[1]}", err=True)


@click.command()
@click.option("--case", "case_no", metavar="CASE_NO", help="Only the recordings of this case.")
@click.option("--since", metavar="TIME", help="Only recordings ingested at or after TIME (ISO 8601).")
@click.option("--max-minutes", type=click.FloatRange(min=0), metavar="N",
              help="Stop hashing after N minutes; the least recently verified files go first.")
@click.option("--head", "heads", multiple=True, metavar="SEQ:HASH",
              help="A custody-log head written down earlier (as `archiver status` shows it): the log must still "
                   "hold that line. Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@click.pass_obj
def verify(app: App, case_no: str | None, since: str | None, max_minutes: float | None, heads: tuple[str, ...],
           as_json: bool) -> None:
    """Re-hash archived files (two workers) and compare them with the catalog and the manifests; find
    missing and unexpected files; check the custody log's chain and signatures, its tail against the
    catalog's head, the signed heads on the backup targets and every --head; check that every
    recording has its ingest event and (without --case/--since) every ingest event its recording.
    Every problem is listed. Exit 1 on any."""
    if case_no and since:
        raise ArchiverError("give --case or --since, not both")
    ws = app.workspace()
    progress = TerminalProgress() if TerminalProgress.wanted() else None
    anchors = [parse_head(text) for text in heads]
    report = run_verify(ws, case_no, parse_time(since, app.config.timezone) if since else None, max_minutes,
                        progress, anchors)
    if as_json:
        echo_json(report.to_json())
    else:
        rate = report.bytes / report.seconds if report.seconds else 0
        click.echo(f"checked {report.checked} file(s), {report.ok} intact, {human_bytes(report.bytes)} in "
                   f"{report.seconds:.1f} s ({human_bytes(rate)}/s); {report.remaining} left for a later run; "
                   f"custody log: {report.custody_events} event(s), checked against {len(report.anchors)} "
                   f"head(s); {len(report.problems)} problem(s)")
        for p in report.problems:
            click.echo(f"PROBLEM {p['kind']} {p['path']}: {p['detail']}")
    click.get_current_context().exit(1 if report.problems else 0)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
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
    }
    if as_json:
        echo_json(data)
        return
    click.echo(f"data dir      {data['data_dir']}")
    click.echo(f"recordings    {count} ({human_bytes(int(size))}); cases {cases}; devices {devices}")
    last = data["last_ingest"]
    click.echo("last ingest   " + ("-" if last is None else
                                   f"{last['finished_at']} {last['status']} ({last['ingested']} new, "
                                   f"{last['failed']} failed) from {last['source']}"))
    last = data["last_verify"]
    click.echo("last verify   " + ("-" if last is None else
                                   f"{last['finished_at']} {last['result']}: {last['checked']} checked, "
                                   f"{last['problems']} problem(s), {last['remaining']} left ({last['scope']})"))
    click.echo("custody head  " + ("-" if head is None else f"{head.seq}:{head.hash} (write it down: 'archiver "
                                                           "verify --head' proves later that no line was cut)"))


@click.group()
def custody() -> None:
    """The custody log: who did what, when, to which recording or case."""


@custody.command("show")
@click.option("--user", metavar="USER", help="Only the events of this person (their user name).")
@click.option("--since", metavar="TIME", help="Only events at or after TIME (ISO 8601).")
@click.option("--action", metavar="ACTION", help="Only this action (ingest, lookup, retrieve, export, denied, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of the events, as signed.")
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
    table = Table("Seq", "Time", "User", "Role", "Action", "Subject", "Details")
    for event in rows:
        actor = event.get("actor")
        role = actor.get("role") if isinstance(actor, dict) else None
        table.add_row(str(event.get("seq")), datetime.fromisoformat(event["time"]).astimezone(tz)
                      .strftime("%Y-%m-%d %H:%M:%S"), actor_name(event), role or "-", str(event.get("action")),
                      _brief(event.get("subject")), _brief(event.get("details")))
    console().print(table)
    click.echo(f"{len(rows)} event(s)")


def _brief(value: object, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":")) if value else "-"
    return text if len(text) <= limit else text[:limit - 1] + "…"


@click.command()
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
    click.echo(f"{case_no}: {result.files} recording(s), {human_bytes(result.bytes)}, {result.events} custody "
               f"event(s) exported to {dest}")


@click.command("verify-export")
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
        raise ArchiverError(f"{dest} is not a folder: give the folder of an export")
    result = verify_export(source, key)
    for problem in result.problems:
        click.echo(f"PROBLEM {problem}")
    verdict = f"valid, signed by {key.fingerprint}" if not result.problems else f"{len(result.problems)} problem(s)"
    click.echo(f"{dest}: case {result.case_no}, {result.files} file(s): {verdict}")
    click.get_current_context().exit(1 if result.problems else 0)


@click.command("rebuild-catalog")
@click.pass_obj
def rebuild_catalog_cmd(app: App) -> None:
    """Rebuild a lost catalog from the archive, the day manifests and the custody log (its ingest
    events); every file is hashed again first. Cases must be imported again afterwards. Exit 1 if
    some recordings could not be restored (each named)."""
    report = rebuild_catalog(app.config)
    if report.problems and not report.recordings:
        for problem in report.problems:
            click.echo(f"PROBLEM {problem}")
        raise ArchiverError("the custody log or the archive does not check out: nothing rebuilt (see above)")
    app.record("rebuild_catalog", {"data_dir": str(app.config.data_dir)},
               {"recordings": report.recordings, "problems": report.problems})
    for problem in report.problems:
        click.echo(f"PROBLEM {problem}")
    click.echo(f"catalog rebuilt with {report.recordings} recording(s); import the case files again, then run "
               "'archiver verify'")
    click.get_current_context().exit(1 if report.problems else 0)
