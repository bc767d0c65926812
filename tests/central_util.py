"""Helpers for the county tests: stations and a centre as config files over real data dirs, and signed
custody lines made with a station's own key (to extend a log, or to forge one with another key)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from runner import ARCHIVER

from archiver.ledger.custody import LOG_NAME
from archiver.ledger.keys import StationKey, canonical, load_station_key


def station_config(tmp_path: Path, name: str, central_url: str = "", centre_key: str = "",
                   wait_s: float = 20) -> Path:
    """A station's config; without `central_url` it syncs nowhere (yet)."""
    path = tmp_path / f"{name}.toml"
    central = (f'[central]\nurl = "{central_url}"\nkey = "{centre_key}"\ninterval_s = 0.5\nmax_backoff_s = 2\n'
               f'wait_s = {wait_s}\n') if central_url else ""
    path.write_text(f'data_dir = "{name}"\n[station]\nid = "{name}"\n{central}')
    return path


def registered(output: str) -> tuple[str, str]:
    """(the station's own login URL, the centre's key) from what `archiver stations add` printed."""
    url = re.search(r'^  url = "([^"]+)"$', output, re.M)
    key = re.search(r'^  key = "([^"]+)"$', output, re.M)
    assert url and key, output
    return url.group(1), key.group(1)


class CentreProcess:
    """The centre's own process (`archiver central`), a real one, logging to a file."""

    def __init__(self, config: Path, data_dir: Path) -> None:
        self.log_path = data_dir.parent / "centre.log"
        env = {**os.environ, "ARCHIVER_CONFIG": str(config), "ARCHIVER_DATA_DIR": str(data_dir)}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([str(ARCHIVER), "central"], env=env, stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while "centre ready" not in self.log() and time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            time.sleep(0.05)
        assert "centre ready" in self.log(), self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout=30)


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
