"""The station itself: making or upgrading the data dir, ingesting a folder, registering recorders (its status
is in `central.operations`, as it shows how far the centre is behind). Docking is the daemon's (it calls
ingest directly); these are what a person asks for."""

from __future__ import annotations

from typing import Any

from archiver.errors import ArchiverError
from archiver.i18n import _
from archiver.operations.access import NOT_SERVED
from archiver.operations.core import Context, input_path, operation


@operation("init")
def init(ctx: Context) -> dict[str, Any]:
    from archiver.archive.datadir import tighten_data_dir
    from archiver.fs.owners import reader_gid

    ws = ctx.workspace(upgrade=True)
    tightened = tighten_data_dir(ctx.cfg.data_dir, reader_gid(ctx.cfg.access.reader_group))
    if tightened:
        ctx.record("tighten_permissions", {"data_dir": str(ctx.cfg.data_dir)}, {"entries": tightened})
    return {"data_dir": str(ctx.cfg.data_dir), "tightened": tightened, "reader_group": ctx.cfg.access.reader_group,
            "schema_before": ws.schema_before, "schema": ws.catalog.revision(), "archive": str(ws.archive.root)}


@operation("daemon")
def daemon(ctx: Context) -> None:
    """Never served: the daemon is the one serving."""
    raise ArchiverError(_(NOT_SERVED["daemon"]))


@operation("web")
def web(ctx: Context) -> None:
    """Never served: the web view is a process of its own."""
    raise ArchiverError(_(NOT_SERVED["web"]))


@operation("ingest")
def ingest(ctx: Context, source: str, path: str | None = None, device: str | None = None,
           officer: str | None = None) -> dict[str, Any]:
    """Archive the files handed in (their names relative to `source`, which only names where they came
    from); or, run in the person's own process, every file under `path`. A source with no file on it at all
    is answered from its scan: there is nothing to record, so the catalog and the custody log are not opened
    (a docked recorder's command starts in a fraction of the time it takes to load them)."""
    from pathlib import Path

    from archiver.ingest.options import IngestOptions, IngestReport
    from archiver.ingest.readahead import ReadAhead
    from archiver.ingest.scan import handed, scan

    local = input_path(ctx, path)
    if local is not None:
        scanned = scan(local, ctx.cfg.system_files)
    else:
        scanned = handed(Path(source), [(item.name, item.fd) for item in ctx.inputs], ctx.cfg.system_files)
    if not (scanned.files or scanned.skipped or scanned.unreadable):
        return {"report": IngestReport(source=scanned.root).to_json(), "exit_code": 0}
    # the card moves while the copy's own modules load: its first files read into the page cache meanwhile
    ahead = ReadAhead(f.path for f in scanned.files if f.fd is None).start()
    try:
        from archiver.archive.datadir import open_archive
        from archiver.ingest.pipeline import start

        archive = open_archive(ctx.cfg)  # the data dir made and checked before anything is written in it
    finally:
        ahead.stop()
    options = IngestOptions(device=device, officer=officer, progress=ctx.progress)
    # the copy starts now; the catalog, the custody log and the rest load meanwhile
    report = start(ctx.cfg, archive, local or Path(source), options, scanned=scanned).finish(lambda: _books(ctx))
    return {"report": report.to_json(), "exit_code": report.exit_code}


def _books(ctx: Context) -> Any:
    """The workspace an ingest catalogues into, once what killed runs left there is swept."""
    from archiver.ingest.record import sweep

    ws = ctx.workspace(upgrade=True)
    sweep(ws)  # temp files of archive writers that were killed, if one left its mark
    return ws


@operation("devices add")
def devices_add(ctx: Context, serial: str, label: str | None = None, uuid: str | None = None,
                officer: str | None = None) -> dict[str, Any]:
    from archiver.ingest.devices import register

    def record(session: Any) -> None:
        ctx.record("device_register", {"device": serial}, {"label": label, "uuid": uuid, "officer": officer},
                   session=session)

    device = register(ctx.workspace(upgrade=True).catalog, serial, label, uuid, officer, record)
    return {"serial": device.serial, "label": device.label, "uuid": device.uuid, "officer_no": device.officer_no}
