"""`archiver cases ...`: import, list, show, search, link, unlink, remove, check, report."""

from __future__ import annotations

from pathlib import Path

import click

from archiver.cli import App
from archiver.cli.files import hand_in
from archiver.cli.localized import Group
from archiver.cli.output import Column, echo_json, echo_wrapped, json_option, local_time, print_table
from archiver.errors import ArchiverError
from archiver.fs import write_atomic
from archiver.i18n import _


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
    done, _files = app.call("cases import", {"file": str(file.absolute()), "encoding": encoding, "dry_run": dry_run},
                            files=lambda: hand_in(file))
    for note in done["notes"]:
        click.echo(f"{file}: {note}", err=True)
    if dry_run:
        _show_records(file, done["cases"], as_json)
        return
    result = done["result"]
    if as_json:
        echo_json(result)
        return
    click.echo(_("{file}: {cases_created} case(s) created, {cases_updated} updated, {cases_unchanged} as they were; "
                 "actions {actions_added} added, {actions_updated} updated, {actions_removed} removed; {links} "
                 "automatic link(s)").format(file=file, **result))


def _show_records(file: Path, rows: list, as_json: bool) -> None:
    """What `cases import --check` would import: cases, their actions, the officers of each."""
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


def _case_rows(rows: list[dict], as_json: bool) -> None:
    if as_json:
        echo_json(rows)
        return
    print_table([Column(_("Case")), Column(_("Title"), wrap=True), Column(_("Party"), wrap=True, optional=True),
                 Column(_("Actions")), Column(_("From")), Column(_("To"))],
                [[r["case_no"], r["title"], r["party"] or "-", str(r["actions"]), local_time(r["start"], minutes=True),
                  local_time(r["end"], minutes=True)] for r in rows])
    click.echo(_("{count} case(s)").format(count=len(rows)))


@cases.command("list")
@json_option("Print a JSON array.")
@click.pass_obj
def list_(app: App, as_json: bool) -> None:
    """List every case with its number of actions and time range."""
    rows, _files = app.call("cases list")
    _case_rows(rows, as_json)


@cases.command()
@click.argument("text")
@json_option("Print a JSON array.")
@click.pass_obj
def search(app: App, text: str, as_json: bool) -> None:
    """Cases whose number, title or party (当事人) contains TEXT, or with an officer whose number or name
    contains it; brackets, full-width forms, letter case and spaces do not matter."""
    rows, _files = app.call("cases search", {"text": text})
    _case_rows(rows, as_json)


@cases.command()
@click.argument("case_no")
@json_option("Print one JSON object.")
@click.pass_obj
def show(app: App, case_no: str, as_json: bool) -> None:
    """A case: its actions, their coverage and gaps, and the linked recordings with hashes."""
    data, _files = app.call("cases show", {"case_no": case_no})
    if as_json:
        echo_json(data)
        return
    echo_wrapped(f"{data['case_no']}  {data['title']}")
    facts = [(_("Party"), data["party"]), (_("Case type"), data["kind"]), (_("Closed"), (data["closed_at"] or "")[:10])]
    if any(value for _label, value in facts):
        echo_wrapped(_("; ").join(_("{label}: {value}").format(label=label, value=value)
                                  for label, value in facts if value))
    click.echo(_("compliant") if data["compliant"] else _("NOT compliant"))
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
    done, _files = app.call("cases remove", {"case_no": case_no, "reason": reason})
    click.echo(_("{number}: removed with its {actions} action(s); {count} recording(s) stay archived, no longer "
                 "linked to it").format(number=done["case_no"], actions=done["actions"],
                                        count=len(done["recordings"])))


@cases.command()
@click.argument("case_no")
@click.argument("refs", nargs=-1, required=True)
@click.pass_obj
def link(app: App, case_no: str, refs: tuple[str, ...]) -> None:
    """Link recordings (ids or sha256 prefixes) to a case by hand; re-linking never undoes it."""
    _manual(app, "cases link", case_no, refs)


@cases.command()
@click.argument("case_no")
@click.argument("refs", nargs=-1, required=True)
@click.pass_obj
def unlink(app: App, case_no: str, refs: tuple[str, ...]) -> None:
    """Exclude recordings from a case by hand, even where officer and time would link them."""
    _manual(app, "cases unlink", case_no, refs)


def _manual(app: App, command: str, case_no: str, refs: tuple[str, ...]) -> None:
    done, _files = app.call(command, {"case_no": case_no, "refs": list(refs)})
    said = _("{case_no}: linked {items}") if done["kind"] == "linked" else _("{case_no}: unlinked {items}")
    click.echo(said.format(case_no=done["case_no"], items=", ".join(f"#{i}" for i in done["recordings"])))
    for note in done["notes"]:
        click.echo(note, err=True)


@cases.command()
@click.argument("case_nos", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Check every case.")
@json_option("Print a JSON array, one entry per case.")
@click.pass_obj
def check(app: App, case_nos: tuple[str, ...], all_: bool, as_json: bool) -> None:
    """Full-process recording check: for each action the covered seconds, the coverage and every gap
    longer than linking.max_gap_s. Exit 1 when any checked case is not compliant."""
    results, _files = app.call("cases check", {"case_nos": list(case_nos), "all_cases": all_})
    failing = sum(not item["compliant"] for item in results)
    if as_json:
        echo_json(results)
    else:
        for item in results:
            actions = item["actions"]
            gaps = sum(len(a["gaps"]) for a in actions if a["required"])
            click.echo(_("ok   {case_no}: {actions} action(s)").format(case_no=item["case_no"],
                                                                      actions=len(actions)) if item["compliant"]
                       else _("FAIL {case_no}: {actions} action(s), {gaps} gap(s)").format(
                           case_no=item["case_no"], actions=len(actions), gaps=gaps))
            if not all_:
                for entry in actions:
                    _echo_action(entry, "  ")
            for warning in item["warnings"]:
                echo_wrapped(_("warning: {note}").format(note=warning), "  ")
        if all_:
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
    done, _files = app.call("cases report", {"case_no": case_no, "file": str(html_file.absolute())})
    try:
        write_atomic(html_file.absolute(), done["html"].encode(), mode=0o644)
    except ArchiverError as exc:
        raise ArchiverError(_("cannot write the report to {html_file}: {exc}").format(
                              html_file=html_file, exc=exc)) from exc
    click.echo(_("{case_no}: report written to {html_file} ({verdict})").format(
        case_no=done["case_no"], html_file=html_file,
        verdict=_("compliant") if done["compliant"] else _("NOT compliant")))
