"""Footage leaving the archive, and the archive checked: retrieval, court exports and their check, rebuilding
a lost catalog. What leaves is handed back as open files under names this module chooses; the face copies
them where the person asked, as the person, and checks each against the catalog's hash."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from archiver.cases.links import recording_ids_for_case, resolve_case_no
from archiver.catalog.lookup import find_recording
from archiver.errors import ArchiverError
from archiver.i18n import _
from archiver.operations.core import Context, operation


@operation("recordings get")
def recordings_get(ctx: Context, refs: list[str], reason: str, case_no: str | None = None,
                   dest: str | None = None) -> list[dict[str, Any]]:
    """The recordings, handed back each under its own file name. `dest`: where the person keeps them, for
    the record (each retrieval, with its reason, is a custody event)."""
    if not reason.strip():
        raise ArchiverError(_("--reason must say why the footage is retrieved"))
    if bool(refs) == bool(case_no):
        raise ArchiverError(_("give recording references or --case (one of them) and DEST"))
    ws = ctx.workspace()
    case_no = resolve_case_no(ws.catalog, case_no) if case_no else None
    ids = recording_ids_for_case(ws.catalog, case_no, ctx.cfg.linking) if case_no else None
    recs = [find_recording(ws.catalog, str(i)) for i in ids] if ids is not None else \
        [find_recording(ws.catalog, ref) for ref in refs]
    if ids is not None:
        recs = [r for r in recs if r.purged_at is None]  # a case's purged recordings are tombstones
    for rec in recs:
        if rec.purged_at is not None:
            raise ArchiverError(_("recording #{id} was purged on {date} (purge request {request}): only its "
                                  "tombstone is kept").format(id=rec.id, request=rec.purge_request_id,
                                                              date=rec.purged_at.astimezone(ctx.cfg.timezone)
                                                              .date().isoformat()))
    names = {PurePosixPath(r.archive_path).name for r in recs}
    if len(names) < len({r.id for r in recs}):
        raise ArchiverError(_("two of these recordings have the same file name: retrieve them into separate "
                              "folders"))
    handed = []
    for rec in recs:
        name = PurePosixPath(rec.archive_path).name
        ctx.record("retrieve", {"sha256": rec.sha256, "device": rec.device_serial},
                   {"reason": reason, "dest": f"{dest}/{name}" if dest else None, "case_no": case_no,
                    "id": rec.id})
        with ws.archive.open(ctx.cfg.data_dir / rec.archive_path) as fh:
            ctx.hand_back(name, os.dup(fh.fileno()), rec.sha256, rec.size)
        handed.append({"id": rec.id, "name": name, "size": rec.size, "sha256": rec.sha256})
    return handed


@operation("export")
def export(ctx: Context, case_no: str, dest: str | None = None) -> dict[str, Any]:
    """The case's bag, written where the person named (`dest`) when run in their own process; else built in a
    private folder of the data dir and handed back file by file, under its names inside the bag."""
    from archiver.audit.export import export_case

    ws = ctx.workspace()
    if ctx.local and dest is not None:
        result = export_case(ws, case_no, Path(dest))
    else:
        with tempfile.TemporaryDirectory(dir=ctx.cfg.data_dir, prefix=".export-") as scratch:
            bag = Path(scratch) / "bag"
            result = export_case(ws, case_no, bag)
            hand_back_tree(ctx, bag)
    ctx.record("export", {"case_no": case_no}, {"dest": dest, "files": result.files, "bytes": result.bytes})
    return {"case_no": case_no, "files": result.files, "bytes": result.bytes, "events": result.events}


def hand_back_tree(ctx: Context, root: Path) -> None:
    """Every file under `root` (made by this process, never through a symlink) handed back open, under its name
    in it."""
    for top, _dirs, files, top_fd in os.fwalk(root, follow_symlinks=False):
        rel = Path(top).relative_to(root)
        for name in sorted(files):
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=top_fd)
            ctx.hand_back((rel / name).as_posix(), fd, None, os.fstat(fd).st_size)


@operation("verify-export")
def verify_export(ctx: Context, key: str | None = None) -> dict[str, Any]:
    """The bag handed in, file by file under its names in the bag, checked against its manifests and the
    station's key (`key`, as `keys show` prints it; default: this station's)."""
    from archiver.audit.export import verify_export as check
    from archiver.ledger.keys import PublicKey, load_public_key

    public = PublicKey.parse(key) if key else load_public_key(ctx.cfg.data_dir)
    result = check({item.name: item.fd for item in ctx.inputs}, public)
    return {"case_no": result.case_no, "files": result.files, "problems": result.problems,
            "fingerprint": public.fingerprint}


@operation("rebuild-catalog")
def rebuild_catalog(ctx: Context) -> dict[str, Any]:
    from archiver.audit.rebuild import rebuild_catalog as rebuild

    report = rebuild(ctx.cfg)
    if report.problems and not report.recordings:
        raise ArchiverError(_("the custody log or the archive does not check out: nothing rebuilt ({problems})")
                            .format(problems="; ".join(report.problems[:5])))
    ctx.record("rebuild_catalog", {"data_dir": str(ctx.cfg.data_dir)},
               {"recordings": report.recordings, "problems": report.problems})
    return {"recordings": report.recordings, "problems": report.problems}
