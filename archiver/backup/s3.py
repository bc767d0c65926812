"""Backup targets in an S3 store with Object Lock: `s3://bucket/prefix` in backup.targets.

Each recording is the same age object as on a disk target, under `<prefix>/objects/<sha256[:2]>/<sha256>.age`,
written once with a COMPLIANCE lock: until the recording's retention due date, or, for footage kept for
good as things stand (open cases, permanent classes), `s3.rolling_lock_days` ahead, renewed by every run.
Locks are only ever extended (the store refuses to shorten a COMPLIANCE lock, for anyone). Legal holds
on the station mirror as S3 legal holds. The version the station wrote is recorded in the catalog with its
ciphertext hash; `backup verify` reads that version back (streamed) and reports a later version put over
it. The bucket must have Object Lock enabled, and the station's credentials should be allowed to put
objects, retention and legal holds but never to delete (README: the bucket policy).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from archiver.archive.workspace import Workspace
from archiver.backup.age import Identity, Recipient, encrypt
from archiver.backup.objects import HashingReader, HashingWriter, check_stream, object_name
from archiver.catalog import BackupObject, Recording
from archiver.catalog.db import commit
from archiver.config import Config
from archiver.errors import ArchiverError, ArchiveStorageError
from archiver.i18n import N_, _
from archiver.ledger.keys import sign_record, signed_by
from archiver.problems import MADE, Finding, Kind
from archiver.retention.plan import gather
from archiver.retention.rules import due

log = logging.getLogger(__name__)
ENTRY_META = "archiver-entry"  # the signed manifest line, kept with the object as user metadata


class S3TargetError(ArchiveStorageError):
    """An S3 target cannot be reached or refuses what the station may do."""


@dataclass(frozen=True)
class S3Target:
    url: str  # s3://bucket/prefix, as backup.targets names it and the catalog records it

    @property
    def bucket(self) -> str:
        return self.url[5:].split("/", 1)[0]

    def key(self, name: str) -> str:
        prefix = self.url[5:].partition("/")[2]
        return f"{prefix}/{name}" if prefix else name


def client(cfg: Config):
    """A boto3 client from [s3], else the usual AWS variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...)."""
    import boto3
    from botocore.config import Config as BotoConfig

    s3 = cfg.s3
    # a session of its own: boto3's default one is process-wide and keeps the credentials it first found
    return boto3.session.Session().client(
        "s3", endpoint_url=s3.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
        region_name=s3.region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1",
        aws_access_key_id=s3.access_key_id or None, aws_secret_access_key=s3.secret_access_key or None,
        config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 3}, connect_timeout=10,
                          read_timeout=120))


def _code(exc: Exception) -> str | None:
    """The S3 error code of a botocore ClientError (AccessDenied, NoSuchVersion, ...); None for others."""
    response = getattr(exc, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


def _failure(target: S3Target, exc: Exception) -> S3TargetError:
    reason = _code(exc) or " ".join(str(exc).split())[:200]
    return S3TargetError(_("backup target {target}: {reason}; check the endpoint, the credentials and that the "
                           "bucket has Object Lock enabled, then run the backup again").format(
                           target=target.url, reason=reason))


def _refused(exc: Exception) -> bool:
    return _code(exc) in ("AccessDenied", "InvalidRequest")


# -- locks (pure) ---------------------------------------------------------------------------------
def lock_until(due_date: date | None, today: date, rolling_days: int, tz: Any) -> datetime:
    """How long an object's COMPLIANCE lock runs: to the start of its due day, or `rolling_days` ahead for
    footage kept for good; never less than a day (a recording due already waits for its purge locked)."""
    day = today + timedelta(days=rolling_days) if due_date is None else max(due_date, today + timedelta(days=1))
    return datetime.combine(day, time(), tz).astimezone(UTC)


@dataclass(frozen=True)
class Wanted:
    until: datetime
    rolling: bool  # kept for good as things stand: the lock is renewed, never ends while that holds
    hold: bool


def _wanted(ws: Workspace, ids: list[int], now: datetime) -> dict[int, Wanted]:
    """Per recording: its lock and legal hold, from the retention rules as things stand."""
    tz = ws.cfg.timezone
    today = now.astimezone(tz).date()
    wanted = {}
    for facts in gather(ws, ids):
        day = due(facts, ws.cfg.retention.classes, tz).date
        wanted[facts.id] = Wanted(lock_until(day, today, ws.cfg.s3.rolling_lock_days, tz), day is None, facts.held)
    return wanted


class S3Store:
    """An S3 bucket with Object Lock as a backup target (`Target`): recordings only, each version locked
    (COMPLIANCE) as long as it must be kept, so nobody, the station included, can change it; no snapshots."""

    def __init__(self, ws: Workspace, url: str) -> None:
        self.ws, self.name = ws, url

    def prepare(self) -> None:
        """Nothing to finish: a version is recorded only once the store has it."""

    def drop_purged(self, counts: dict[str, int]) -> None:
        counts["purged_dropped"], counts["purged_locked"] = drop_purged_s3(self.ws, self.name)

    def put(self, to: list[Recipient], counts: dict[str, int], cancel, rotten) -> None:
        backup_to_s3(self.ws, self.name, to, counts, cancel, datetime.now(UTC), rotten)

    def verify(self, identities: list[Identity] | None) -> tuple[int, list[Finding]]:
        try:
            return verify_s3(self.ws, self.name, identities)
        except S3TargetError as exc:  # out of reach, as a disk that is not mounted: a problem, and on to the next
            return 0, [Finding(Kind.BACKUP_TARGET, self.name, MADE, {"detail": str(exc)})]

    def present(self) -> bool | None:
        return None  # known only by reading it: see backup verify

    def holds(self, row: BackupObject) -> bool:
        return True  # the version the station wrote is locked (COMPLIANCE): recorded is enough


# -- writing ----------------------------------------------------------------------------------------
def backup_to_s3(ws: Workspace, url: str, to: list[Recipient], counts: dict[str, int], cancel, now: datetime,
                 report_rotten) -> None:
    """Every recording not yet on the target, then every lock and legal hold brought up to date."""
    target, s3 = S3Target(url), client(ws.cfg)
    with ws.catalog.reading() as session:
        done = set(session.scalars(select(BackupObject.recording_id).where(
            BackupObject.target == url, BackupObject.kind == "recording")))
        todo = [r for r in session.scalars(select(Recording).where(Recording.purged_at.is_(None))
                                           .order_by(Recording.id)) if r.id not in done]
    wanted = _wanted(ws, [r.id for r in todo], now) if todo else {}
    for rec in todo:
        if cancel is not None and cancel.is_set():
            return
        want = wanted[rec.id]
        row = _adopt(ws, target, s3, rec)
        adopted = row is not None
        if row is not None:
            _record(ws, row)
        else:
            try:
                row = _put(ws, target, s3, rec, to, want.until, want.hold)
            except _Rotten as rotten:
                report_rotten(rec, str(rotten))
                continue
        ws.custody.append("backup", {"sha256": rec.sha256, "device": rec.device_serial},
                          {"target": url, "object": row.name, "version": row.version_id,
                           "ciphertext_sha256": row.ciphertext_sha256, "size": row.size,
                           "locked_until": row.locked_until.isoformat() if row.locked_until else None,
                           "legal_hold": row.legal_hold, **({"adopted": True} if adopted else {})})
        counts["objects"] += 1
        counts["bytes"] += row.size
    counts["locks_extended"], counts["holds_changed"] = _maintain(ws, target, s3, now)


class _Rotten(Exception):
    """The archived file no longer hashes as catalogued: not backed up as that recording."""


def _put(ws: Workspace, target: S3Target, s3, rec: Recording, to: list[Recipient], until: datetime,
         hold: bool) -> BackupObject:
    """Encrypt to a private temp file (memory stays flat), then one PUT with the lock and the signed entry."""
    name = object_name(rec.sha256)
    with tempfile.TemporaryFile(dir=ws.cfg.data_dir) as spool:
        with ws.archive.open(ws.archive.data_dir / rec.archive_path) as src:
            plain, sink = HashingReader(src), HashingWriter(spool)
            encrypt(plain, sink, to)
        if plain.sha256.hexdigest() != rec.sha256:
            raise _Rotten(plain.sha256.hexdigest())
        spool.flush()
        spool.seek(0)
        digest, size = sink.sha256.hexdigest(), sink.size
        entry = sign_record(ws.station_key, {"object": name, "kind": "recording", "plain_sha256": rec.sha256,
                                             "ciphertext_sha256": digest, "size": size,
                                             "time": datetime.now(UTC).isoformat(timespec="seconds")})
        try:
            # the county (the bucket's owner) owns what a station writes: its auditors read it, its purge deletes
            answer = s3.put_object(Bucket=target.bucket, Key=target.key(name), Body=spool, ContentLength=size,
                                   ACL="bucket-owner-full-control",
                                   ChecksumAlgorithm="SHA256", ObjectLockMode="COMPLIANCE",
                                   ObjectLockRetainUntilDate=until, ObjectLockLegalHoldStatus="ON" if hold else "OFF",
                                   Metadata={ENTRY_META: json.dumps(entry, sort_keys=True)})
        except Exception as exc:  # botocore's errors: connection, credentials, the bucket's refusal
            raise _failure(target, exc) from exc
    version = answer.get("VersionId")
    if not version:
        raise S3TargetError(_("backup target {target} gave no version for {name}: the bucket needs versioning and "
                              "Object Lock enabled (create it with Object Lock)").format(target=target.url, name=name))
    row = BackupObject(target=target.url, name=name, kind="recording", recording_id=rec.id, plain_sha256=rec.sha256,
                       ciphertext_sha256=digest, size=size, version_id=version, locked_until=until, legal_hold=hold)
    _record(ws, row)
    return row


def _record(ws: Workspace, row: BackupObject) -> None:
    with ws.catalog.session() as session:
        session.add(row)
        commit(session)


def _adopt(ws: Workspace, target: S3Target, s3, rec: Recording) -> BackupObject | None:
    """A version a killed run put but did not record (the PUT answered, the catalog never heard): adopted
    if the station signed the entry it carries and it reads back as that entry says, so a run killed at
    any moment leaves no second locked copy behind. Planted versions (unsigned, or not as signed) are not."""
    name = object_name(rec.sha256)
    key = target.key(name)
    try:
        listed = s3.list_object_versions(Bucket=target.bucket, Prefix=key).get("Versions", [])
        for version in (v for v in listed if v["Key"] == key):
            head = s3.head_object(Bucket=target.bucket, Key=key, VersionId=version["VersionId"])
            try:
                entry = json.loads(head.get("Metadata", {}).get(ENTRY_META, "null"))
            except ValueError:
                continue
            if not signed_by(entry, ws.station_key.public) or entry.get("object") != name \
                    or entry.get("plain_sha256") != rec.sha256:
                continue
            row = BackupObject(target=target.url, name=name, kind="recording", recording_id=rec.id,
                               plain_sha256=rec.sha256, ciphertext_sha256=entry["ciphertext_sha256"],
                               size=entry["size"], version_id=version["VersionId"],
                               locked_until=head.get("ObjectLockRetainUntilDate"),
                               legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON")
            body = s3.get_object(Bucket=target.bucket, Key=key, VersionId=version["VersionId"])["Body"]
            if check_stream(body, row, None) is None:
                return row
    except Exception as exc:
        raise _failure(target, exc) from exc
    return None


def _maintain(ws: Workspace, target: S3Target, s3, now: datetime) -> tuple[int, int]:
    """Extend locks the rules now want longer (a case linked, a rolling lock half spent) and mirror legal
    holds placed or lifted since. (extended, holds changed)."""
    with ws.catalog.reading() as session:
        rows = list(session.scalars(select(BackupObject).join(Recording, Recording.id == BackupObject.recording_id)
                                    .where(BackupObject.target == target.url, BackupObject.kind == "recording",
                                           Recording.purged_at.is_(None))))
    wanted = _wanted(ws, [r.recording_id for r in rows], now) if rows else {}
    half = timedelta(days=ws.cfg.s3.rolling_lock_days) / 2
    extended = changed = 0
    for row in rows:
        want, key = wanted.get(row.recording_id), target.key(row.name)
        if want is None:
            continue
        try:
            # a due date that moved later is followed at once; a rolling lock is renewed once half spent
            if row.locked_until is not None and want.until > row.locked_until and (
                    not want.rolling or row.locked_until - now < half):
                s3.put_object_retention(Bucket=target.bucket, Key=key, VersionId=row.version_id,
                                        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": want.until})
                _update(ws, row.id, locked_until=want.until)
                extended += 1
            if bool(row.legal_hold) != want.hold:
                s3.put_object_legal_hold(Bucket=target.bucket, Key=key, VersionId=row.version_id,
                                         LegalHold={"Status": "ON" if want.hold else "OFF"})
                _update(ws, row.id, legal_hold=want.hold)
                ws.custody.append("backup_legal_hold", {"sha256": row.plain_sha256},
                                  {"target": target.url, "object": row.name, "version": row.version_id,
                                   "on": want.hold})
                changed += 1
        except ArchiverError:
            raise
        except Exception as exc:
            raise _failure(target, exc) from exc
    return extended, changed


def _update(ws: Workspace, row_id: int, **values: Any) -> None:
    with ws.catalog.session() as session:
        row = session.get(BackupObject, row_id)
        assert row is not None
        for name, value in values.items():
            setattr(row, name, value)
        commit(session)


# -- purged recordings --------------------------------------------------------------------------------
def drop_purged_s3(ws: Workspace, url: str) -> tuple[int, int]:
    """Delete the versions of purged recordings where the lock allows it; (deleted, still locked). A
    version the store refuses to delete (its lock runs on, a legal hold, credentials that may not delete)
    stays recorded, and the next run tries again."""
    target, s3 = S3Target(url), client(ws.cfg)
    with ws.catalog.reading() as session:
        rows = list(session.scalars(select(BackupObject).join(Recording, Recording.id == BackupObject.recording_id)
                                    .where(BackupObject.target == url, BackupObject.kind == "recording",
                                           Recording.purged_at.is_not(None))))
    deleted, kept = [], 0
    for row in rows:
        try:
            s3.delete_object(Bucket=target.bucket, Key=target.key(row.name), VersionId=row.version_id)
        except Exception as exc:
            if not _refused(exc):
                raise _failure(target, exc) from exc
            log.warning("purged recording's object kept by the store target=%s object=%s locked_until=%s", url,
                        row.name, row.locked_until)
            kept += 1
            continue
        with ws.catalog.session() as session:
            session.delete(session.get(BackupObject, row.id))
            commit(session)
        deleted.append({"object": row.name, "version": row.version_id, "plain_sha256": row.plain_sha256})
    if deleted:
        ws.custody.append("backup_drop_purged", {"target": url}, {"objects": deleted})
    return len(deleted), kept


# -- checking -----------------------------------------------------------------------------------------
def verify_s3(ws: Workspace, url: str, identities: list[Identity] | None) -> tuple[int, list[Finding]]:
    """Every version the station wrote read back (streamed): size and ciphertext hash as recorded, the
    lock at least as long as recorded, no later version on top; with identities, decrypted and compared."""
    with ws.catalog.reading() as session:
        rows = list(session.scalars(select(BackupObject).where(BackupObject.target == url)
                                    .order_by(BackupObject.name)))
    return len(rows), check_versions(ws.cfg, url, rows, identities)


def check_versions(cfg: Config, url: str, rows: list[BackupObject],
                   identities: list[Identity] | None) -> list[Finding]:
    """`rows` (objects as written: name, version, ciphertext hash and size, lock) checked in the store."""
    target, s3 = S3Target(url), client(cfg)
    problems: list[Finding] = []

    def problem(kind: Kind, row: BackupObject, text: str, expected: Any = None, found: Any = None,
                **values: Any) -> None:
        problems.append(Finding(kind, f"{url}/{row.name}", text, values, expected, found))

    for row in rows:
        key = target.key(row.name)
        try:
            answer = s3.get_object(Bucket=target.bucket, Key=key, VersionId=row.version_id)
            found = check_stream(answer["Body"], row, identities, f"{url}/{row.name}")
            # listed, not read: a version someone else put on top may not even be readable by us
            listed = s3.list_object_versions(Bucket=target.bucket, Prefix=key).get("Versions", [])
            latest = next((v["VersionId"] for v in listed if v["Key"] == key and v.get("IsLatest")), None)
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "NoSuchVersion", "404"):
                problem(Kind.BACKUP_MISSING, row, N_("written by this station (version {version}) but not in the "
                                                     "store"), version=row.version_id)
                continue
            raise _failure(target, exc) from exc
        if found:
            problems.append(found)
        if latest != row.version_id:
            problem(Kind.BACKUP_OVERWRITTEN, row, N_("a later version ({found}) was put over the one this station "
                                                     "wrote; that one is still there, locked"), row.version_id, latest)
        locked = answer.get("ObjectLockRetainUntilDate")
        if row.locked_until is not None and (answer.get("ObjectLockMode") != "COMPLIANCE" or locked is None
                                             or locked < row.locked_until - timedelta(seconds=1)):
            problem(Kind.BACKUP_LOCK, row, N_("locked {mode} until {found}; the station set COMPLIANCE until "
                                              "{expected}"), str(row.locked_until), str(locked),
                    mode=answer.get("ObjectLockMode") or "-")
    return problems
