"""`archiver people import|list`: the personnel register."""

from __future__ import annotations

from pathlib import Path

import click

from archiver.cli import App
from archiver.cli.files import hand_in
from archiver.cli.localized import Group
from archiver.cli.output import Column, echo_json, json_option, print_table
from archiver.i18n import _


@click.group(cls=Group)
def people() -> None:
    """The personnel register: officers' names and numbers, station users and recorders."""


@people.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--encoding", metavar="NAME", help="The CSV's encoding (default: UTF-8, else GB18030, detected).")
@json_option("Print the counts as JSON.")
@click.pass_obj
def import_(app: App, file: Path, encoding: str | None, as_json: bool) -> None:
    """Import the personnel register FILE (.csv or .xlsx): columns 姓名 and 执法证号, and if the office keeps
    them 系统用户 (the station user) and 记录仪编号 (the recorders each carries; several separated by 、 or ;).

    A case register that names officers by name is then read by their 执法证号, the cases already imported
    included; a recorder listed is issued to its officer. Importing again updates; any bad row: exit 2,
    nobody imported.
    """
    done, _files = app.call("people import", {"file": str(file.absolute()), "encoding": encoding},
                            files=lambda: hand_in(file))
    if as_json:
        echo_json(done)
        return
    click.echo(_("{file}: {added} officer(s) added, {updated} updated, {unchanged} as they were; {recorders} "
                 "recorder(s) issued; {renamed} case step(s) now name officers by 执法证号").format(file=file, **done))


@people.command("list")
@json_option("Print a JSON array.")
@click.pass_obj
def list_(app: App, as_json: bool) -> None:
    """The personnel register, with each officer's recordings and case steps."""
    rows, _files = app.call("people list")
    if as_json:
        echo_json(rows)
        return
    print_table([Column(_("执法证号")), Column(_("Name")), Column(_("User")), Column(_("Recorders"), wrap=True),
                 Column(_("Recordings")), Column(_("Case steps"))],
                [[r["officer_no"], r["name"], r["user"] or "-", "、".join(r["serials"]) or "-", str(r["recordings"]),
                  str(r["steps"])] for r in rows])
    click.echo(_("{count} officer(s)").format(count=len(rows)))
