"""The command line: a thin click layer over the library. Commands parse, call, format."""

from __future__ import annotations

import gc
import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from archiver import __version__, i18n
from archiver.cli.localized import Group, localize_click
from archiver.errors import ArchiverError, InternalError
from archiver.fs import UMASK
from archiver.i18n import _, current, ngettext, speaking
from archiver.service import client


class App:
    """What every command receives: the global options, and one door to the operations.

    `call` does an operation for the person: through the station service when this is someone else's
    station (the service learns who they are from the kernel and decides), else right here with every right
    (root, the service user, a data dir of one's own). Either way the command gets the operation's plain
    value back and formats it with the same code.
    """

    def __init__(self, config_file: Path | None, data_dir: Path | None, verbose: bool) -> None:
        self.config_file, self.data_dir, self.verbose = config_file, data_dir, verbose
        self._config: Any = None
        self._ws: Any = None
        self._route: Any = False  # False: not decided yet; None: run here

    @property
    def config(self) -> Any:
        if self._config is None:
            from archiver.config import load_config

            self._config = load_config(self.config_file, self.data_dir)
        return self._config

    def workspace(self, *, upgrade: bool = False) -> Any:
        if self._ws is None:
            from archiver.archive.workspace import open_workspace

            self._ws = open_workspace(self.config, upgrade=upgrade)
            click.get_current_context().call_on_close(self._ws.close)
        return self._ws

    @property
    def served(self) -> bool:
        """Whether this person's operations go through the station service."""
        if self._route is False:
            own = self.data_dir is not None or bool(os.environ.get("ARCHIVER_DATA_DIR"))
            config = str(self.config_file) if self.config_file else os.environ.get("ARCHIVER_CONFIG")
            self._route = client.route_for(client.settings(config), own)
        return self._route is not None

    def call(self, name: str, args: dict[str, Any] | None = None, *, files: client.Files | None = None,
             progress: Any = None) -> tuple[Any, Iterator[client.Received]]:
        """Do operation `name` for the person: (its value, the files it hands back, to be copied in order).
        `files` opens, as the person, the files they hand in ([(name, descriptor)], closed here); through the
        service it is called only once the service has said this person may do the operation."""
        args = {k: v for k, v in (args or {}).items() if v is not None}
        if self.served:
            path, service_uid = self._route
            done = client.call(path, service_uid, name, args, files, current())
            click.get_current_context().call_on_close(done.close)
            return done.value, done.handbacks()
        return self._here(name, args, files, progress)

    def _here(self, name: str, args: dict[str, Any], files: client.Files | None,
              progress: Any) -> tuple[Any, Iterator[client.Received]]:
        from archiver.operations.access import running_actor
        from archiver.operations.core import Context, check_input, run

        log_to_stderr(self.verbose)
        ctx = Context(self.config, running_actor(self.config.access), lambda upgrade: self.workspace(upgrade=upgrade),
                      local=True, progress=progress)
        click.get_current_context().call_on_close(ctx.close)
        handed = files() if files is not None else []
        try:
            ctx.inputs = [check_input(handed_name, fd) for handed_name, fd in handed]
        except ArchiverError:
            for _name, fd in handed:
                os.close(fd)
            raise
        try:
            value = run(ctx, name, args)
        except InternalError as exc:
            raise crash(exc.__cause__ or exc) from exc
        return value, (client.Received(h.name, h.fd, h.sha256, h.size) for h in ctx.handbacks)


def run() -> None:
    """The `archiver` command: the person's language, then the command line."""
    config = os.environ.get("ARCHIVER_CONFIG")
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            config = args[i + 1]
        elif arg.startswith("--config="):
            config = arg.split("=", 1)[1]
        if not arg.startswith("-"):
            break
    found = client.settings(config)
    i18n.install(i18n.choose(os.environ, found.language if found else None))
    try:
        main(prog_name="archiver")
    finally:
        # The interpreter's last collection would walk every object loaded (SQLAlchemy's alone made it a tenth
        # of a second of each command's exit); what the command wrote is synced and closed by now.
        gc.freeze()


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
            except (ArchiverError, click.ClickException, click.exceptions.Exit, click.Abort):
                raise
            except BrokenPipeError:  # `archiver ... | head`: the reader has what it wanted
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                ctx.exit(EXIT_PIPE)
            except Exception as exc:  # the crash boundary: a bug, never exit 1 ("found problems")
                raise crash(exc) from exc
        except ArchiverError as exc:
            app = ctx.obj
            if isinstance(app, App) and app.verbose and not app.served:  # served: the service keeps its own
                import traceback

                traceback.print_exc()
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
    ctx.obj = App(config_file, data_dir, verbose)


def log_to_stderr(verbose: bool) -> None:
    """Log lines on stderr for a command run here: progress with -v, else nothing below critical."""
    import logging

    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                            level=logging.INFO if verbose else logging.CRITICAL)


def crash(exc: Exception) -> InternalError:
    """One line for the user; the traceback to the log (the journal under systemd) and to a private file."""
    import logging
    import tempfile
    import traceback

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
    done, _files = app.call("init")
    if done["tightened"]:
        click.echo(ngettext("made {count} entry of the data dir private (nothing for others; the reader group "
                            "{group!r} may read)",
                            "made {count} entries of the data dir private (nothing for others; the reader group "
                            "{group!r} may read)", done["tightened"]).format(count=done["tightened"],
                                                                             group=done["reader_group"]))
    before, after = done["schema_before"], done["schema"]
    if before is None:
        state = _("catalog created at schema {schema}").format(schema=after)
    elif before == after:
        state = _("catalog up to date (schema {schema})").format(schema=after)
    else:
        state = _("catalog upgraded from schema {before} to {after}").format(before=before, after=after)
    click.echo(_("Data dir {data_dir}: {state}; archive in {root}.").format(
                 data_dir=done["data_dir"], state=state, root=done["archive"]))


# Subcommands are imported when used, so `archiver cases show` does not pay for ffmpeg, rich
# progress, bagit, watchdog and age (start-up time is measured by scripts/bench).
_COMMANDS = {
    "access": "archiver.cli.access:access",
    "backup": "archiver.cli.backup:backup",
    "cases": "archiver.cli.cases:cases",
    "central": "archiver.cli.central:central",
    "custody": "archiver.cli.audit:custody",
    "daemon": "archiver.cli.daemon:daemon",
    "devices": "archiver.cli.devices:devices",
    "export": "archiver.cli.audit:export",
    "hold": "archiver.cli.retention:hold",
    "ingest": "archiver.cli.ingest:ingest",
    "keys": "archiver.cli.audit:keys",
    "people": "archiver.cli.people:people",
    "rebuild-catalog": "archiver.cli.audit:rebuild_catalog_cmd",
    "recordings": "archiver.cli.recordings:recordings",
    "report": "archiver.cli.report:report",
    "retention": "archiver.cli.retention:retention",
    "stations": "archiver.cli.central:stations",
    "status": "archiver.cli.audit:status",
    "sync": "archiver.cli.central:sync",
    "verify": "archiver.cli.audit:verify",
    "verify-export": "archiver.cli.audit:verify_export_cmd",
    "web": "archiver.cli.web:web",
}
