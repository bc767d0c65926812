"""`archiver devices add|list`."""

from __future__ import annotations

import click
from rich.table import Table

from archiver.cli import App
from archiver.cli.output import console, echo_json, human_bytes
from archiver.dock import devices as lib


@click.group()
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
    device = lib.register(app.workspace(upgrade=True).catalog, serial, label, uuid, officer)
    app.record("device_register", {"device": serial}, {"label": label, "uuid": uuid, "officer": officer})
    click.echo(f"registered {device.serial}: label={device.label or '-'} uuid={device.uuid or '-'} "
               f"officer={device.officer_no or '-'}")


@devices.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_obj
def list_(app: App, as_json: bool) -> None:
    """Every known recorder: officers, last docked, recordings, bytes, last ingest."""
    rows = lib.list_devices(app.workspace().catalog, app.config.timezone)
    if as_json:
        echo_json(rows)
        return
    table = Table("Serial", "Officers", "Label", "UUID", "Last docked", "Recordings", "Bytes", "Last ingest")
    for r in rows:
        last = r["last_ingest"]
        table.add_row(r["serial"], ",".join(r["officers"]) or "-", r["label"] or "-", r["uuid"] or "-",
                      (r["last_docked"] or "-")[:19], str(r["recordings"]), human_bytes(r["bytes"]),
                      f"{last['status']} ({last['ingested']} new, {last['failed']} failed)" if last else "-")
    console().print(table)
