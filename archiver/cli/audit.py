"""Auditing: `keys show`, `verify`, `status`, `custody show`, `export`, `verify-export`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from archiver.cli import App
from archiver.cli.files import hand_in_tree, receive_tree
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
from archiver.i18n.words import word


@click.group(cls=Group)
def keys() -> None:
    """The station's signing key."""


@keys.command("show")
@click.pass_obj
def keys_show(app: App) -> None:
    """Print the station's public key (what auditors check custody logs and exports against)."""
    key, _files = app.call("keys show")
    click.echo(key["key"])
    click.echo(_("fingerprint {fingerprint}; file {value}").format(fingerprint=key["fingerprint"], value=key["file"]),
               err=True)


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
    progress = TerminalProgress() if TerminalProgress.wanted() and not app.served else None
    report, _files = app.call("verify", {"case_no": case_no, "since": since, "max_minutes": max_minutes,
                                         "heads": list(heads) or None, "central": central or None},
                              progress=progress)
    if central:
        _central_result(report, as_json)
    elif as_json:
        echo_json(report)
    else:
        rate = report["bytes"] / report["seconds"] if report["seconds"] else 0
        click.echo(_("checked {checked} file(s), {ok} intact, {bytes} in {seconds:.1f} s ({rate}/s); {remaining} "
                     "left for a later run; custody log: {custody_events} event(s), checked against {count} "
                     "head(s); {count2} problem(s)").format(
                     checked=report["checked"], ok=report["ok"], bytes=human_bytes(report["bytes"]),
                     seconds=report["seconds"], rate=human_bytes(rate), remaining=report["remaining"],
                     custody_events=report["custody_events"], count=len(report["anchors"]),
                     count2=len(report["problems"])))
        for p in report["problems"]:
            click.echo(_("PROBLEM {kind} {path}: {detail}").format(
                         kind=word(p['kind']), path=p['path'], detail=p['detail']))
    click.get_current_context().exit(1 if report["problems"] else 0)


def _central_result(report: dict, as_json: bool) -> None:
    checks, problems, objects = report["stations"], report["problems"], report["objects"]
    if as_json:
        echo_json(report)
    else:
        click.echo(_("{count} station(s), {events} event(s) checked; {objects} object(s) in S3 stores; {problems} "
                     "problem(s)").format(count=len(checks), events=sum(c["events"] for c in checks), objects=objects,
                                          problems=len(problems)))
        for p in problems:
            click.echo(_("PROBLEM {station} seq {seq} ({kind}): {detail}").format(
                station=p.get("station") or p.get("path", "-"), seq=p.get("seq") or "-", kind=word(p["kind"]),
                detail=p["detail"]))


@click.command(cls=Command)
@json_option("Print one JSON object.")
@click.pass_obj
def status(app: App, as_json: bool) -> None:
    """Data dir, counts and bytes, last ingest, last verify and its result, custody log head."""
    data, _files = app.call("status")
    if as_json:
        echo_json(data)
        return
    ingest_line = verify_line = head_line = "-"
    if (last := data["last_ingest"]) is not None:
        ingest_line = _("{finished_at} {status} ({ingested} new, {failed} failed) from {source}").format(
            **{**last, "finished_at": local_time(last["finished_at"]), "status": word(last["status"])})
    if (last := data["last_verify"]) is not None:
        verify_line = _("{finished_at} {result}: {checked} checked, {problems} problem(s), {remaining} left "
                        "({scope})").format(**{**last, "finished_at": local_time(last["finished_at"]),
                                               "result": word(last["result"]), "scope": word(last["scope"])})
    if (head := data["custody_head"]) is not None:
        head_line = _("{seq}:{hash} (write it down: 'archiver verify --head' proves later that no line was "
                      "cut)").format(**head)
    room = data["capacity"]
    room_line = _("{free} free; growing {daily} a day over the last 30 days").format(
        free=human_bytes(room["free_bytes"]), daily=human_bytes(room["daily_growth_bytes"]))
    if room["days_until_full"] is not None:
        room_line += _("; full in {days} day(s) at that rate, while retention frees {freed} by then").format(
            days=room["days_until_full"], freed=human_bytes(room["retention_frees_bytes"] or 0))
        if room["low"]:
            room_line += _(" (WARNING: fewer than capacity.warn_days = {warn})").format(warn=room["warn_days"])
    if not room["reserve"]:
        room_line += _(" (WARNING: the disk filled up and its reserve for lookups is used: free space; the next ingest "
                       "sets a new one aside)")
    echo_fields([
        (_("data dir"), data["data_dir"]),
        (_("disk"), room_line),
        (_("recordings"), _("{count} ({size}); cases {cases}; devices {devices}").format(
            count=data["recordings"], size=human_bytes(data["bytes"]), cases=data["cases"],
            devices=data["devices"])),
        (_("last ingest"), ingest_line),
        (_("last verify"), verify_line),
        (_("custody head"), head_line),
        *([(_("central"), _central_line(data["central"]))] if data["central"] else []),
    ])


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
@click.option("--recording", metavar="REF", help="Only the events about this recording (id or sha256 prefix).")
@json_option("Print a JSON array of the events, as signed.")
@click.pass_obj
def custody_show(app: App, user: str | None, since: str | None, action: str | None, recording: str | None,
                 as_json: bool) -> None:
    """The custody trail as a table, oldest first: sequence number, time, person, role, action, what it was
    done to and the details. Run 'archiver verify' to check the chain and signatures."""
    found, _files = app.call("custody show", {"user": user, "since": since, "action": action,
                                              "recording": recording})
    rows = found["events"]
    if as_json:
        echo_json(rows)
        return
    table = []
    for event, shown in zip(rows, found["shown"], strict=True):
        actor = event.get("actor")
        role = actor.get("role") if isinstance(actor, dict) else None
        table.append([str(event.get("seq")), local_time(shown["time"]), shown["user"], word(role),
                      word(str(event.get("action"))), _brief(event.get("subject")), _brief(event.get("details"))])
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
    where = dest.absolute()
    done, files = app.call("export", {"case_no": case_no, "dest": str(where)})
    if app.served:
        receive_tree(where, files)
    click.echo(_("{case_no}: {files} recording(s), {bytes}, {events} custody event(s) exported to {dest}").format(
                 case_no=done["case_no"], files=done["files"], bytes=human_bytes(done["bytes"]), events=done["events"],
                 dest=where))


@click.command("verify-export", cls=Command)
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@click.option("--key", "key_text", metavar="ed25519:BASE64",
              help="The station's public key (default: this data dir's, as `archiver keys show` prints it).")
@click.pass_obj
def verify_export_cmd(app: App, dest: Path, key_text: str | None) -> None:
    """Check an export: every payload and tag file against its manifest (BagIt), and the signature.
    Exit 1 on any problem."""
    def bag() -> list[tuple[str, int]]:
        if not dest.is_dir():
            raise ArchiverError(_("{dest} is not a folder: give the folder of an export").format(dest=dest))
        return hand_in_tree(dest)

    result, _files = app.call("verify-export", {"key": key_text}, files=bag)
    for problem in result["problems"]:
        click.echo(_("PROBLEM {problem}").format(problem=problem))
    verdict = (_("valid, signed by {fingerprint}").format(fingerprint=result["fingerprint"]) if not result["problems"]
               else _("{count} problem(s)").format(count=len(result["problems"])))
    click.echo(_("{dest}: case {case_no}, {files} file(s): {verdict}").format(
                 dest=dest, case_no=result["case_no"], files=result["files"], verdict=verdict))
    click.get_current_context().exit(1 if result["problems"] else 0)


@click.command("rebuild-catalog", cls=Command)
@click.pass_obj
def rebuild_catalog_cmd(app: App) -> None:
    """Rebuild a lost catalog from the archive, the day manifests and the custody log (its ingest
    events); every file is hashed again first. Cases must be imported again afterwards. Exit 1 if
    some recordings could not be restored (each named)."""
    report, _files = app.call("rebuild-catalog")
    for problem in report["problems"]:
        click.echo(_("PROBLEM {problem}").format(problem=problem))
    click.echo(_("catalog rebuilt with {recordings} recording(s); import the case files again, then run "
                 "'archiver verify'").format(recordings=report["recordings"]))
    click.get_current_context().exit(1 if report["problems"] else 0)
