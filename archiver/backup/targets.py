"""The backup targets as one: the `Target` protocol (put, list, open, check, drop, lock an object), which the
folder target (`backup/disk.py`) and the S3 store (`backup/s3.py`) implement, and the faces that read them (verify,
status, whether a recording is on every target) written once against it; the run that writes them is
`backup/run.py`. Which kind a configured target is, the configuration says (`backup.targets` and
`backup.s3_targets`); nothing here looks at a name to tell."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from sqlalchemy import func, select

from archiver.archive.workspace import Workspace
from archiver.backup.age import AgeError, Identity, Recipient, read_identities
from archiver.backup.disk import DiskTarget
from archiver.backup.objects import REMOVED, Lock, Placed, check_stream
from archiver.catalog import BackupObject, Recording
from archiver.catalog.db import commit
from archiver.config import Config
from archiver.errors import ArchiverError, BackupError, BackupTargetError
from archiver.fs.owners import check_private
from archiver.i18n import N_, _
from archiver.ledger.keys import sign_record
from archiver.problems import MADE, Finding, Kind


class Target(Protocol):
    """Where encrypted objects go. Each object is put with the entry the station signed for it (its hashes and
    size), so a target can be checked against the station's word and what a killed run left can be adopted."""

    name: str  # as backup.targets names it, and the catalog records it
    locks: bool  # objects carry a lock and a legal hold (S3 Object Lock) that `lock` brings up to date

    def prepare(self) -> None: ...  # usable, and what a killed run left behind swept
    def present(self) -> bool | None: ...  # None: known only by reading it

    def put(self, name: str, fill: Callable[[BinaryIO], dict[str, Any]], lock: Lock | None) -> Placed:
        """`fill` writes the bytes and returns the signed entry; the object is complete on the target, and listed
        with its entry, before this returns; an exception from `fill` leaves nothing there."""

    def list(self, name: str | None = None) -> list[Placed]:
        """Every object there (entries read where it costs nothing), or with `name` each one (version) under that
        name with its entry read."""

    def open(self, name: str, version: str | None = None) -> BinaryIO: ...  # FileNotFoundError if not there
    def check(self, row: BackupObject, identities: list[Identity] | None) -> list[Finding]: ...  # one as written
    def audit(self, rows: list[BackupObject]) -> list[Finding]: ...  # the target's own listing vs the catalog

    def drop(self, row: BackupObject, entry: dict[str, Any]) -> bool:
        """Take an object off, its removal first listed with `entry` (signed); False where the target keeps it
        (a lock or a legal hold)."""

    def lock(self, row: BackupObject, until: datetime | None, hold: bool | None) -> None:
        """A lock extended to `until`, a legal hold placed or lifted; where the target locks."""


@runtime_checkable
class SnapshotTarget(Target, Protocol):
    """A target that also keeps the station's snapshots (for a whole-station restore) and its published head."""

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

        found += [S3Store(cfg, url) for url in cfg.backup.s3_targets]
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


# -- written once against the protocol -------------------------------------------------------------
def object_row(target: Target, placed: Placed, recording_id: int | None = None) -> BackupObject:
    """The catalog's row for an object on the target, from the signed entry it was put with."""
    entry = placed.entry
    assert entry is not None, placed.name  # what `put` and `list(name)` hand back always carries it
    return BackupObject(target=target.name, name=placed.name, kind=entry["kind"], recording_id=recording_id,
                        plain_sha256=entry["plain_sha256"], ciphertext_sha256=entry["ciphertext_sha256"],
                        size=entry["size"], at=datetime.now(UTC), version_id=placed.version,
                        locked_until=placed.locked_until, legal_hold=placed.legal_hold)


def record(ws: Workspace, row: BackupObject) -> BackupObject:
    """`row` (an object now on its target) kept in the catalog."""
    with ws.catalog.session() as session:
        session.add(row)
        commit(session)
    return row


def remove(ws: Workspace, target: Target, rows: list[BackupObject]) -> list[BackupObject]:
    """Each object taken off (`Target.drop`, its signed removal listed first), then its catalog row: killed
    anywhere, the next run does it again. The rows of the objects taken off."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    gone = []
    for row in rows:
        entry = sign_record(ws.station_key, {"object": row.name, "kind": REMOVED, "plain_sha256": row.plain_sha256,
                                             "ciphertext_sha256": row.ciphertext_sha256, "size": row.size,
                                             "time": now})
        if not target.drop(row, entry):
            continue
        with ws.catalog.session() as session:
            session.delete(session.get(BackupObject, row.id))
            commit(session)
        gone.append(row)
    return gone


def backup_verify(ws: Workspace, identities: list[Identity] | None) -> tuple[int, list[Finding]]:
    """Every object the station recorded as written to each target, checked there against the hashes the station
    recorded (not against what the target says); the target's own listing against the catalog; with
    identities, every object decrypted and its plaintext compared. (objects checked, findings)."""
    checked, problems = 0, []
    for target in targets(ws):
        if target.present() is False:
            problems.append(Finding(Kind.BACKUP_TARGET, target.name, N_("missing (not mounted?)")))
            continue
        with ws.catalog.reading() as session:
            rows = list(session.scalars(select(BackupObject).where(BackupObject.target == target.name)
                                        .order_by(BackupObject.name)))
        try:
            found = target.audit(rows)
            for row in rows:
                found += target.check(row, identities)
        except BackupTargetError as exc:  # out of reach, as a disk that is not mounted: said, and on to the next
            found = [Finding(Kind.BACKUP_TARGET, target.name, MADE, {"detail": str(exc)})]
        checked += len(rows)
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
    return all(t.name in rows and _holds(t, rows[t.name]) for t in targets(ws))


def _holds(target: Target, row: BackupObject) -> bool:
    """Whether the object is there as the station wrote it: read back and hashed, or, where the target locks
    (COMPLIANCE: nobody can change or remove the version), recorded is enough."""
    if target.locks:
        return True
    try:
        return check_stream(target.open(row.name, row.version_id), row, None) is None
    except (OSError, ArchiverError):
        return False


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
