"""What `verify`, `backup verify` and the centre's checks can find: one vocabulary of kinds, each with what it
means, and one typed finding that every checker returns.

A finding says what kind of problem, about what (a path, an object, the custody log, a station), and, where
there is one, the value that was expected and the value found; its message is made from them when it is shown,
in the reader's language. In JSON: `{"kind", "path", "detail"}`, plus `expected` and `found` when known, plus
`station` and `seq` for the centre's. A problem in the custody log has a kind starting with `custody_` and its
sequence number at the start of its detail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


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
    # the centre's checks of the events a station handed in
    GAP = "gap"  # a sequence number missing from a station's stored events
    FORK = "fork"  # another line at a sequence number the centre holds: the station's log was rewritten
    SIGNATURE = "signature"  # a stored event that does not chain or verify with the station's key
    CHANGED = "changed"  # a stored line changed since received, or a catalog fact other than its signed event's
    HEAD = "head"  # the centre's head for a station is not its last stored event
    MALFORMED = "malformed"  # not a well-formed custody event, or one the catalog cannot hold
    FOREIGN = "foreign"  # an event handed in under another station's login
    UNSIGNED = "unsigned"  # a recording at the centre without its station's ingest event
    TRUNCATED = "truncated"  # the station's log ends before what the centre holds


MADE = "{detail}"  # the template of a finding whose message another part made already (`detail=` it)


@dataclass(frozen=True)
class Finding:
    """One problem found. `text` is the message's template (marked with N_ where it is written), formatted with
    `values`, `expected` and `found` when the finding is shown (`message`, `to_json`)."""

    kind: Kind
    subject: str | None
    text: str
    values: dict[str, Any] = field(default_factory=dict)
    expected: Any = None
    found: Any = None
    station: str | None = None
    seq: int | str | None = None  # the event's sequence number ("? (line N)" for a line that is no event)

    def message(self) -> str:
        from archiver.i18n import _

        shown = _(self.text).format(**{"expected": self.expected, "found": self.found, **self.values})
        return shown if self.seq is None or not self.kind.startswith("custody_") else f"seq {self.seq}: {shown}"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": str(self.kind), "path": self.subject, "detail": self.message()}
        if self.expected is not None or self.found is not None:
            data.update(expected=self.expected, found=self.found)
        return data

    def to_station_json(self) -> dict[str, Any]:
        """The centre's shape: which station and which of its events, always named (None where none)."""
        return {"station": self.station, "seq": self.seq, **self.to_json()}
