"""The age v1 file format (C2SP age specification), X25519 recipients, streamed.

Encryption needs only recipients' public keys (`age1...`): the station can write backups it
cannot read. Decryption takes an identity (`AGE-SECRET-KEY-1...`); the stock `age -d -i` reads
what this writes, and this reads what `age -r` writes. Memory stays at one 64 KiB chunk.
"""

from __future__ import annotations

import base64
import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass
from hashlib import sha256
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from archiver.i18n import _

VERSION_LINE = b"age-encryption.org/v1"
CHUNK = 64 * 1024
TAG = 16
_X25519_INFO = b"age-encryption.org/v1/X25519"
_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


class AgeError(Exception):
    """Not an age file we can open, a wrong key, or a damaged file."""


# -- Bech32 (BIP 173), as age uses it for keys ----------------------------------------------
def _polymod(values: Iterable[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_GEN):
            if (top >> i) & 1:
                chk ^= gen
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _regroup(data: Iterable[int], source: int, target: int, pad: bool) -> list[int]:
    acc = bits = 0
    out = []
    for value in data:
        acc = (acc << source) | value
        bits += source
        while bits >= target:
            bits -= target
            out.append((acc >> bits) & ((1 << target) - 1))
    if pad and bits:
        out.append((acc << (target - bits)) & ((1 << target) - 1))
    elif not pad and (bits >= source or (acc << (target - bits)) & ((1 << target) - 1)):
        raise AgeError(_("bad key encoding (padding)"))
    return out


def bech32_encode(hrp: str, data: bytes) -> str:
    words = _regroup(data, 8, 5, True)
    checksum = _polymod(_hrp_expand(hrp) + words + [0] * 6) ^ 1
    words += [(checksum >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[w] for w in words)


def bech32_decode(text: str) -> tuple[str, bytes]:
    if text.lower() != text and text.upper() != text:
        raise AgeError(_("mixed-case key"))
    text = text.lower()
    hrp, sep, body = text.rpartition("1")
    if not sep or not hrp or len(body) < 6 or any(c not in _CHARSET for c in body):
        raise AgeError(_("not a Bech32 key: {value}...").format(value=text[:20]))
    words = [_CHARSET.index(c) for c in body]
    if _polymod(_hrp_expand(hrp) + words) != 1:
        raise AgeError(_("key checksum does not match (a typo?)"))
    return hrp, bytes(_regroup(words[:-6], 5, 8, False))


# -- keys ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipient:
    public: bytes  # 32-byte X25519 public key

    @classmethod
    def parse(cls, text: str) -> Recipient:
        hrp, data = bech32_decode(text.strip())
        if hrp != "age" or len(data) != 32:
            raise AgeError(_("not an age X25519 recipient: {value}... (expected age1...)").format(
                             value=text.strip()[:24]))
        return cls(data)

    def __str__(self) -> str:
        return bech32_encode("age", self.public)


@dataclass(frozen=True)
class Identity:
    secret: bytes

    @classmethod
    def parse(cls, text: str) -> Identity:
        hrp, data = bech32_decode(text.strip())
        if hrp != "age-secret-key-" or len(data) != 32:
            raise AgeError(_("not an age X25519 identity (expected AGE-SECRET-KEY-1...)"))
        return cls(data)

    @classmethod
    def generate(cls) -> Identity:
        key = X25519PrivateKey.generate()
        return cls(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

    @property
    def recipient(self) -> Recipient:
        key = X25519PrivateKey.from_private_bytes(self.secret)
        return Recipient(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def __str__(self) -> str:
        return bech32_encode("age-secret-key-", self.secret).upper()


def read_identities(text: str) -> list[Identity]:
    """Identities from an identity file (`age-keygen` output: comments and AGE-SECRET-KEY lines)."""
    found = [Identity.parse(line) for line in text.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    if not found:
        raise AgeError(_("no AGE-SECRET-KEY-1... line in the identity file"))
    return found


# -- primitives ----------------------------------------------------------------------------------
def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    """Unpadded standard base64, canonical only: unused trailing bits must be zero (so that one file
    has one encoding, and an altered one is refused before any key is tried)."""
    if b"=" in text or b"\r" in text or len(text) % 4 == 1:
        raise AgeError(_("bad base64 in the header"))
    try:
        data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except ValueError as exc:
        raise AgeError(_("bad base64 in the header")) from exc
    if _b64(data) != text:
        raise AgeError(_("non-canonical base64 in the header"))
    return data


def _check_arguments(args: list[bytes]) -> None:
    """Stanza type and arguments: non-empty, printable ASCII only (VCHAR)."""
    for arg in args:
        if not arg or any(c < 33 or c > 126 for c in arg):
            raise AgeError(_("malformed stanza (an empty or non-ASCII argument)"))


def _wrap(file_key: bytes, recipient: Recipient) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient.public))
    key = _hkdf(shared, share + recipient.public, _X25519_INFO)
    body = ChaCha20Poly1305(key).encrypt(bytes(12), file_key, None)
    encoded = _b64(body)
    lines = [encoded[i:i + 64] for i in range(0, len(encoded), 64)]
    if not lines or len(lines[-1]) == 64:
        lines.append(b"")
    return b"-> X25519 " + _b64(share) + b"\n" + b"".join(line + b"\n" for line in lines)


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


# -- encrypt / decrypt ---------------------------------------------------------------------------
def encrypt(src: BinaryIO, dst: BinaryIO, recipients: list[Recipient]) -> None:
    """Encrypt `src` to every recipient, writing the age file to `dst` chunk by chunk."""
    if not recipients:
        raise AgeError(_("no recipients"))
    file_key = os.urandom(16)
    header = VERSION_LINE + b"\n" + b"".join(_wrap(file_key, r) for r in recipients) + b"---"
    mac = hmac.new(_hkdf(file_key, b"", b"header"), header, sha256).digest()
    nonce = os.urandom(16)
    dst.write(header + b" " + _b64(mac) + b"\n" + nonce)
    aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
    counter = 0
    chunk = src.read(CHUNK)
    while True:
        following = src.read(CHUNK) if len(chunk) == CHUNK else b""
        last = not following
        dst.write(aead.encrypt(_nonce(counter, last), chunk, None))
        if last:
            return
        chunk, counter = following, counter + 1


def _read_header(src: BinaryIO) -> tuple[list[tuple[list[bytes], bytes]], bytes, bytes]:
    """(stanzas as (args, body), the header bytes the MAC covers, the MAC)."""
    raw = bytearray()

    def line() -> bytes:
        text = src.readline(4096)
        if not text.endswith(b"\n"):
            raise AgeError(_("not an age file (header cut short)"))
        raw.extend(text)
        return text[:-1]

    if line() != VERSION_LINE:
        raise AgeError(_("not an age v1 file"))
    stanzas = []
    while True:
        text = line()
        if text.startswith(b"--- "):
            mac = _unb64(text[4:])
            return stanzas, bytes(raw[:-len(text) - 1]) + b"---", mac
        if not text.startswith(b"-> "):
            raise AgeError(_("malformed age header"))
        args = text[3:].split(b" ")
        _check_arguments(args)
        body = bytearray()
        while True:
            piece = line()
            if len(piece) > 64:
                raise AgeError(_("malformed age header (long body line)"))
            body.extend(piece)
            if len(piece) < 64:
                break
        stanzas.append((args, _unb64(bytes(body))))


def _unwrap(stanzas: list[tuple[list[bytes], bytes]], identities: list[Identity]) -> bytes:
    for args, body in stanzas:
        if args[0] != b"X25519":
            continue
        if len(args) != 2 or len(body) != 32:
            raise AgeError(_("malformed X25519 stanza"))
        share = _unb64(args[1])
        if len(share) != 32:
            raise AgeError(_("malformed X25519 stanza"))
        for identity in identities:
            private = X25519PrivateKey.from_private_bytes(identity.secret)
            try:
                shared = private.exchange(X25519PublicKey.from_public_bytes(share))
            except ValueError:  # cryptography refuses a low-order share (an all-zero shared secret)
                raise AgeError(_("invalid X25519 share (a low-order point)")) from None
            if shared == bytes(32):
                raise AgeError(_("invalid X25519 share"))
            key = _hkdf(shared, share + identity.recipient.public, _X25519_INFO)
            try:
                return ChaCha20Poly1305(key).decrypt(bytes(12), body, None)
            except InvalidTag:
                continue
    raise AgeError(_("no identity matches any recipient of this file"))


def decrypt(src: BinaryIO, dst: BinaryIO, identities: list[Identity]) -> None:
    """Decrypt an age file to `dst`; raises AgeError on a wrong key or any damage."""
    stanzas, header, mac = _read_header(src)
    file_key = _unwrap(stanzas, identities)
    expected = hmac.new(_hkdf(file_key, b"", b"header"), header, sha256).digest()
    if not hmac.compare_digest(expected, mac):
        raise AgeError(_("header MAC does not match: the file was altered"))
    nonce = src.read(16)
    if len(nonce) != 16:
        raise AgeError(_("payload cut short"))
    aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
    counter = 0
    chunk = src.read(CHUNK + TAG)
    while True:
        following = src.read(CHUNK + TAG) if len(chunk) == CHUNK + TAG else b""
        last = not following
        if len(chunk) < TAG or (not last and len(chunk) != CHUNK + TAG):
            raise AgeError(_("payload cut short"))
        try:
            plain = aead.decrypt(_nonce(counter, last), chunk, None)
        except InvalidTag:
            raise AgeError(_("payload chunk {counter} does not authenticate: the file was altered or cut").format(
                             counter=counter)) from None
        if last and not plain and counter > 0:
            raise AgeError(_("empty final chunk"))
        dst.write(plain)
        if last:
            return
        chunk, counter = following, counter + 1
