"""Anchors: the custody log's head kept outside the data dir, so a log cut short and a catalog head
set to match are still caught.

Each backup run writes the head, signed by the station key, to `custody-head.json` on every target;
an auditor may also write a head down (`archiver status` shows it) and give it to `verify --head`.
A log that is shorter than an anchor, or holds another line at its sequence number, was cut or
rewritten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from archiver.errors import ArchiverError
from archiver.fs import Folder
from archiver.i18n import _
from archiver.ledger.custody import Head, log_head
from archiver.ledger.keys import PublicKey, StationKey, sign_record, signed_by

HEAD_ANCHOR = "custody-head.json"


@dataclass(frozen=True)
class Anchor:
    source: str  # where the head was found: "the catalog", "backup target /mnt/x", "--head"
    head: Head


def publish_head(log: Path, key: StationKey, target: Path, group: int | None = None) -> Head | None:
    """The custody log's head, signed, on a backup target (replaced atomically)."""
    head = log_head(log)
    if head is None:
        return None
    anchor = sign_record(key, {"station_key": key.public.text, "seq": head.seq, "hash": head.hash,
                               "time": datetime.now(UTC).isoformat(timespec="seconds")})
    with Folder.open(target) as folder:
        folder.write_file(HEAD_ANCHOR, json.dumps(anchor, sort_keys=True).encode() + b"\n", group=group)
    return head


def read_anchor(target: Path, key: PublicKey) -> tuple[Head | None, str | None]:
    """(the head a target holds, None) if it is there and signed by `key`; (None, why not) otherwise;
    (None, None) if the target holds none."""
    try:
        with Folder.open(target) as folder:
            anchor = json.loads(folder.read_bytes(HEAD_ANCHOR))
    except FileNotFoundError:
        return None, None
    except (OSError, ArchiverError, ValueError) as exc:
        return None, _("unreadable ({error})").format(error=exc)
    if not signed_by(anchor, key) or not isinstance(anchor.get("seq"), int) or not isinstance(anchor.get("hash"), str):
        return None, _("not signed by this station's key")
    return Head(anchor["seq"], anchor["hash"]), None


def parse_head(text: str) -> Head:
    """A head as an auditor wrote it down: SEQ:HASH (as `archiver status` prints it)."""
    seq, _sep, digest = text.strip().partition(":")
    if not seq.isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
        raise ArchiverError(_("--head {text!r} is not SEQ:HASH (e.g. 1042:3fa9...: the sequence number and the "
                              "64-hex-digit line hash that 'archiver status' shows)").format(
                              text=text))
    return Head(int(seq), digest.lower())
