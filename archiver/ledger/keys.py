"""The station's Ed25519 key: signs every custody event and every export.

`<data_dir>/keys/station.key` (PKCS#8 PEM, mode 0600: readable only by the service user) and
`<data_dir>/keys/station.pub` (the raw public key, base64). Created by `archiver init`.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from archiver.errors import DataDirError
from archiver.fs import write_atomic

KEY_DIR = "keys"


@dataclass(frozen=True)
class PublicKey:
    raw: bytes

    @property
    def text(self) -> str:
        return "ed25519:" + base64.b64encode(self.raw).decode()

    @property
    def fingerprint(self) -> str:
        return "SHA256:" + hashlib.sha256(self.raw).hexdigest()

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, data)
        except (InvalidSignature, ValueError):
            return False
        return True

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        body = text.strip().removeprefix("ed25519:")
        try:
            raw = base64.b64decode(body, validate=True)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise DataDirError(f"not an Ed25519 public key: {text.strip()[:60]!r} (expected ed25519:<base64>)")
        return cls(raw)


class StationKey:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = PublicKey(private.public_key().public_bytes(serialization.Encoding.Raw,
                                                                   serialization.PublicFormat.Raw))

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)


def key_paths(data_dir: Path) -> tuple[Path, Path]:
    folder = data_dir / KEY_DIR
    return folder / "station.key", folder / "station.pub"


def ensure_station_key(data_dir: Path) -> bool:
    """Create the station key pair if there is none. Returns True when it was created."""
    private_path, public_path = key_paths(data_dir)
    if private_path.exists():
        return False
    private_path.parent.mkdir(mode=0o700, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_atomic(private_path, pem, mode=0o600)
    write_atomic(public_path, (StationKey(key).public.text + "\n").encode(), mode=0o644)
    return True


def load_station_key(data_dir: Path) -> StationKey:
    private_path, _ = key_paths(data_dir)
    try:
        key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    except FileNotFoundError:
        raise DataDirError(f"no station key at {private_path}: run 'archiver init'") from None
    except PermissionError:
        raise DataDirError(f"the station key {private_path} is readable only by the service user: run archiver as "
                           "that user (e.g. sudo -u archiver archiver ...)") from None
    except (OSError, ValueError) as exc:
        raise DataDirError(f"cannot read the station key {private_path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise DataDirError(f"{private_path} is not an Ed25519 key")
    return StationKey(key)


def load_public_key(data_dir: Path) -> PublicKey:
    _, public_path = key_paths(data_dir)
    try:
        return PublicKey.parse(public_path.read_text())
    except FileNotFoundError:
        raise DataDirError(f"no station public key at {public_path}: run 'archiver init'") from None


def private_key_mode(data_dir: Path) -> int:
    return os.stat(key_paths(data_dir)[0]).st_mode & 0o777
