"""`archiver ingest PATH`."""

from __future__ import annotations

from pathlib import Path

import click

from archiver.cli import App
from archiver.cli.files import hand_in, hand_in_tree
from archiver.cli.localized import Command
from archiver.cli.output import TerminalProgress, echo_json, human_bytes, json_option
from archiver.errors import ArchiverError
from archiver.i18n import _


@click.command(cls=Command)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--device", metavar="SERIAL", help="Device serial for files whose names do not carry one.")
@click.option("--officer", metavar="NO", help="Officer number for files whose names do not carry one.")
@json_option("Print the result as one JSON document.")
@click.pass_obj
def ingest(app: App, path: Path, device: str | None, officer: str | None, as_json: bool) -> None:
    """Copy every recording under PATH into the archive, verified, and catalog it.

    PATH is a mounted recorder or a folder of dropped files; nothing under it is ever written,
    renamed or deleted. Files already archived are not copied again. Exit 0 when every
    recording is archived, 1 when some failed (each is named with the reason).
    """
    source = str(path.absolute())
    if app.served:  # the files are opened here, as the person; the service reads only those descriptors
        done, _files = app.call("ingest", {"source": source, "device": device, "officer": officer},
                                files=lambda: hand_in_tree(path) if path.is_dir() else hand_in(path))
    else:
        progress = TerminalProgress() if TerminalProgress.wanted() else None
        done, _files = app.call("ingest", {"source": source, "path": str(path), "device": device,
                                           "officer": officer}, progress=progress)
    report = done["report"]
    if as_json:
        echo_json(report)
    else:
        _print_summary(report)
    if report["error"]:
        error = ArchiverError(report["error"])
        error.exit_code = done["exit_code"]
        raise error
    click.get_current_context().exit(done["exit_code"])


def _print_summary(report: dict) -> None:
    rate = report["bytes_copied"] / report["seconds"] if report["seconds"] > 0 else 0
    click.echo(
        _("{source}: {ingested} archived, {already_archived} already archived, {flagged} flagged, {count} "
          "failed; {bytes_copied} in {seconds:.1f} s ({rate}/s)").format(
          source=report["source"], ingested=report["ingested"], already_archived=report["already_archived"],
          flagged=report["flagged"], count=len(report["failed"]), bytes_copied=human_bytes(report["bytes_copied"]),
          seconds=report["seconds"], rate=human_bytes(rate))
    )
    if report["not_recordings"]:
        click.echo(_("Not recordings (listed, not archived): {count}").format(count=len(report["not_recordings"])))
        for item in report["not_recordings"]:
            click.echo(f"  {item['path']!r}: {item['reason']}")
    for failure in report["failed"]:
        click.echo(_("FAILED {path!r}: {error}").format(path=failure['path'], error=failure['error']), err=True)
    if report["pending"]:
        click.echo(_("PENDING ({ended}): {count} file(s) not attempted; run the ingest again").format(
                     ended=report["ended"], count=len(report["pending"])),
                   err=True)
