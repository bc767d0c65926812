"""`archiver devices add|list`."""

from __future__ import annotations

import click

from archiver.cli import App
from archiver.cli.localized import Group
from archiver.cli.output import Column, echo_json, human_bytes, json_option, local_time, print_table
from archiver.i18n import _
from archiver.i18n.words import word


@click.group(cls=Group)
def devices() -> None:
    """Recorders the station knows."""


@devices.command()
@click.argument("serial")
@click.option("--label", help="Volume label of the recorder's card.")
@click.option("--uuid", help="Filesystem UUID of the recorder's card.")
@click.option("--officer", metavar="NO", help="Officer the recorder is issued to.")
@click.pass_obj
def add(app: App, serial: str, label: str | None, uuid: str | None, officer: str | None) -> None:
    """Register a recorder so a docked card whose file names carry no serial is recognised
    by its volume label or UUID (see `blkid`)."""
    device, _files = app.call("devices add", {"serial": serial, "label": label, "uuid": uuid, "officer": officer})
    click.echo(_("registered {serial}: label={value} uuid={value2} officer={value3}").format(
                 serial=device["serial"], value=device["label"] or '-', value2=device["uuid"] or '-',
                 value3=device["officer_no"] or '-'))


@devices.command("list")
@json_option("Print a JSON array.")
@click.pass_obj
def list_(app: App, as_json: bool) -> None:
    """Every known recorder: officers, last docked, recordings, bytes, last ingest."""
    rows, _files = app.call("devices list")
    if as_json:
        echo_json(rows)
        return
    print_table([Column(_("Serial")), Column(_("Officers"), wrap=True), Column(_("Label"), wrap=True),
                 Column("UUID", shorten=True), Column(_("Last docked")), Column(_("Recordings")),
                 Column(_("Bytes"), optional=True), Column(_("Last ingest"), wrap=True)],
                [[r["serial"], ",".join(r["officers"]) or "-", r["label"] or "-", r["uuid"] or "-",
                  local_time(r["last_docked"]), str(r["recordings"]), human_bytes(r["bytes"]),
                  _("{status} ({ingested} new, {failed} failed)").format(
                      **{**r["last_ingest"], "status": word(r["last_ingest"]["status"])}) if r["last_ingest"]
                  else "-"] for r in rows])
