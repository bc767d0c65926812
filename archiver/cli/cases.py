"""`archiver cases ...`: import, list, show, search, link, unlink, remove, check, report."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from archiver.cases import links as lib
from archiver.cases.casefile import read_case_file
from archiver.cases.report import render_case
from archiver.cases.thumbnails import strip
from archiver.catalog.lookup import find_recording, recording_json
from archiver.cli import App
from archiver.cli.localized import Group
from archiver.cli.output import Column, echo_json, echo_wrapped, json_option, local_time, print_table
from archiver.errors import ArchiverError, RefusedError
from archiver.fs import write_atomic
from archiver.i18n import _

CASE_FILE_LIMIT = 64 << 20


@click.group(cls=Group)
def cases() -> None:
    """Enforcement cases, the recordings linked to them, and the full-process recording check."""


@cases.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--encoding", metavar="NAME", help="The CSV's encoding (default: UTF-8, else GB18030, detected).")
@click.option("--check", "dry_run", is_flag=True, help="Show what would be imported; import nothing.")
@json_option("Print the counts as JSON.")
@click.pass_obj
def import_(app: App, file: Path, encoding: str | None, dry_run: bool, as_json: bool) -> None:
    """Import cases from FILE (.csv, .xlsx or .json), one row per enforcement action.

    Columns: case_no,title,stage,officers,start,end,recording_required, or 案件编号,案件名称,执法环节,
    执法人员,开始时间,结束时间,是否需要记录 (any order; other columns are left out with a note).
    CSV in UTF-8 (with or without BOM) or GB18030; officers separated by ; ； 、 , ， / or spaces;
    times as ISO 8601 or as Excel writes them (2023/3/5 9:30, 2023年3月5日 9:30). Importing again
    updates, never duplicates. Any bad row: exit 2, nothing imported.
    """
    data = app.files.read_input(file, CASE_FILE_LIMIT)
    records, notes = read_case_file(file.name, data, app.config.timezone, encoding)
    unknown = sorted({r.retention_class for r in records} - set(app.config.retention.classes) - {None})
    if unknown:
        raise ArchiverError(_("{file}: retention class(es) {names} are not in retention.classes ({known}); nothing "
                              "imported").format(file=file, names=", ".join(unknown),
                                                 known=", ".join(sorted(app.config.retention.classes))))
    for note in notes:
        click.echo(f"{file}: {note}", err=True)
    if dry_run:
        _show_records(file, records, app, as_json)
        return
    result = lib.import_cases(app.workspace(upgrade=True).catalog, records, app.config.linking)
    app.record("case_import", {"file": str(app.files.absolute(file))},
               {**result.to_json(), "case_nos": [r.case_no for r in records[:1000]], "cases": len(records)})
    if as_json:
        echo_json(result.to_json())
        return
    click.echo(_("{file}: {cases_created} case(s) created, {cases_updated} updated; actions {actions_added} "
                 "added, {actions_updated} updated, {actions_removed} removed; {links} automatic link(s)").format(
                 file=file, cases_created=result.cases_created, cases_updated=result.cases_updated,
                 actions_added=result.actions_added, actions_updated=result.actions_updated,
                 actions_removed=result.actions_removed, links=result.links))


def _show_records(file: Path, records: list, app: App, as_json: bool) -> None:
    """What `cases import --check` would import: cases, their actions, the officers of each."""
    tz = app.config.timezone
    rows = [{"case_no": r.case_no, "title": r.title, "actions": [
        {"stage": a.stage, "officers": list(a.officers), "start": a.start.astimezone(tz).isoformat(),
         "end": a.end.astimezone(tz).isoformat(), "recording_required": a.recording_required}
        for a in r.actions]} for r in records]
    if as_json:
        echo_json(rows)
        return
    print_table([Column(_("Case")), Column(_("Title"), wrap=True), Column(_("Stage"), wrap=True),
                 Column(_("Officers"), wrap=True), Column(_("Start")), Column(_("End")),
                 Column(_("Recording required"))],
                [[case["case_no"], case["title"], action.get("stage", "-"),
                  "、".join(action.get("officers", [])) or "-",
                  local_time(action.get("start"), minutes=True), local_time(action.get("end"), minutes=True),
                  {True: _("yes"), False: _("no")}.get(action.get("recording_required"), "-")]
                 for case in rows for action in case["actions"] or [{}]])
    click.echo(_("{file}: {count} case(s), {sum} action(s) would be imported; nothing imported (--check)").format(
                 file=file, count=len(rows), sum=sum(len(c['actions']) for c in rows)))


def _case_rows(rows: list[dict], app: App, as_json: bool) -> None:
    tz = app.config.timezone
    if as_json:
        echo_json([{**r, "start": r["start"].astimezone(tz).isoformat() if r["start"] else None,
                    "end": r["end"].astimezone(tz).isoformat() if r["end"] else None} for r in rows])
        return
    print_table([Column(_("Case")), Column(_("Title"), wrap=True), Column(_("Actions")), Column(_("From")),
                 Column(_("To"))],
                [[r["case_no"], r["title"], str(r["actions"]),
                  r["start"].astimezone(tz).strftime("%Y-%m-%d %H:%M") if r["start"] else "-",
                  r["end"].astimezone(tz).strftime("%Y-%m-%d %H:%M") if r["end"] else "-"] for r in rows])
    click.echo(_("{count} case(s)").format(count=len(rows)))


@cases.command("list")
@json_option("Print a JSON array.")
@click.pass_obj
def list_(app: App, as_json: bool) -> None:
    """List every case with its number of actions and time range."""
    rows = lib.list_cases(app.workspace().catalog, officer=app.own_officer("cases list"))
    app.record("lookup", {"cases": "list"}, {"results": len(rows)})
    _case_rows(rows, app, as_json)


@cases.command()
@click.argument("text")
@json_option("Print a JSON array.")
@click.pass_obj
def search(app: App, text: str, as_json: bool) -> None:
    """Cases whose number or title contains TEXT, or with an officer number containing it."""
    rows = lib.list_cases(app.workspace().catalog, text, officer=app.own_officer("cases search"))
    app.record("lookup", {"cases": "search"}, {"text": text, "results": [r["case_no"] for r in rows[:100]]})
    _case_rows(rows, app, as_json)


@cases.command()
@click.argument("case_no")
@json_option("Print one JSON object.")
@click.pass_obj
def show(app: App, case_no: str, as_json: bool) -> None:
    """A case: its actions, their coverage and gaps, and the linked recordings with hashes."""
    tz = app.config.timezone
    case_no = lib.resolve_case_no(app.workspace().catalog, case_no)
    own = app.own_officer("cases show")
    if own is not None and not lib.acts_in(app.workspace().catalog, own, case_no):
        raise RefusedError(_("{user} may look up only the cases they act in (officer {own}): {case_no} is not "
                             "one of them").format(
                             user=app.person.user, own=own, case_no=case_no))
    (check,) = lib.check_cases(app.workspace().catalog, [case_no], app.config.linking, full=True)
    app.record("lookup", {"case_no": case_no}, {"command": "cases show"})
    data = lib.check_json(check, tz)
    data["title"] = check.case.title
    for entry, item in zip(data["actions"], check.actions, strict=True):
        entry["recordings"] = [{**recording_json(r, tz), "link": "manual" if r.id in item.manual else "automatic"}
                               for r in item.recordings]
    data["linked_by_hand"] = [recording_json(r, tz) for r in check.linked_only]
    data["unlinked_by_hand"] = [recording_json(r, tz) for r in check.unlinked]
    if as_json:
        echo_json(data)
        return
    echo_wrapped(f"{check.case.case_no}  {check.case.title}")
    click.echo(_("compliant") if check.compliant else _("NOT compliant"))
    for entry in data["actions"]:
        click.echo("")
        _echo_action(entry)
        print_table([Column(_("ID")), Column(_("Type"), optional=True), Column(_("Officer")), Column(_("Start")),
                     Column(_("End")), Column(_("Link"), optional=True), Column("SHA-256", prefix=True),
                     Column(_("Archive path"), shorten=True)],
                    [[str(r["id"]), _(r["media_type"]), r["officer_no"] or "-", local_time(r["start"]),
                      _until(r["start"], r["end"]), _(r["link"]), r["sha256"], r["archive_path"]]
                     for r in entry["recordings"]])
    for title, key in ((_("Linked by hand, outside every action window"), "linked_by_hand"),
                       (_("Unlinked by hand"), "unlinked_by_hand")):
        if data[key]:
            click.echo("")
            echo_wrapped(f"{title}: " + ", ".join(f"#{r['id']} {r['archive_path']}" for r in data[key]))


def _until(start: str | None, end: str | None) -> str:
    """An end time as a table shows it: the time of day alone when it falls on the start's day."""
    shown = local_time(end)
    return shown[11:] if start and end and start[:10] == end[:10] else shown


def _echo_action(entry: dict, indent: str = "") -> None:
    """An action of a case as `cases show` and `cases check` print it: its coverage, then each gap."""
    required = _("recording required") if entry["required"] else _("recording not required")
    echo_wrapped(_("{stage} {start} – {end} ({required}; officers {officers}): covered {covered_s:.0f} s, "
                 "{coverage:.1%}").format(stage=entry["stage"], start=local_time(entry["start"]),
                                          end=local_time(entry["end"]), required=required,
                                          officers=", ".join(entry["officers"]) or "-",
                                          covered_s=entry["covered_s"], coverage=entry["coverage"]), indent)
    for gap in entry["gaps"]:
        click.echo(indent + _("  gap {start} – {end}").format(start=local_time(gap["start"]),
                                                             end=local_time(gap["end"])))


@cases.command()
@click.argument("case_no")
@click.option("--reason", required=True, help="Why the case is removed: kept in the custody log.")
@click.pass_obj
def remove(app: App, case_no: str, reason: str) -> None:
    """Remove a case imported by mistake: its actions and links go, every recording stays archived.
    The removal, with its reason, is a custody event; importing the case again brings it back."""
    if not reason.strip():
        raise ArchiverError(_("--reason must say why the case is removed"))
    number, actions, recordings = lib.remove_case(app.workspace().catalog, case_no)
    app.record("case_remove", {"case_no": number}, {"reason": reason, "actions": actions, "recordings": recordings})
    click.echo(_("{number}: removed with its {actions} action(s); {count} recording(s) stay archived, no longer "
                 "linked to it").format(number=number, actions=actions, count=len(recordings)))


@cases.command()
@click.argument("case_no")
@click.argument("refs", nargs=-1, required=True)
@click.pass_obj
def link(app: App, case_no: str, refs: tuple[str, ...]) -> None:
    """Link recordings (ids or sha256 prefixes) to a case by hand; re-linking never undoes it."""
    _manual(app, case_no, refs, "linked")


@cases.command()
@click.argument("case_no")
@click.argument("refs", nargs=-1, required=True)
@click.pass_obj
def unlink(app: App, case_no: str, refs: tuple[str, ...]) -> None:
    """Exclude recordings from a case by hand, even where officer and time would link them."""
    _manual(app, case_no, refs, "unlinked")


def _manual(app: App, case_no: str, refs: tuple[str, ...], kind: str) -> None:
    catalog = app.workspace().catalog
    case_no = lib.resolve_case_no(catalog, case_no)
    recs = [find_recording(catalog, ref) for ref in refs]
    ids = [r.id for r in recs]
    lib.set_manual_link(catalog, case_no, ids, kind, app.workspace().custody.actor["user"])
    app.record(kind.removesuffix("ed"), {"case_no": case_no}, {"recordings": ids, "sha256": [r.sha256 for r in recs]})
    click.echo("{case_no}: {kind} {items}".format(
                 case_no=case_no, kind=kind, items=', '.join(f'#{i}' for i in ids)))


@cases.command()
@click.argument("case_nos", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Check every case.")
@json_option("Print a JSON array, one entry per case.")
@click.pass_obj
def check(app: App, case_nos: tuple[str, ...], all_: bool, as_json: bool) -> None:
    """Full-process recording check: for each action the covered seconds, the coverage and every gap
    longer than linking.max_gap_s. Exit 1 when any checked case is not compliant."""
    if bool(case_nos) == all_:
        raise ArchiverError(_("give case numbers or --all (not both)"))
    tz = app.config.timezone
    failing = 0
    results = []
    case_nos = tuple(lib.resolve_case_no(app.workspace().catalog, c) for c in case_nos)
    for item in lib.check_cases(app.workspace().catalog, None if all_ else list(case_nos), app.config.linking):
        failing += not item.compliant
        if as_json:
            results.append(lib.check_json(item, tz))
        else:
            gaps = sum(len(a.coverage.gaps) for a in item.actions if a.action.recording_required)
            click.echo(_("ok   {case_no}: {actions} action(s)").format(case_no=item.case.case_no,
                                                                      actions=len(item.actions)) if item.compliant
                       else _("FAIL {case_no}: {actions} action(s), {gaps} gap(s)").format(
                           case_no=item.case.case_no, actions=len(item.actions), gaps=gaps))
            if not all_:
                for entry in lib.check_json(item, tz)["actions"]:
                    _echo_action(entry, "  ")
    app.record("lookup", {"case_no": None if all_ else list(case_nos)},
               {"command": "cases check", "all": all_, "not_compliant": failing})
    if as_json:
        echo_json(results)
    elif all_:
        click.echo(_("{failing} case(s) not compliant").format(failing=failing))
    click.get_current_context().exit(1 if failing else 0)


@cases.command()
@click.argument("case_no")
@click.option("--html", "html_file", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Where to write the report.")
@click.pass_obj
def report(app: App, case_no: str, html_file: Path) -> None:
    """Write one self-contained HTML page for an auditor: per action a timeline with a bar per
    recording and the gaps in red, and the recordings with their hashes."""
    case_no = lib.resolve_case_no(app.workspace().catalog, case_no)
    (item,) = lib.check_cases(app.workspace().catalog, [case_no], app.config.linking, full=True)
    videos = {r.id: r for a in item.actions for r in a.recordings if r.media_type == "video"}
    videos |= {r.id: r for r in item.linked_only if r.media_type == "video"}
    pictures = {rid: strip(app.config.data_dir, r.archive_path, r.sha256, r.duration_s)
                for rid, r in videos.items() if getattr(r, "purged_at", None) is None}
    page = render_case(item, app.config.timezone, datetime.now(UTC), pictures)
    app.record("lookup", {"case_no": case_no}, {"command": "cases report",
                                                "file": str(app.files.absolute(html_file))})
    try:
        with app.files.output_file(html_file) as where:
            write_atomic(where, page.encode(), mode=0o644)
    except ArchiverError as exc:
        raise ArchiverError(_("cannot write the report to {html_file}: {exc}").format(
                              html_file=html_file, exc=exc)) from exc
    click.echo(_("{case_no}: report written to {html_file} ({verdict})").format(
        case_no=case_no, html_file=html_file, verdict=_("compliant") if item.compliant else _("NOT compliant")))
