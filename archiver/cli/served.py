"""Running the command line for the station service: the same click commands, for another person."""

from __future__ import annotations

import click
from click.core import ParameterSource

from archiver.archive.workspace import Workspace
from archiver.cli import App, main
from archiver.service.access import Person
from archiver.service.transfer import Files

_GLOBAL_OPTIONS = {"config_file": "--config", "data_dir": "--data-dir"}


class Runner:
    """What `StationService` calls: which command a command line names, and running it."""

    def command_of(self, argv: list[str]) -> tuple[str | None, list[str]]:
        """The command as the permission matrix names it ("cases show"), or None when the line runs none
        (help, usage, an unknown name: click answers those); and the global options it gives."""
        try:
            ctx = main.make_context("archiver", list(argv), resilient_parsing=True)
        except click.ClickException:
            return None, []
        given = [flag for name, flag in _GLOBAL_OPTIONS.items()
                 if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE]
        command: click.Command = main
        names: list[str] = []
        args = [*ctx._protected_args, *ctx.args]
        while isinstance(command, click.Group):
            if not args:
                return None, given
            try:
                name, sub, args = command.resolve_command(ctx, args)
            except click.ClickException:
                return None, given
            if sub is None or name is None:
                return None, given
            names.append(name)
            command = sub
            if isinstance(sub, click.Group):
                try:
                    ctx = sub.make_context(name, args, parent=ctx, resilient_parsing=True)
                except click.ClickException:
                    return None, given
                args = [*ctx._protected_args, *ctx.args]
        return " ".join(names), given

    def run(self, argv: list[str], ws: Workspace, person: Person, command: str | None, files: Files) -> int:
        app = App(None, None, False, ws.cfg, ws, person=person, command=command, files=files)
        try:
            main.main(args=list(argv), prog_name="archiver", standalone_mode=True, obj=app)
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        return 0
