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
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from archiver.backup.age import Identity
from archiver.backup.objects import Lock, Placed, check_stream
from archiver.catalog import BackupObject
from archiver.config import Config
from archiver.errors import BackupTargetError
from archiver.i18n import N_, _
from archiver.problems import Finding, Kind

ENTRY_META = "archiver-entry"  # the signed manifest line, kept with the object as user metadata
_GONE = ("NoSuchKey", "NoSuchVersion", "404")


class S3TargetError(BackupTargetError):
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


class S3Store:
    """An S3 bucket with Object Lock as a backup target (`Target`): recordings only, each version locked
    (COMPLIANCE) as long as it must be kept, so nobody, the station included, can change it; no snapshots.
    The signed entry of each object travels with it as user metadata."""

    locks = True

    def __init__(self, cfg: Config, url: str) -> None:
        self.cfg, self.name, self.where = cfg, url, S3Target(url)
        self._s3 = None

    @property
    def s3(self):
        if self._s3 is None:
            self._s3 = client(self.cfg)
        return self._s3

    def prepare(self) -> None:
        """Nothing to sweep: a version is there whole or not at all."""

    def present(self) -> bool | None:
        return None  # known only by reading it: see backup verify

    def put(self, name: str, fill: Callable[[BinaryIO], dict[str, Any]], lock: Lock | None = None) -> Placed:
        """Encrypted to a private temp file (memory stays flat), then one PUT with the lock and the signed entry."""
        locking = {} if lock is None else {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": lock.until,
                                           "ObjectLockLegalHoldStatus": "ON" if lock.hold else "OFF"}
        with tempfile.TemporaryFile(dir=self.cfg.data_dir) as spool:
            entry = fill(spool)
            spool.flush()
            spool.seek(0)
            # the county (the bucket's owner) owns what a station writes: its auditors read it, its purge deletes
            answer = self._call(self.s3.put_object, Key=self.where.key(name), Body=spool, ContentLength=entry["size"],
                                ACL="bucket-owner-full-control", ChecksumAlgorithm="SHA256",
                                Metadata={ENTRY_META: json.dumps(entry, sort_keys=True)}, **locking)
        version = answer.get("VersionId")
        if not version:
            raise S3TargetError(_("backup target {target} gave no version for {name}: the bucket needs versioning "
                                  "and Object Lock enabled (create it with Object Lock)").format(target=self.name,
                                                                                                  name=name))
        return Placed(name, entry, version, lock.until if lock else None, lock.hold if lock else None)

    def list(self, name: str | None = None) -> list[Placed]:
        """Every version under the prefix (entries unread), or each version of `name` with its entry."""
        prefix = self.where.key(name if name is not None else "")
        found = []
        try:  # the pages come as they are read
            versions = [v for page in self.s3.get_paginator("list_object_versions").paginate(
                Bucket=self.where.bucket, Prefix=prefix) for v in page.get("Versions", [])]
        except Exception as exc:
            raise _failure(self.where, exc) from exc
        for version in versions:
            if name is None:
                found.append(Placed(version["Key"][len(self.where.key("")):], None, version["VersionId"]))
            elif version["Key"] == prefix:
                found.append(self._placed(name, version["VersionId"]))
        return found

    def _placed(self, name: str, version: str) -> Placed:
        head = self._call(self.s3.head_object, Key=self.where.key(name), VersionId=version)
        try:
            entry = json.loads(head.get("Metadata", {}).get(ENTRY_META, "null"))
        except ValueError:
            entry = None
        return Placed(name, entry if isinstance(entry, dict) else None, version,
                      head.get("ObjectLockRetainUntilDate"), head.get("ObjectLockLegalHoldStatus") == "ON")

    def open(self, name: str, version: str | None = None) -> BinaryIO:
        try:
            return self.s3.get_object(Bucket=self.where.bucket, Key=self.where.key(name),
                                      **({"VersionId": version} if version else {}))["Body"]
        except Exception as exc:
            if _code(exc) in _GONE:
                raise FileNotFoundError(f"{self.name}/{name}") from exc
            raise _failure(self.where, exc) from exc

    def check(self, row: BackupObject, identities: list[Identity] | None) -> list[Finding]:
        """The version the station wrote read back (streamed): size and ciphertext hash as recorded, with
        identities decrypted and compared; the lock at least as long as recorded; no later version on top."""
        subject, key = f"{self.name}/{row.name}", self.where.key(row.name)
        problems: list[Finding] = []
        try:
            answer = self.s3.get_object(Bucket=self.where.bucket, Key=key, VersionId=row.version_id)
            found = check_stream(answer["Body"], row, identities, subject)
            # listed, not read: a version someone else put on top may not even be readable by us
            listed = self.s3.list_object_versions(Bucket=self.where.bucket, Prefix=key).get("Versions", [])
            latest = next((v["VersionId"] for v in listed if v["Key"] == key and v.get("IsLatest")), None)
        except Exception as exc:
            if _code(exc) in _GONE:
                return [Finding(Kind.BACKUP_MISSING, subject, N_("written by this station (version {version}) but "
                                                                 "not in the store"), {"version": row.version_id})]
            raise _failure(self.where, exc) from exc
        if found:
            problems.append(found)
        if latest != row.version_id:
            problems.append(Finding(Kind.BACKUP_OVERWRITTEN, subject, N_(
                "a later version ({found}) was put over the one this station wrote; that one is still there, locked"),
                {}, row.version_id, latest))
        locked = answer.get("ObjectLockRetainUntilDate")
        if row.locked_until is not None and (answer.get("ObjectLockMode") != "COMPLIANCE" or locked is None
                                             or locked < row.locked_until - timedelta(seconds=1)):
            problems.append(Finding(Kind.BACKUP_LOCK, subject, N_(
                "locked {mode} until {found}; the station set COMPLIANCE until {expected}"),
                {"mode": answer.get("ObjectLockMode") or "-"}, str(row.locked_until), str(locked)))
        return problems

    def audit(self, rows: list[BackupObject]) -> list[Finding]:
        return []  # each version is checked by itself: a version put over one the station wrote, by `check`

    def drop(self, row: BackupObject, entry: dict[str, Any]) -> bool:
        """The version deleted; False where the store refuses (its lock runs on, a legal hold, credentials that
        may not delete)."""
        try:
            self.s3.delete_object(Bucket=self.where.bucket, Key=self.where.key(row.name), VersionId=row.version_id)
        except Exception as exc:
            if _refused(exc):
                return False
            raise _failure(self.where, exc) from exc
        return True

    def lock(self, row: BackupObject, until: datetime | None, hold: bool | None) -> None:
        key = self.where.key(row.name)
        if until is not None:
            self._call(self.s3.put_object_retention, Key=key, VersionId=row.version_id,
                       Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until})
        if hold is not None:
            self._call(self.s3.put_object_legal_hold, Key=key, VersionId=row.version_id,
                       LegalHold={"Status": "ON" if hold else "OFF"})

    def _call(self, method, **kwargs: Any) -> Any:
        """One request to the bucket; botocore's errors (connection, credentials, the bucket's refusal) as one."""
        try:
            return method(Bucket=self.where.bucket, **kwargs)
        except Exception as exc:
            raise _failure(self.where, exc) from exc
