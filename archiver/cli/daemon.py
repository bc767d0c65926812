"""`archiver daemon`."""

from __future__ import annotations

import logging
import sys

import click

from archiver.cli import App, log_to_stderr
from archiver.cli.localized import Command
from archiver.cli.output import human_bytes
from archiver.i18n import _


@click.command(cls=Command)
@click.option("--once", is_flag=True, help="Ingest what is there now (inboxes, mounted recorders) and exit.")
@click.option("--web", is_flag=True, help="Also start the web view, as a child process (as web.with_daemon).")
@click.pass_obj
def daemon(app: App, once: bool, web: bool) -> None:
    """Ingest recorders as they are mounted below dock.mount_roots, and files dropped into dock.inboxes.

    Runs until SIGTERM or Ctrl-C, which stop it within seconds (the file in hand is discarded,
    to be copied again next time); exit 0. Logs one line per docked recorder, finished ingest and
    failure on stderr. Under systemd (Type=notify) it reports READY, STATUS and WATCHDOG.
    It also serves the station's people on the service.socket Unix socket: their 'archiver' commands
    run here, as far as their roles allow (see 'archiver access show').
    With --web (or web.with_daemon) it starts 'archiver web' as its child, at the web view's lower priority.
    With --once, exit 1 if any file failed.
    """
    if app.served:  # someone else's station: the daemon there already serves it
        app.call("daemon")
    from archiver.dock.daemon import Daemon, run_once, sources  # not at import: `archiver --help` lists this command
    from archiver.service.server import StationService

    log_to_stderr(app.verbose)
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines at every start say nothing to people
    ws = app.workspace(upgrade=True)
    cfg = app.config
    click.echo(_("archiver daemon: data dir {data_dir}").format(data_dir=cfg.data_dir), err=True)
    for inbox in cfg.dock.inboxes:
        click.echo(_("  drop recordings into: {inbox}").format(inbox=inbox), err=True)
    for root in cfg.dock.mount_roots:
        click.echo(_("  or mount a recorder below: {root}").format(root=root), err=True)
    if not once:
        service = StationService(ws)
        service.start()
        click.echo(_("  people run 'archiver' commands through: {socket}").format(socket=cfg.service.socket), err=True)
        child = None
        if web or cfg.web.with_daemon:  # the same archiver, config and data dir
            config = ["--config", str(app.config_file.resolve())] if app.config_file else []
            child = [sys.executable, "-m", "archiver", *config, "--data-dir", str(cfg.data_dir), "web"]
            click.echo(_("  and browse the archive at: {scheme}://{listen}/").format(
                scheme="https" if cfg.web.tls_cert else "http", listen=cfg.web.listen), err=True)
        try:
            code = Daemon(ws, web=child).run()
        finally:
            service.stop()
        click.get_current_context().exit(code)
    failed = 0
    for report in run_once(ws):
        failed += len(report.failed) + len(report.pending)
        click.echo(_("{source}: {ingested} archived, {already_archived} already archived, {count} failed, "
                     "{bytes_copied} copied").format(
                     source=report.source, ingested=report.ingested, already_archived=report.already_archived,
                     count=len(report.failed), bytes_copied=human_bytes(report.bytes_copied)), err=True)
    if not sources(ws):
        click.echo(_("no inbox configured and no recorder mounted: nothing to do"), err=True)
    click.get_current_context().exit(1 if failed else 0)
