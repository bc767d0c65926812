"""Helpers for the county tests: stations and a centre as config files over real data dirs, and signed
custody lines made with a station's own key (to extend a log, or to forge one with another key)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from archiver.ledger.custody import LOG_NAME
from archiver.ledger.keys import StationKey, canonical, load_station_key


def station_config(tmp_path: Path, name: str, central_url: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'data_dir = "{name}"\n[station]\nid = "{name}"\n[central]\nurl = "{central_url}"\n'
                    'interval_s = 0.5\nmax_backoff_s = 2\n')
    return path


def centre_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "centre.toml"
    path.write_text(f'data_dir = "centre"\n[catalog]\nurl = "{url}"\n')
    return path


def station_key(data_dir: Path) -> StationKey:
    return load_station_key(data_dir, {0, os.geteuid()})


def other_key() -> StationKey:
    return StationKey(Ed25519PrivateKey.generate())


def log_lines(data_dir: Path) -> list[bytes]:
    return (data_dir / LOG_NAME).read_bytes().splitlines()


def signed_line(key: StationKey, seq: int, prev: bytes | str, action: str = "note", **details) -> bytes:
    """One custody line at `seq`, chained to `prev` (the previous line, or its hash), signed by `key`."""
    prev_hash = prev if isinstance(prev, str) else hashlib.sha256(prev).hexdigest()
    event = {"seq": seq, "time": datetime.now(UTC).isoformat(timespec="microseconds"),
             "actor": {"user": "test", "uid": 0, "role": "root"}, "action": action,
             "subject": {"test": True}, "details": details, "prev": prev_hash}
    event["sig"] = base64.b64encode(key.sign(canonical(event))).decode()
    return canonical(event)


def extend_log(data_dir: Path, count: int, keep: int | None = None) -> list[bytes]:
    """Append `count` signed events (after the first `keep` lines, dropping the rest: a rewritten log)."""
    key = station_key(data_dir)
    lines = log_lines(data_dir)[:keep]
    for _i in range(count):
        lines.append(signed_line(key, len(lines) + 1, lines[-1], n=len(lines)))
    (data_dir / LOG_NAME).write_bytes(b"".join(line + b"\n" for line in lines))
    return lines


def seq_of(line: bytes) -> int:
    return json.loads(line)["seq"]
