"""What `verify` and `backup verify` can find: one vocabulary, each kind with what it means.

Kinds are strings in JSON (`{"kind": ..., "path": ..., "detail": ...}`); a problem in the custody
log always has a kind starting with `custody_` and the sequence number at the start of its detail.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    # the archive
    MISSING = "missing"  # a catalogued recording is not in the archive
    UNREADABLE = "unreadable"  # it is there but cannot be read
    MISMATCH = "mismatch"  # its bytes no longer hash as catalogued
    MANIFEST = "manifest"  # a day manifest misses, adds or mis-states a file
    UNEXPECTED = "unexpected"  # a file or symlink in the archive that the catalog does not know
    # the custody log
    CUSTODY_CHAIN = "custody_chain"  # a line removed, inserted, moved or changed; or another line at an anchor
    CUSTODY_SIGNATURE = "custody_signature"  # a line not signed by the station key
    CUSTODY_TRUNCATED = "custody_truncated"  # the log ends before an anchor (catalog, target, --head)
    CUSTODY_ANCHOR = "custody_anchor"  # a head on a backup target that is unreadable or not the station's
    CUSTODY_MISSING_EVENT = "custody_missing_event"  # a recording without its ingest event
    CUSTODY_ORPHAN_EVENT = "custody_orphan_event"  # an ingest event without its recording (deleted evidence)
    CUSTODY_UNAPPROVED_PURGE = "custody_unapproved_purge"  # a purge event the log does not prove two people signed
    # backup targets
    BACKUP_TARGET = "backup_target"  # a configured target is not there
    BACKUP_MANIFEST = "backup_manifest"  # a torn or malformed manifest line, or one that disagrees with the catalog
    BACKUP_MANIFEST_SIGNATURE = "backup_manifest_signature"  # a manifest line not signed by the station key
    BACKUP_UNKNOWN = "backup_unknown"  # a manifest line for an object the station never wrote
    BACKUP_UNLISTED = "backup_unlisted"  # an object the station wrote is missing from the manifest
    BACKUP_MISSING = "backup_missing"  # an object the station wrote is not on the target
    BACKUP_UNSAFE = "backup_unsafe"  # a symlink where an object should be
    BACKUP_SIZE = "backup_size"  # an object of another size than written
    BACKUP_MISMATCH = "backup_mismatch"  # an object that does not hash as written (bit rot, substitution)
    BACKUP_DECRYPT = "backup_decrypt"  # with --identity: an object that does not decrypt
    BACKUP_PLAINTEXT = "backup_plaintext"  # with --identity: an object that decrypts to other bytes
    BACKUP_OVERWRITTEN = "backup_overwritten"  # S3: a later version was put over the one the station wrote
    BACKUP_LOCK = "backup_lock"  # S3: the version is not locked (COMPLIANCE) as long as the station set
