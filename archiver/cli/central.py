"""`archiver sync` (a station ships its custody log to the centre) and `archiver stations add|list|check`
(run with the centre's config)."""

from __future__ import annotations

import click

from archiver.cli import App
from archiver.cli.localized import Command, Group
from archiver.cli.output import Column, echo_json, json_option, local_time, print_table
from archiver.i18n import _


@click.command(cls=Command)
@json_option("Print the result as one JSON document.")
@click.pass_obj
def sync(app: App, as_json: bool) -> None:
    """Ship the custody events the central catalog does not hold yet ([central] url), with the catalog facts
    they state; the centre checks each against this station's registered key and chain. Safe to run at any
    time and to interrupt: the next run goes on from what the centre holds. Exit 1 if the centre refused an
    event, 3 if it cannot be reached."""
    data, _files = app.call("sync")
    if as_json:
        echo_json(data)
    else:
        click.echo(_("station {station}: {applied} event(s) shipped, {duplicates} the centre held already; the "
                     "centre holds the log up to {central_seq} of {head}").format(**data))
        for refusal in data["refused"]:
            click.echo(_("REFUSED seq {seq} ({kind}): {detail}").format(**refusal))
    if data["refused"]:
        raise click.exceptions.Exit(1)


@click.group(cls=Group)
def stations() -> None:
    """The county's stations, at the centre (run with the centre's config)."""


@stations.command()
@click.argument("station_id", metavar="ID")
@click.option("--key", "key_text", required=True, metavar="ed25519:...",
              help="The station's public key, as 'archiver keys show' prints it there.")
@click.pass_obj
def add(app: App, station_id: str, key_text: str) -> None:
    """Register a station and the key its custody events must verify with. A station keeps its key:
    registering another key under the same id is refused."""
    row, _files = app.call("stations add", {"station_id": station_id, "key": key_text})
    click.echo(_("station {station} registered (key {key}); it may sync from now on").format(**row))


@stations.command("list")
@json_option("Print a JSON array.")
@click.pass_obj
def list_(app: App, as_json: bool) -> None:
    """Every registered station: its key, the events and recordings the centre holds, the last sync."""
    data, _files = app.call("stations list")
    if as_json:
        echo_json(data)
        return
    print_table([Column(_("Station")), Column(_("Events")), Column(_("Recordings")), Column(_("Last sync")),
                 Column(_("Refused")), Column(_("Key"), shorten=True, optional=True)],
                [[d["station"], str(d["events"]), str(d["recordings"]), local_time(d["synced_at"]),
                  str(d["refusals"]), d["key_fingerprint"]] for d in data])


@stations.command()
@click.argument("station_id", metavar="[ID]", required=False)
@json_option("Print the result as one JSON document.")
@click.pass_obj
def check(app: App, station_id: str | None, as_json: bool) -> None:
    """Check again every event the centre holds of each station (or of ID): numbering, chain, signature
    with the registered key, the head; and list every event the centre refused (forged, gap, fork).
    Exit 1 on any problem."""
    data, _files = app.call("stations check", {"station_id": station_id})
    problems = [p for r in data["stations"] for p in r["problems"]]
    if as_json:
        echo_json(data)
    else:
        for r in data["stations"]:
            click.echo(_("{station}: {events} event(s) checked, {count} problem(s)").format(
                         station=r["station"], events=r["events"], count=len(r["problems"])))
        for p in problems:
            click.echo(_("PROBLEM {station} seq {seq} ({kind}): {detail}").format(**p))
    if problems:
        raise click.exceptions.Exit(1)
