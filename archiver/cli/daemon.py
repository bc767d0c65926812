"""`archiver daemon`."""

from __future__ import annotations

import logging

import click

from archiver.cli import App
from archiver.cli.output import human_bytes
from archiver.daemon import run_once, sources


@click.command()
@click.pass_obj
def daemon(app: App) -> None:
    """Ingest every configured inbox (dock.inboxes) and every recorder mounted below dock.mount_roots.

    This version makes one pass and exits; continuous watching of mounts and inboxes is planned.
    Exit 1 if any file failed.
    """
    logging.getLogger().setLevel(logging.INFO)
    ws = app.workspace(upgrade=True)
    cfg = app.config
    click.echo(f"archiver daemon: data dir {cfg.data_dir}; one pass over the sources below, then exit "
               "(continuous watching is not built yet).", err=True)
    for inbox in cfg.dock.inboxes:
        click.echo(f"  drop recordings into: {inbox}", err=True)
    for root in cfg.dock.mount_roots:
        click.echo(f"  or mount a recorder below: {root}", err=True)
    failed = 0
    for report in run_once(ws):
        failed += len(report.failed)
        click.echo(f"{report.source}: {report.ingested} archived, {report.already_archived} already archived, "
                   f"{len(report.failed)} failed, {human_bytes(report.bytes_copied)} copied", err=True)
    if not sources(ws):
        click.echo("no inbox configured and no recorder mounted: nothing to do", err=True)
    click.get_current_context().exit(1 if failed else 0)
