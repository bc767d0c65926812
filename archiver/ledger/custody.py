"""The custody log: `<data_dir>/custody.jsonl`, append-only, hash-chained, every line signed.

One JSON object per line, keys sorted, no spaces:
    {"action", "actor", "details", "prev", "seq", "sig", "subject", "time"}
`actor` is the person: {"user", "uid", "role"} (the role the station service let them act in, or
"root"/"service" for a command run directly); logs written before version 0.2 hold a user name.
`prev` is the SHA-256 (hex) of the previous line's bytes (64 zeros for the first line); `sig` is the
station key's Ed25519 signature (base64) over the same object without `sig`, serialised the same
way. Anyone with the public key can check the log with a few lines of code and no database.
The catalog keeps the last sequence number and line hash, so a cut-off tail is noticed too.
"""

from __future__ import annotations

import base64
import copy
import errno
import hashlib
import json
import os
import pwd
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from archiver.catalog import Catalog, CustodyHead
from archiver.catalog.db import commit
from archiver.errors import ArchiverError, ArchiveStorageError, UnsafePathError, storage_error
from archiver.fs.appendlog import appending
from archiver.i18n import N_, _
from archiver.ledger.keys import PublicKey, StationKey, canonical
from archiver.ledger.purges import PurgeProof
from archiver.problems import MADE, Finding, Kind

LOG_NAME = "custody.jsonl"
GENESIS = "0" * 64


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str


@dataclass
class _Pending:
    """An event waiting to be written, and what became of it."""

    actor: dict[str, Any]
    action: str
    subject: dict[str, Any]
    details: dict[str, Any]
    head: Head | None = None
    error: ArchiverError | None = None


@dataclass
class _Writer:
    """What every view of one log shares: the write lock, the events waiting for it (under a lock of their
    own, so they queue up while a write is syncing), the newest head recorded in the catalog."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    queue: threading.Lock = field(default_factory=threading.Lock)
    waiting: list[_Pending] = field(default_factory=list)
    recorded: int = 0


class CustodyLog:
    """Appends signed events; safe across threads (a lock) and processes (flock on the file).

    Group commit: whoever holds the lock writes every event waiting for it and makes them durable with
    one fsync, so many people served at once cost the log (and an ingest waiting to log) one sync, not
    one each. No event is acknowledged before it is on the disk.
    """

    def __init__(self, data_dir: Path, key: StationKey, catalog: Catalog, actor: dict[str, Any]) -> None:
        self.path = data_dir / LOG_NAME
        self._key = key
        self._catalog = catalog
        self._writer = _Writer()
        self.actor = actor

    def as_actor(self, actor: dict[str, Any]) -> CustodyLog:
        """The same log (one lock, one key), its events naming `actor`: a person served by the station."""
        view = copy.copy(self)
        view.actor = actor
        return view

    @property
    def public_key(self) -> PublicKey:
        return self._key.public

    def append(self, action: str, subject: dict[str, Any], details: dict[str, Any] | None = None,
               session: Session | None = None) -> Head:
        """Append one signed event. With `session`, the catalog's head is updated in that transaction
        (committed with the change the event records); otherwise in a transaction of its own, unless a
        later head is recorded already."""
        return self.append_many([(action, subject, details or {})], session)[-1]

    def append_many(self, events: list[tuple[str, dict[str, Any], dict[str, Any]]],
                    session: Session | None = None) -> list[Head]:
        """Append (action, subject, details) events, in order and made durable together; as `append`."""
        writer = self._writer
        mine = [_Pending(self.actor, action, subject, details) for action, subject, details in events]
        with writer.queue:
            writer.waiting.extend(mine)
        with writer.lock:  # the first to get it writes every event queued by then, these or not
            if mine[-1].head is None and mine[-1].error is None:
                with writer.queue:
                    batch, writer.waiting = writer.waiting, []
                self._write(batch)
        for pending in mine:
            if pending.error is not None:
                raise pending.error
        heads = [pending.head for pending in mine]
        head = heads[-1]
        assert head is not None
        # The head is recorded outside the lock: waiting for the catalog while holding it would deadlock
        # with an ingest whose open transaction waits for the lock to log its own event.
        if session is not None:
            _record(session, head)
        elif head.seq > writer.recorded:
            with self._catalog.session() as own:
                _record(own, head)
                commit(own)
            writer.recorded = max(writer.recorded, head.seq)
        return heads

    def _write(self, batch: list[_Pending]) -> None:
        try:
            with appending(self.path.parent, self.path.name, lock=True) as fh:
                seq, prev = _last(fh)
                lines, heads = [], []
                for item in batch:
                    seq += 1
                    event = {"seq": seq, "time": datetime.now(UTC).isoformat(timespec="microseconds"),
                             "actor": item.actor, "action": item.action, "subject": item.subject,
                             "details": item.details, "prev": prev}
                    event["sig"] = base64.b64encode(self._key.sign(canonical(event))).decode()
                    line = canonical(event)
                    prev = hashlib.sha256(line).hexdigest()
                    lines.append(line + b"\n")
                    heads.append(Head(seq, prev))
                fh.write(b"".join(lines))
        except (OSError, ArchiverError) as exc:
            error = exc if isinstance(exc, ArchiverError) else storage_error(exc, str(self.path.parent))
            for item in batch:
                item.error = error
            return
        for item, head in zip(batch, heads, strict=True):
            item.head = head


def open_log(path: Path) -> BinaryIO:
    """The log to read, never through a symlink (a planted one would have it read another file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePathError(_("the custody log {path} is a symlink: refusing to follow it; remove it (and "
                                    "find out who put it there), then restore the log from a backup").format(
                                    path=path)) from None
        raise
    return os.fdopen(fd, "rb")


def _record(session: Session, head: Head) -> None:
    row = session.get(CustodyHead, 1)
    if row is None:
        session.add(CustodyHead(id=1, seq=head.seq, hash=head.hash))
    elif row.seq < head.seq:
        row.seq, row.hash = head.seq, head.hash


def local_actor(service_user: str) -> dict[str, Any]:
    """Who runs this process, for the events of a command run directly (by root or the service user)."""
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return {"user": name, "uid": uid, "role": "root" if uid == 0 else "service" if name == service_user else None}


def _last(fh) -> tuple[int, str]:
    """(sequence number, hash) of the last complete line, reading backwards from the end."""
    fh.seek(0, os.SEEK_END)
    end = fh.tell()
    if end == 0:
        return 0, GENESIS
    size = 4096
    while True:
        start = max(0, end - size)
        fh.seek(start)
        tail = fh.read(end - start)
        body = tail[:-1] if tail.endswith(b"\n") else tail
        cut = body.rfind(b"\n")
        if cut >= 0 or start == 0:
            line = body[cut + 1:]
            break
        size *= 4
    try:
        seq = int(json.loads(line)["seq"])
    except (ValueError, KeyError, TypeError):
        raise ArchiveStorageError(_("the last line of the custody log {name} is not an event: run 'archiver "
                                    "verify' and restore the log from a backup").format(
                                    name=fh.name)) from None
    return seq, hashlib.sha256(line).hexdigest()


def log_head(path: Path) -> Head | None:
    """The log's last line as it is on disk (read from the end: cheap on any size)."""
    try:
        with open_log(path) as fh:
            seq, digest = _last(fh)
    except FileNotFoundError:
        return None
    return Head(seq, digest) if seq else None


def catalog_head(catalog: Catalog) -> Head | None:
    with catalog.reading() as session:
        row = session.scalar(select(CustodyHead).where(CustodyHead.id == 1))
        return None if row is None else Head(row.seq, row.hash)


# -- checking ------------------------------------------------------------------------------
@dataclass
class LogCheck:
    problems: list[Finding] = field(default_factory=list)
    events: int = 0
    head: Head | None = None  # the log's own last line
    ingested: dict[str, int] = field(default_factory=dict)  # sha256 of each recording ingested -> its first event
    purged: set[str] = field(default_factory=set)  # sha256 of each recording a signed `purge` event removed


def events(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line bytes without the newline) of every line in the log."""
    if not os.path.lexists(path):
        return
    with open_log(path) as fh:
        for number, raw in enumerate(fh, 1):
            yield number, raw.rstrip(b"\n")


def actor_name(event: dict[str, Any]) -> str:
    """The user an event names, whether its actor is a person ({"user", ...}) or an older plain name."""
    actor = event.get("actor")
    return str(actor.get("user")) if isinstance(actor, dict) else str(actor)


def trail(path: Path, user: str | None = None, since: datetime | None = None,
          action: str | None = None) -> Iterator[dict[str, Any]]:
    """The events of the log, oldest first, narrowed to one user, a start time and an action. Lines that
    do not parse are skipped here: `archiver verify` is what reports them."""
    for _number, raw in events(path):
        try:
            event = json.loads(raw)
            when = datetime.fromisoformat(event["time"])
        except (ValueError, KeyError, TypeError):
            continue
        if ((user is None or actor_name(event) == user) and (since is None or when >= since)
                and (action is None or event.get("action") == action)):
            yield event


def check_log(path: Path, key: PublicKey, anchors: Iterable[tuple[str, Head]] = ()) -> LogCheck:
    """Check every line: sequence, chain, signature; and the tail against every anchor given as
    (where it was kept, head): the catalog's head, the heads published on backup targets, a head an
    auditor wrote down. A log shorter than an anchor was cut; another line at its seq, rewritten."""
    result = LogCheck()
    prev_hash, expected = GENESIS, 1
    anchors = [(source, head) for source, head in anchors if head is not None]
    wanted = {head.seq for _source, head in anchors}
    hashes: dict[int, str] = {}  # only at the anchors' sequence numbers: memory stays flat
    proof = PurgeProof()  # what the lines before each purge prove: a request, a second person, no hold

    def problem(kind: Kind, at: int | str, text: str, expected: Any = None, **values: Any) -> None:
        result.problems.append(Finding(kind, LOG_NAME, text, values, expected, None if expected is None else at,
                                       seq=at))

    for number, line in events(path):
        digest = hashlib.sha256(line).hexdigest()
        try:
            event = json.loads(line)
            seq = int(event["seq"])
            signature = base64.b64decode(event.pop("sig"), validate=True)
        except (ValueError, KeyError, TypeError, AttributeError):
            problem(Kind.CUSTODY_CHAIN, f"? (line {number})", N_("not a well-formed custody event"))
            prev_hash, expected = digest, expected + 1
            continue
        if seq != expected:
            problem(Kind.CUSTODY_CHAIN, seq, N_("expected sequence number {expected} (line {number}): a line was "
                                                "removed, inserted or moved"), expected, number=number)
        if event.get("prev") != prev_hash:
            problem(Kind.CUSTODY_CHAIN, seq, N_("does not chain to the line before it (that line was changed, "
                                                "removed or moved)"))
        if not key.verify(signature, canonical(event)):
            problem(Kind.CUSTODY_SIGNATURE, seq, N_("signature does not verify with the station key"))
        if event.get("action") == "ingest" and isinstance(event.get("subject"), dict):
            result.ingested.setdefault(str(event["subject"].get("sha256")), seq)
        if event.get("action") == "purge" and isinstance(event.get("subject"), dict):
            result.purged.add(str(event["subject"].get("sha256")))
        proof.see(seq, event, actor_name(event))
        if seq in wanted:
            hashes[seq] = digest
        prev_hash, expected = digest, max(expected, seq) + 1
        result.events += 1
        result.head = Head(seq, digest)
    for seq, detail in proof.problems:
        problem(Kind.CUSTODY_UNAPPROVED_PURGE, seq, MADE, detail=detail)
    last = result.head.seq if result.head else 0
    for source, anchor in anchors:
        if last < anchor.seq:
            problem(Kind.CUSTODY_TRUNCATED, anchor.seq, N_("{source} holds the head at sequence {seq} but the log "
                                                           "ends at {last}: lines were cut off"),
                    source=source, seq=anchor.seq, last=last)
        elif hashes.get(anchor.seq) != anchor.hash:
            problem(Kind.CUSTODY_CHAIN, anchor.seq, N_("differs from the line {source} holds as the head "
                                                       "(rewritten)"), source=source)
    return result
