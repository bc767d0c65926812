"""An encrypted object as a stream: hashing what goes through, where it goes on a target, and checking one
read back against what the station recorded when it wrote it (disk and S3 targets alike)."""

from __future__ import annotations

import hashlib
from typing import BinaryIO

from archiver.backup.age import AgeError, Identity, decrypt
from archiver.catalog import BackupObject
from archiver.i18n import N_
from archiver.problems import MADE, Finding, Kind


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
