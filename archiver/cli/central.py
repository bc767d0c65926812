"""`archiver sync` (a station ships its custody log to the centre) and `archiver stations add|list|check`
(run with the centre's config)."""

from __future__ import annotations

import logging

import click

from archiver.cli import App, log_to_stderr
from archiver.cli.localized import Command, Group
from archiver.cli.output import Column, echo_json, json_option, local_time, print_table
from archiver.i18n import _
from archiver.i18n.words import word


@click.command(cls=Command)
@json_option("Print the result as one JSON document.")
@click.pass_obj
def sync(app: App, as_json: bool) -> None:
    """Hand the custody events the centre does not hold yet into its inbox ([central] url: this station's own
    login, which may do nothing else), and wait up to central.wait_s while the centre's own process checks each
    against this station's registered key and chain and applies it; keep the centre's signed receipt for
    'archiver verify'. Safe to run at any time and to interrupt: the next run goes on from what the centre
    holds. Exit 1 if the centre refused an event, 3 if it cannot be reached."""
    data, _files = app.call("sync")
    if as_json:
        echo_json(data)
    else:
        click.echo(_("station {station}: {handed_in} line(s) handed in, {applied} applied; the centre holds the log "
                     "up to {central_seq} of {head}").format(**data))
        if data["behind"] and not data["refused"]:
            click.echo(_("the centre has not applied {behind} event(s) yet: is 'archiver central' running there?")
                       .format(**data))
        for refusal in data["refused"]:
            click.echo(_("REFUSED seq {seq} ({kind}): {detail}").format(**{**refusal,
                                                                          "kind": word(refusal["kind"])}))
    if data["refused"]:
        raise click.exceptions.Exit(1)


@click.command(cls=Command)
@click.option("--once", is_flag=True, help="Apply what is in the inbox now, then exit.")
@click.pass_obj
def central(app: App, once: bool) -> None:
    """The centre's own process (run with the centre's config, under archiver-central.service): take what the
    stations handed in, check every line against its station's registered key, numbering and chain, apply
    what passes (one transaction per delivery), record every refusal for 'archiver stations check', and sign
    a receipt of each station's head. Runs until SIGTERM or Ctrl-C; exit 0."""
    import signal
    import threading

    from archiver.central.centre import drain, serve

    if app.served:
        app.call("central")
    log_to_stderr(app.verbose)
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    ws = app.workspace(upgrade=True)
    if once:
        results = drain(ws)
        click.echo(_("{count} delivery(ies): {applied} event(s) applied, {refused} refused").format(
            count=len(results), applied=sum(r.applied for r in results),
            refused=sum(len(r.refused) for r in results)))
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_args: stop.set())
    serve(ws, stop, app.config.central.poll_s)


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
    if row["url"]:
        click.echo(_("set in the station's config (its own login, shown this once; keep the file private):"))
        click.echo(f'  [central]\n  url = "{row["url"]}"\n  key = "{row["centre_key"]}"')


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
            click.echo(_("PROBLEM {station} seq {seq} ({kind}): {detail}").format(**{**p, "kind": word(p["kind"])}))
    if problems:
        raise click.exceptions.Exit(1)
