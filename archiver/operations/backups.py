"""Backups: a run to every target, their status, their check (with an identity handed in, a restore drill), and
restores. An identity file is handed in by the person and used only if it is theirs alone; what a restore
brings back is handed back (or, run in the person's own process, written where they named)."""

from __future__ import annotations

import dataclasses
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from archiver.errors import InsecureError
from archiver.i18n import _
from archiver.operations.core import Context, input_path, operation
from archiver.operations.evidence import hand_back_tree


def _identities(ctx: Context) -> list[Any]:
    """The age identities handed in: refused unless the file is the person's alone (mode 0600)."""
    from archiver.backup.targets import load_identities

    source = ctx.the_input()
    st = os.fstat(source.fd)
    if st.st_uid != ctx.actor.uid or stat.S_IMODE(st.st_mode) & 0o077:
        raise InsecureError(_("identity file {path} must be {user}'s alone (chmod 600 {path})").format(
                              path=source.name, user=ctx.actor.user))
    return load_identities(Path(source.name), source.read(1 << 20))


@operation("backup run")
def backup_run(ctx: Context) -> dict[str, Any]:
    from archiver.backup.run import backup_run as run

    return run(ctx.workspace()).to_json()


@operation("backup status")
def backup_status(ctx: Context) -> list[dict[str, Any]]:
    from archiver.backup.targets import backup_status as status

    return status(ctx.workspace())


@operation("backup verify")
def backup_verify(ctx: Context, decrypt: bool = False) -> dict[str, Any]:
    """Every object checked; with `decrypt` (an identity file handed in), decrypted and compared too."""
    from archiver.backup.targets import backup_verify as check

    checked, problems = check(ctx.workspace(), _identities(ctx) if decrypt else None)
    ctx.record("backup_verify", {"targets": list(ctx.cfg.backup.names)},
               {"checked": checked, "problems": len(problems), "decrypted": decrypt})
    return {"checked": checked, "problems": [p.to_json() for p in problems]}


@operation("backup restore")
def backup_restore(ctx: Context, refs: list[str], dest: str, case_no: str | None = None, all_: bool = False,
                   station_key: str | None = None, trust_target: bool = False,
                   target: str | None = None) -> dict[str, Any]:
    """Recordings (or with `all_` a whole data dir) from a backup target, checked. `dest` names where the
    person keeps them; it is written only in the person's own process, else what is restored is handed back.
    `target`, a folder the person names, likewise: the station service reads only the configured targets."""
    from archiver.archive.workspace import open_workspace
    from archiver.backup.restore import restore_recordings, restore_station
    from archiver.backup.targets import recorded_ciphertexts
    from archiver.cases.links import recording_ids_for_case
    from archiver.catalog.lookup import find_recording
    from archiver.errors import BackupError
    from archiver.fs.owners import reader_gid
    from archiver.ledger.keys import read_public_key

    if sum(map(bool, (refs, case_no, all_))) != 1:
        raise BackupError(_("give recording references, --case or --all (one of them) and DEST"))
    if (station_key or trust_target) and not all_:
        raise BackupError(_("--station-key and --trust-target go with --all; single recordings are checked "
                            "against this station's own catalog"))
    source = input_path(ctx, target) or (ctx.cfg.backup.targets[0] if ctx.cfg.backup.targets else None)
    if source is None or not source.is_dir():
        raise BackupError(_("backup target {source} is missing: give --target or mount it").format(source=source))
    identities = _identities(ctx)
    with tempfile.TemporaryDirectory(dir=ctx.cfg.data_dir, prefix=".restore-") as scratch:
        where = Path(dest) if ctx.local else Path(scratch) / "restored"
        if all_:
            pinned = read_public_key(station_key) if station_key else None

            def log(staging: Path, snapshot: Any) -> None:  # in the restored station's own log, by this person
                restored = open_workspace(dataclasses.replace(ctx.cfg, data_dir=staging), upgrade=False)
                try:
                    restored.acting(ctx.actor.actor(ctx.name)).custody.append(
                        "restore_station", {"snapshot": snapshot.stamp},
                        {"target": str(source), "dest": dest, "key": snapshot.key.fingerprint,
                         "pinned": pinned is not None, "trust_target": trust_target})
                finally:
                    restored.close()

            count, snapshot = restore_station(source, where, identities, ctx.cfg.hashes, pinned, trust_target,
                                              reader_gid(ctx.cfg.access.reader_group), log)
            result = {"recordings": count, "snapshot": snapshot.stamp, "pinned": pinned is not None,
                      "fingerprint": snapshot.key.fingerprint, "key": snapshot.key.text}
        else:
            ws = ctx.workspace()
            ids = recording_ids_for_case(ws.catalog, case_no, ctx.cfg.linking) if case_no else None
            recordings = [find_recording(ws.catalog, str(i)) for i in ids] if ids is not None else \
                [find_recording(ws.catalog, ref) for ref in refs]
            count = restore_recordings(source, recordings, where, identities, recorded_ciphertexts(ws, recordings))
            ctx.record("restore", {"sha256": [r.sha256 for r in recordings]}, {"target": str(source), "dest": dest})
            result = {"recordings": count}
        if not ctx.local:
            hand_back_tree(ctx, where)
    return result
