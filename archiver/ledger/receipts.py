"""The centre's receipts: its signed word that it holds a station's custody log up to (seq, hash). One canonical
JSON object: {"centre": "ed25519:...", "hash", "seq", "station", "time", "sig"}. A station keeps them, and
`verify` there checks the log against the latest one as against `--head`: a log rewritten after a sync is
caught at home as well as at the centre."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from archiver.ledger.custody import Head
from archiver.ledger.keys import PublicKey, StationKey, canonical, sign_record, signed_by


def make_receipt(key: StationKey, station: str, head: Head, when: datetime) -> str:
    """The centre's signed word that it holds `station`'s log up to `head`, as the line kept."""
    return canonical(sign_record(key, {"centre": key.public.text, "hash": head.hash, "seq": head.seq,
                                       "station": station,
                                       "time": when.astimezone(UTC).isoformat(timespec="seconds")})).decode()


def receipt_head(text: str, station: str, centre: PublicKey | None) -> Head | None:
    """The head a receipt for `station` states, if it is well formed and (given the centre's key) signed by it;
    None otherwise."""
    try:
        record = json.loads(text)
        head = Head(int(record["seq"]), str(record["hash"]))
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(record, dict) or record.get("station") != station:
        return None
    if centre is not None and (record.get("centre") != centre.text or not signed_by(record, centre)):
        return None
    return head
