"""An object as the targets see it: where it goes, how long it is locked, what a target holds, how it is written
(encrypted and hashed in one pass, with the entry the station signs for it) and checked when read back against
what the station recorded when it wrote it (disk and S3 targets alike)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

from archiver.backup.age import AgeError, Identity, Recipient, decrypt, encrypt
from archiver.catalog import BackupObject
from archiver.i18n import N_
from archiver.ledger.keys import StationKey, sign_record
from archiver.problems import MADE, Finding, Kind

REMOVED = "removed"  # the kind of a target's entry for an object the station took off it


@dataclass(frozen=True)
class Lock:
    """How long an object stays locked (COMPLIANCE) and whether a legal hold keeps it, on a target that locks."""

    until: datetime
    hold: bool
    rolling: bool = False  # kept for good as things stand: renewed by every run, never ends while that holds


@dataclass(frozen=True)
class Placed:
    """An object as a target holds it: its name there, the version (a store that keeps versions), its lock, and
    the signed entry the station kept with it (None where it is not read yet)."""

    name: str
    entry: dict[str, Any] | None = None
    version: str | None = None
    locked_until: datetime | None = None
    legal_hold: bool | None = None


class HashingWriter:
    """A write-only sink that hashes and counts what goes through it, passing it on to `fh` if given."""

    def __init__(self, fh: BinaryIO | None = None) -> None:
        self._fh, self.sha256, self.size = fh, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self._fh.write(data) if self._fh is not None else len(data)


class HashingReader:
    """Reads `fh`, hashing what was read: the ciphertext's hash comes out of the same pass as decryption."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh, self.sha256, self.size = fh, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def readline(self, limit: int = -1) -> bytes:
        data = self._fh.readline(limit)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def drain(self) -> str:
        while self.read(1 << 20):
            pass
        return self.sha256.hexdigest()


def object_name(sha256: str) -> str:
    return f"objects/{sha256[:2]}/{sha256}.age"


def check_stream(fh: BinaryIO, row: BackupObject, identities: list[Identity] | None,
                 subject: str = "") -> Finding | None:
    """Read `fh` (closed after) to its end: size and ciphertext hash as recorded; with identities, decrypted
    in the same pass and the plaintext hash compared. What differs, as a finding about `subject`."""
    with fh:
        reader = HashingReader(fh)
        plain = HashingWriter()
        failure = None
        if identities is not None:
            try:
                decrypt(reader, plain, identities)
            except AgeError as exc:
                failure = Finding(Kind.BACKUP_DECRYPT, subject, MADE, {"detail": str(exc)})
        digest = reader.drain()
    if reader.size != row.size:
        return Finding(Kind.BACKUP_SIZE, subject, N_("{found} bytes, the station wrote {expected}"),
                       expected=row.size, found=reader.size)
    if digest != row.ciphertext_sha256:
        return Finding(Kind.BACKUP_MISMATCH, subject, N_("ciphertext SHA-256 differs from what the station wrote "
                                                         "(bit rot or substitution)"),
                       expected=row.ciphertext_sha256, found=digest)
    if failure:
        return failure
    if identities is not None and plain.sha256.hexdigest() != row.plain_sha256:
        return Finding(Kind.BACKUP_PLAINTEXT, subject, N_("decrypts to other bytes than were backed up"),
                       expected=row.plain_sha256, found=plain.sha256.hexdigest())
    return None


class Rotten(Exception):
    """The archived file no longer hashes as catalogued: it is not backed up as that recording."""


def filler(key: StationKey, name: str, kind: str, src: BinaryIO, to: list[Recipient] | None,
           expect: str | None = None) -> Callable[[BinaryIO], dict[str, Any]]:
    """What `Target.put` calls to write an object: `src` encrypted to `to` (or, with no recipients, as it is),
    hashed in the same pass, and the entry the station signs for it. With `expect`, a plaintext of another hash
    raises Rotten, and the target keeps nothing."""

    def fill(out: BinaryIO) -> dict[str, Any]:
        with src:
            plain, sink = HashingReader(src), HashingWriter(out)
            if to is None:
                while sink.write(plain.read(1 << 20)):
                    pass
            else:
                encrypt(plain, sink, to)
        found = plain.sha256.hexdigest()
        if expect is not None and found != expect:
            raise Rotten(found)
        return sign_record(key, {"object": name, "kind": kind, "plain_sha256": found,
                                 "ciphertext_sha256": sink.sha256.hexdigest(), "size": sink.size,
                                 "time": datetime.now(UTC).isoformat(timespec="seconds")})

    return fill
