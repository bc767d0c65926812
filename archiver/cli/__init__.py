"""The command line: a thin click layer over the library. Commands parse, call, format."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import click
from sqlalchemy.exc import OperationalError

from archiver import __version__
from archiver.archive.workspace import Workspace, open_workspace
from archiver.catalog.db import catalog_error
from archiver.cli.localized import Group, localize_click
from archiver.config import Config, load_config
from archiver.errors import ArchiverError, InternalError, RefusedError
from archiver.fs import UMASK
from archiver.i18n import _, current, ngettext, speaking
from archiver.service.access import Person
from archiver.service.transfer import Files, LocalFiles


@dataclass
class App:
    """What every command receives: the global options, and the config loaded on first use.

    Run for the station service, it also carries the person served (`person`, whose custody actor the
    workspace already names), and `files`: how the command reaches the paths that person named, which
    the service opens and writes only through the caller's own client. Run directly, `person` is None
    (whoever can open the data dir holds every right) and paths are opened here.
    """

    config_file: Path | None
    data_dir: Path | None
    verbose: bool
    _config: Config | None = field(default=None, repr=False)
    _ws: Workspace | None = field(default=None, repr=False)
    person: Person | None = None
    command: str | None = None  # as the permission matrix names it, when served
    files: Files = field(default_factory=LocalFiles)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_file, self.data_dir)
        return self._config

    def workspace(self, *, upgrade: bool = False) -> Workspace:
        if self._ws is None:
            self._ws = open_workspace(self.config, upgrade=upgrade)
            click.get_current_context().call_on_close(self._ws.close)
        return self._ws

    def record(self, action: str, subject: dict, details: dict | None = None) -> None:
        """A custody event for what this command did or looked at (retrieval is logged too)."""
        self.workspace().custody.append(action, subject, details)

    def own_officer(self, command: str) -> str | None:
        """The officer number a served officer's `command` is narrowed to; None when not narrowed."""
        if self.person is None or not self.person.only_own(command):
            return None
        if not self.person.officer_no:
            raise RefusedError(_("{user} is an officer with no officer number: an administrator adds '{user} = "
                                 "\"JX…\"' under [access.officers]").format(
                                 user=self.person.user))
        return self.person.officer_no


class _Group(Group):
    """Loads subcommands lazily; turns an ArchiverError into one line `Error: ...` and its exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _COMMANDS and name not in self.commands:
            module, attr = _COMMANDS[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context):
        with speaking(current()):  # a --json command switches to English until it ends
            return self._invoke(ctx)

    def _invoke(self, ctx: click.Context):
        try:
            try:
                return super().invoke(ctx)
            except OperationalError as exc:  # the catalog locked or full outside a commit
                raise catalog_error(exc) from exc
            except (ArchiverError, click.ClickException, click.exceptions.Exit, click.Abort):
                raise
            except BrokenPipeError:  # `archiver ... | head`: the reader has what it wanted
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                ctx.exit(EXIT_PIPE)
            except Exception as exc:  # the crash boundary: a bug, never exit 1 ("found problems")
                raise crash(exc) from exc
        except ArchiverError as exc:
            app = ctx.obj
            if isinstance(app, App) and app.verbose:
                traceback.print_exc()
            if isinstance(exc, RefusedError) and isinstance(app, App):
                app.record("denied", {"command": app.command}, {"reason": str(exc)})
            click.echo(_("Error: {message}").format(message=exc), err=True)
            ctx.exit(exc.exit_code)


localize_click()
EXIT_PIPE = 141  # what a shell reports for a program that SIGPIPE ended


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False), envvar="ARCHIVER_CONFIG",
              help="Config file (TOML), read over /etc/archiver/archiver.toml. Env: ARCHIVER_CONFIG.")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="ARCHIVER_DATA_DIR",
              help="Folder for the archive and catalog; overrides data_dir. Env: ARCHIVER_DATA_DIR.")
@click.option("-v", "--verbose", is_flag=True, help="Log progress lines and show tracebacks on errors.")
@click.version_option(__version__, prog_name="archiver")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None, data_dir: Path | None, verbose: bool) -> None:
    """Evidence archiver for body-camera recorders: verified ingest, catalog and lookup.

    Exit codes: 0 success; 1 the command ran but found problems (files that failed);
    2 bad usage or input (missing folder, bad config, unknown reference, unsafe permissions);
    3 the archive could not be written (disk full, I/O error, a planted symlink), or the station
    service could not be reached; 4 refused: your role does not allow it (see 'archiver access');
    70 an internal error (a bug: the traceback is saved to a file named in the message).
    """
    os.umask(UMASK)  # whatever the caller's umask, nothing the archiver writes is for strangers
    if isinstance(ctx.obj, App):  # served: the station service made it
        ctx.obj.verbose = verbose
        return
    ctx.obj = App(config_file, data_dir, verbose)
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                            level=logging.INFO if verbose else logging.CRITICAL)


def crash(exc: Exception) -> InternalError:
    """One line for the user; the traceback to the log (the journal under systemd) and to a private file."""
    text = "".join(traceback.format_exception(exc))
    logging.getLogger("archiver").error("internal error: %s", text)
    where = "the log"
    try:
        fd, name = tempfile.mkstemp(prefix="archiver-crash-", suffix=".txt")  # 0600
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        where = name
    except OSError:
        pass
    summary = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    return InternalError(_("internal error ({summary}): this is a bug; the traceback is in {where}; run again "
                           "with -v to see it, and report it").format(
                           summary=summary, where=where))


@main.command()
@click.pass_obj
def init(app: App) -> None:
    """Create the data dir and catalog, or upgrade the catalog's schema. On a data dir made by an
    older version, also take every permission away from others and give it to the reader group."""
    from archiver.archive.datadir import tighten_data_dir
    from archiver.fs import reader_gid

    ws = app.workspace(upgrade=True)
    tightened = tighten_data_dir(app.config.data_dir, reader_gid(app.config.access.reader_group))
    if tightened:
        app.record("tighten_permissions", {"data_dir": str(app.config.data_dir)}, {"entries": tightened})
        click.echo(ngettext("made {count} entry of the data dir private (nothing for others; the reader group "
                            "{group!r} may read)",
                            "made {count} entries of the data dir private (nothing for others; the reader group "
                            "{group!r} may read)", tightened).format(count=tightened,
                                                                     group=app.config.access.reader_group))
    before, after = ws.schema_before, ws.catalog.revision()
    if before is None:
        state = _("catalog created at schema {schema}").format(schema=after)
    elif before == after:
        state = _("catalog up to date (schema {schema})").format(schema=after)
    else:
        state = _("catalog upgraded from schema {before} to {after}").format(before=before, after=after)
    click.echo(_("Data dir {data_dir}: {state}; archive in {root}.").format(
                 data_dir=app.config.data_dir, state=state, root=ws.archive.root))


# Subcommands are imported when used, so `archiver cases show` does not pay for ffmpeg, rich
# progress, bagit, watchdog and age (start-up time is measured by scripts/bench).
_COMMANDS = {
    "access": "archiver.cli.access:access",
    "backup": "archiver.cli.backup:backup",
    "cases": "archiver.cli.cases:cases",
    "custody": "archiver.cli.audit:custody",
    "daemon": "archiver.cli.daemon:daemon",
    "devices": "archiver.cli.devices:devices",
    "export": "archiver.cli.audit:export",
    "hold": "archiver.cli.retention:hold",
    "ingest": "archiver.cli.ingest:ingest",
    "keys": "archiver.cli.audit:keys",
    "rebuild-catalog": "archiver.cli.audit:rebuild_catalog_cmd",
    "recordings": "archiver.cli.recordings:recordings",
    "report": "archiver.cli.report:report",
    "retention": "archiver.cli.retention:retention",
    "stations": "archiver.cli.central:stations",
    "status": "archiver.cli.audit:status",
    "sync": "archiver.cli.central:sync",
    "verify": "archiver.cli.audit:verify",
    "verify-export": "archiver.cli.audit:verify_export_cmd",
}
