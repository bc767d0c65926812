"""The backup targets as one: every face of a backup (run, verify, status, whether a recording is on every
target) written once against the `Target` protocol, which the folder target (`backup/disk.py`) and the S3 store
(`backup/s3.py`) implement. Which kind a configured target is, the configuration says (`backup.targets` and
`backup.s3_targets`); nothing here looks at a name to tell."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import func, select

from archiver.archive.workspace import Workspace
from archiver.backup.age import AgeError, Identity, Recipient, read_identities
from archiver.backup.disk import DiskTarget
from archiver.catalog import BackupObject, Recording
from archiver.config import Config
from archiver.errors import BackupError
from archiver.fs.owners import check_private, reader_gid
from archiver.i18n import _
from archiver.ledger.custody import Head, log_head
from archiver.problems import Finding


class Target(Protocol):
    name: str  # as backup.targets names it, and the catalog records it

    def prepare(self) -> None: ...  # usable, and what a killed run left finished
    def drop_purged(self, counts: dict[str, int]) -> None: ...  # the objects of purged recordings taken off
    def put(self, to: list[Recipient], counts: dict[str, int], cancel, rotten) -> None: ...  # recordings not there
    def verify(self, identities: list[Identity] | None) -> tuple[int, list[Finding]]: ...
    def present(self) -> bool | None: ...  # None: known only by reading it
    def holds(self, row: BackupObject) -> bool: ...  # the object there as the station wrote it


@runtime_checkable
class SnapshotTarget(Target, Protocol):
    """A target that also keeps the station's snapshots (for a whole-station restore) and its published head."""

    def snapshot_head(self) -> Head | None | bool: ...  # the head its newest snapshot holds; False: none (or bad)
    def snapshot(self, to: list[Recipient], counts: dict[str, int]) -> None: ...  # a new one; the oldest pruned
    def publish_head(self) -> None: ...  # the custody head, signed, for `verify` to check the log against


def targets(ws: Workspace, group: int | None = None) -> list[Target]:
    """The configured targets, folders first; refused when there are none at all."""
    cfg = ws.cfg
    if not cfg.backup.names:
        raise BackupError(_("backup.targets is empty: add the folders (second disk, NAS mount) or s3://bucket/prefix "
                            "stores to back up to"))
    found: list[Target] = [DiskTarget(ws, path, group) for path in cfg.backup.targets]
    if cfg.backup.s3_targets:
        from archiver.backup.s3 import S3Store  # boto3 loads only for a station that has an S3 target

        found += [S3Store(ws, url) for url in cfg.backup.s3_targets]
    return found


def recipients(cfg: Config) -> list[Recipient]:
    """The configured recipients (and those of backup.recipients_file); refuses a configuration that
    holds any private key, and a recipients file that someone else could have changed."""
    for path in cfg.files:
        if "AGE-SECRET-KEY-" in path.read_text(errors="replace").upper():
            raise BackupError(_("{path} contains an age private key (AGE-SECRET-KEY-...): remove it; the station "
                                "must only hold the recipients' public keys (age1...)").format(
                                path=path))
    texts = list(cfg.backup.recipients)
    source = cfg.backup.recipients_file
    if source is not None:
        check_private(source, _("recipients file"), {0, os.geteuid()})
        try:
            lines = source.read_text().splitlines()
        except OSError as exc:
            raise BackupError(_("cannot read backup.recipients_file {source}: {strerror}").format(
                                source=source, strerror=exc.strerror)) from exc
        if any("AGE-SECRET-KEY-" in line.upper() for line in lines):
            raise BackupError(_("{source} contains an age private key: the station must only hold public keys").format(
                                source=source))
        texts += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not texts:
        raise BackupError(_("backup.recipients is empty: add the age1... public keys that may decrypt the "
                            "backups (e.g. the county office's and a sealed escrow key)"))
    try:
        return [Recipient.parse(r) for r in texts]
    except AgeError as exc:
        raise BackupError(_("backup.recipients: {exc}").format(exc=exc)) from exc


@dataclass
class BackupReport:
    targets: dict[str, dict[str, int]] = field(default_factory=dict)
    # archived files that no longer hash as catalogued: not backed up (run `archiver verify`)
    not_backed_up: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"targets": self.targets, "not_backed_up": self.not_backed_up}


def backup_run(ws: Workspace, cancel=None) -> BackupReport:
    """Put every recording not yet on a target there. Then, if anything happened since the newest
    snapshot on some target (a recording backed up, a case imported, a lookup logged: the custody log
    moved), a `backup_run` custody event and a fresh signed snapshot of the station on every target that
    keeps snapshots, keeping the newest backup.keep_snapshots there. A run that finds nothing to do writes
    nothing."""
    if not ws.catalog.is_sqlite:  # a snapshot would copy an empty SQLite file made beside it
        raise BackupError(_("the catalog is on {url}, not in the data dir: back it up with the database's own "
                            "tools; 'backup run' is for a station").format(url=ws.catalog.url))
    to = recipients(ws.cfg)
    report = BackupReport()
    every = targets(ws, reader_gid(ws.cfg.access.reader_group))
    for target in every:
        counts = report.targets.setdefault(target.name, {"objects": 0, "bytes": 0, "snapshot_parts": 0,
                                                         "snapshots_pruned": 0, "purged_dropped": 0})
        target.prepare()
        target.drop_purged(counts)
        target.put(to, counts, cancel, lambda rec, found, where=target.name: report.not_backed_up.append(
            _rotten(where, rec, found)))
    keeping = [t for t in every if isinstance(t, SnapshotTarget)]
    head = log_head(ws.custody.path)
    if all(t.snapshot_head() == head for t in keeping):
        return report  # every target's newest snapshot already holds the station as it is
    ws.custody.append("backup_run", {"targets": [t.name for t in keeping]},
                      {"objects": {t: c["objects"] for t, c in report.targets.items()},
                       "bytes": {t: c["bytes"] for t, c in report.targets.items()},
                       "not_backed_up": report.not_backed_up})
    for target in keeping:
        target.snapshot(to, report.targets[target.name])
    for target in keeping:  # the head after every target's events, on every target
        target.publish_head()
    return report


def _rotten(target: str, rec: Recording, found: str) -> dict[str, str]:
    return {"target": target, "path": rec.archive_path, "detail": _(
        "recording #{id} hashes as {found} now, the catalog says {sha256}: run 'archiver verify'").format(
        id=rec.id, found=found, sha256=rec.sha256)}


def backup_verify(ws: Workspace, identities: list[Identity] | None) -> tuple[int, list[Finding]]:
    """Every target checked (`Target.verify`): (objects checked, findings)."""
    checked, problems = 0, []
    for target in targets(ws):
        count, found = target.verify(identities)
        checked += count
        problems += found
    return checked, problems


def backup_status(ws: Workspace) -> list[dict[str, Any]]:
    tz = ws.cfg.timezone
    rows = []
    with ws.catalog.session() as session:
        live = Recording.purged_at.is_(None)
        total = session.scalar(select(func.count()).select_from(Recording).where(live))
        for target in targets(ws) if ws.cfg.backup.names else []:
            where = BackupObject.target == target.name
            objects, size, last = session.execute(select(func.count(), func.coalesce(func.sum(BackupObject.size), 0),
                                                         func.max(BackupObject.at)).where(where)).one()
            done = select(BackupObject.recording_id).where(where, BackupObject.kind == "recording")
            missing = select(Recording).where(Recording.id.not_in(done), live)
            lag = session.scalar(select(func.count()).select_from(missing.subquery()))
            oldest = session.scalar(select(func.min(Recording.ingested_at)).where(Recording.id.not_in(done), live))
            rows.append({"target": target.name, "present": target.present(), "objects": objects, "bytes": int(size),
                         "last_run": last.replace(tzinfo=UTC).astimezone(tz).isoformat() if last else None,
                         "recordings": total, "not_backed_up": lag,
                         "oldest_not_backed_up": oldest.astimezone(tz).isoformat() if oldest else None})
    return rows


def on_every_target(ws: Workspace, recording_id: int) -> bool:
    """Whether a recording is on every configured target as the station wrote it (for clear_after =
    backed_up): each object is read back and must hash as recorded; a substituted one frees no card."""
    if not ws.cfg.backup.names:
        return False
    with ws.catalog.session() as session:
        rows = {r.target: r for r in session.scalars(select(BackupObject).where(
            BackupObject.recording_id == recording_id, BackupObject.kind == "recording"))}
    return all(t.name in rows and t.holds(rows[t.name]) for t in targets(ws))


def recorded_ciphertexts(ws: Workspace, recordings: list[Recording]) -> dict[int, set[str]]:
    """Per recording, the ciphertext hashes of the objects this station wrote for it (on any target)."""
    found: dict[int, set[str]] = {}
    with ws.catalog.session() as session:
        for rec_id, digest in session.execute(select(BackupObject.recording_id, BackupObject.ciphertext_sha256).where(
                BackupObject.recording_id.in_([r.id for r in recordings]))):
            found.setdefault(rec_id, set()).add(digest)
    return found


def load_identities(path: Path, data: bytes) -> list[Identity]:
    """The identities in an identity file's bytes (read only if it was the caller's alone)."""
    try:
        return read_identities(data.decode())
    except (UnicodeDecodeError, AgeError) as exc:
        raise BackupError(_("{path}: {exc}").format(path=path, exc=exc)) from exc
