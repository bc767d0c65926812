"""The station's Ed25519 key: signs every custody event and every export.

`<data_dir>/keys/station.key` (PKCS#8 PEM, mode 0600: readable only by the service user) and
`<data_dir>/keys/station.pub` (the raw public key, base64). Created by `archiver init`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from archiver.errors import DataDirError, storage_error
from archiver.fs import Folder
from archiver.fs.owners import check_private
from archiver.i18n import _

KEY_DIR = "keys"


def canonical(obj: dict[str, Any]) -> bytes:
    """The bytes a record is signed over: JSON with sorted keys and no spaces."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_record(key: StationKey, record: dict[str, Any]) -> dict[str, Any]:
    """`record` with a `sig`: the station's Ed25519 signature over its canonical form without `sig`."""
    body = {k: v for k, v in record.items() if k != "sig"}
    return {**body, "sig": base64.b64encode(key.sign(canonical(body))).decode()}


def signed_by(record: Any, key: PublicKey) -> bool:
    """Whether `record` (a dict with a `sig`) was signed by `key`, as it is now."""
    if not isinstance(record, dict) or not isinstance(record.get("sig"), str):
        return False
    try:
        signature = base64.b64decode(record["sig"], validate=True)
    except ValueError:
        return False
    return key.verify(signature, canonical({k: v for k, v in record.items() if k != "sig"}))


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
            raise DataDirError(_("not an Ed25519 public key: {value!r} (expected ed25519:<base64>)").format(
                                 value=text.strip()[:60]))
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


def _keys_folder(data_dir: Path, create: bool = False) -> Folder:
    return Folder.open(data_dir, KEY_DIR, create=create)


def ensure_station_key(data_dir: Path) -> bool:
    """Create the station key pair if there is none. Returns True when it was created."""
    with _keys_folder(data_dir, create=True) as folder:
        if folder.exists("station.key"):
            return False
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            folder.write_file("station.key", pem, mode=0o600)
            folder.write_file("station.pub", (StationKey(key).public.text + "\n").encode(), mode=0o640)
        except OSError as exc:
            raise storage_error(exc, str(folder.path)) from exc
    return True


def load_station_key(data_dir: Path, owners: set[int]) -> StationKey:
    """The station key, refused if it is a symlink, belongs to someone else, or others could read it."""
    private_path, _public = key_paths(data_dir)
    try:
        with _keys_folder(data_dir) as folder:
            fd = folder.open_file("station.key")
            try:
                check_private(private_path, _("the station key"), owners, secret=True, st=os.fstat(fd))
                with os.fdopen(os.dup(fd), "rb") as fh:
                    pem = fh.read()
            finally:
                os.close(fd)
        key = serialization.load_pem_private_key(pem, password=None)
    except FileNotFoundError:
        raise DataDirError(_("no station key at {private_path}: run 'archiver init'").format(
                             private_path=private_path)) from None
    except PermissionError:
        raise DataDirError(_("the station key {private_path} is readable only by the service user: run archiver "
                             "as that user (e.g. sudo -u archiver archiver ...)").format(
                             private_path=private_path)) from None
    except (OSError, ValueError) as exc:
        raise DataDirError(_("cannot read the station key {private_path}: {exc}").format(
                             private_path=private_path, exc=exc)) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise DataDirError(_("{private_path} is not an Ed25519 key").format(private_path=private_path))
    return StationKey(key)


def load_public_key(data_dir: Path) -> PublicKey:
    try:
        with _keys_folder(data_dir) as folder:
            return PublicKey.parse(folder.read_bytes("station.pub").decode(errors="replace"))
    except FileNotFoundError:
        raise DataDirError(_("no station public key at {value}: run 'archiver init'").format(
                             value=key_paths(data_dir)[1])) from None


def read_public_key(value: str) -> PublicKey:
    """A station public key the operator gives: `ed25519:BASE64`, a file holding it (`station.pub`, on
    paper typed into a file), or an export (its folder or bag-info.txt, line `Station-Key:`)."""
    text = value.strip()
    if text.startswith("ed25519:"):
        return PublicKey.parse(text)
    path = Path(value)
    if path.is_dir():
        path = path / "bag-info.txt"
    try:
        content = path.read_text(errors="replace")
    except OSError as exc:
        raise DataDirError(_("cannot read a station key from {value}: {strerror}; give ed25519:BASE64, a "
                             "station.pub file or an export folder").format(
                             value=value, strerror=exc.strerror)) from exc
    for line in content.splitlines():
        rest = line.partition("Station-Key:")[2]
        candidate = (rest or line).strip()
        if candidate.startswith("ed25519:"):
            return PublicKey.parse(candidate)
    raise DataDirError(_("{path} holds no station key (a line ed25519:BASE64 or Station-Key: ed25519:BASE64)").format(
                         path=path))
