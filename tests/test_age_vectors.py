"""The community age test vectors (C2SP CCTV) against our age implementation.

scripts/test fetches them (npm package cctv-age, version pinned in scripts/lib/setup.sh) and points
ARCHIVER_AGE_VECTORS at one file per vector: a header of `key: value` lines, a blank line, the file.
Every vector our X25519-only, unarmored decryption applies to must pass: success vectors give the
payload their header names, failure vectors fail with AgeError, never another exception.
Armored, passphrase (scrypt) and post-quantum (ML-KEM) vectors test features we do not implement.
"""

from __future__ import annotations

import hashlib
import io
import os
import zlib
from pathlib import Path

import pytest

from archiver.backup.age import AgeError, decrypt, read_identities

VECTORS = Path(os.environ.get("ARCHIVER_AGE_VECTORS", "/nonexistent"))


def _parse(path: Path) -> tuple[dict[str, str], list[str], bytes]:
    head, _, body = path.read_bytes().partition(b"\n\n")
    meta, identities = {}, []
    for line in head.decode().splitlines():
        key, _, value = line.partition(": ")
        if key == "identity":
            identities.append(value)
        else:
            meta[key] = value
    if meta.get("compressed") == "zlib":
        body = zlib.decompress(body)
    return meta, identities, body


def _applicable() -> list[Path]:
    if not VECTORS.is_dir():
        return []
    chosen = []
    for path in sorted(VECTORS.iterdir()):
        if path.name.startswith("."):
            continue
        meta, identities, _ = _parse(path)
        if meta.get("armored") == "yes" or "passphrase" in meta:
            continue
        if all(i.startswith("AGE-SECRET-KEY-1") for i in identities):
            chosen.append(path)
    return chosen


APPLICABLE = _applicable()


def test_the_vectors_are_there():
    assert VECTORS.is_dir(), "no age test vectors: run the suite through scripts/test, which fetches them"
    assert len(APPLICABLE) >= 60, f"only {len(APPLICABLE)} X25519 vectors found in {VECTORS}"
    kinds = {_parse(p)[0]["expect"] for p in APPLICABLE}
    assert {"success", "header failure", "payload failure", "HMAC failure", "no match"} <= kinds


@pytest.mark.parametrize("path", APPLICABLE, ids=[p.name for p in APPLICABLE])
def test_x25519_vector(path: Path):
    meta, identities, body = _parse(path)
    out = io.BytesIO()
    if meta["expect"] == "success":
        decrypt(io.BytesIO(body), out, read_identities("\n".join(identities)))
        assert hashlib.sha256(out.getvalue()).hexdigest() == meta["payload"]
    else:
        with pytest.raises(AgeError):
            decrypt(io.BytesIO(body), out, read_identities("\n".join(identities)) if identities else [])
