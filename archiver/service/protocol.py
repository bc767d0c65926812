"""The station service's wire format: frames on a Unix stream socket, open files beside them.

A frame is a header (payload length, 4 bytes big-endian; kind, 1 byte) and its payload. Control
frames carry one JSON object; output frames carry the bytes a command printed. Open files travel
beside a frame as SCM_RIGHTS, so footage is handed over, never copied through the service.

    client -> service   REQUEST {"argv", "cwd", "tty": [stdout, stderr], "columns"}   (once, first)
                        REPLY   {"ok": true} | {"error": TEXT}   (+ a descriptor, answering OPEN)
    service -> client   STDOUT / STDERR   bytes to print
                        OPEN    {"path", "dir"}                   open this for me, as yourself
                        PUT     {"path", "sha256", "size", "replace"}  + a descriptor: copy it there, check it
                        TREE    {"dest"}, then PUT {"rel", ...} frames, then DONE: build a folder
                        EXIT    {"code"}                          the command's exit code; last frame

Only the standard library: the client imports this and nothing heavier.
"""

from __future__ import annotations

import array
import json
import os
import socket
import struct
from typing import Any

REQUEST, REPLY = b"Q", b"R"
STDOUT, STDERR, OPEN, PUT, TREE, DONE, EXIT = b"1", b"2", b"O", b"P", b"T", b"D", b"X"

MAX_REQUEST = 64 * 1024  # the first frame: a command line, never more
MAX_FRAME = 16 * 1024 * 1024  # anything else a peer may send
MAX_FDS = 2
_HEADER = struct.Struct(">Ic")


class ProtocolError(Exception):
    """The peer sent something that is not a frame of this protocol, or went away mid-frame."""


class Connection:
    """One end of a service connection. Not thread-safe on its own: callers that write from several
    threads (a command and its progress bar) hold a lock around `send`."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, kind: bytes, payload: bytes | dict[str, Any] = b"", fds: tuple[int, ...] = ()) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode() if isinstance(payload, dict) else bytes(payload)
        frame = _HEADER.pack(len(data), kind) + data
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        sent = self.sock.sendmsg([frame], ancillary)
        if sent < len(frame):
            self.sock.sendall(frame[sent:])

    def receive(self, limit: int = MAX_FRAME) -> tuple[bytes, bytes, list[int]]:
        """The next frame: (kind, payload, descriptors). EOFError when the peer closed between frames."""
        fds: list[int] = []
        try:
            header = self._exactly(_HEADER.size, fds, eof_ok=True)
            size, kind = _HEADER.unpack(header)
            if size > limit:
                raise ProtocolError(f"a frame of {size} bytes (at most {limit} accepted)")
            return kind, self._exactly(size, fds), fds
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise

    def receive_json(self, limit: int = MAX_FRAME) -> tuple[bytes, dict[str, Any], list[int]]:
        kind, payload, fds = self.receive(limit)
        try:
            data = json.loads(payload)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            for fd in fds:
                os.close(fd)
            raise ProtocolError(f"frame {kind!r} does not hold a JSON object")
        return kind, data, fds

    def _exactly(self, size: int, fds: list[int], eof_ok: bool = False) -> bytes:
        chunks, got = [], 0
        space = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)
        while got < size:
            data, ancillary, flags, _addr = self.sock.recvmsg(min(size - got, 1 << 20), space)
            for level, kind, raw in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(array.array("i", raw[: len(raw) - len(raw) % 4]))
            if flags & socket.MSG_CTRUNC:
                raise ProtocolError(f"more than {MAX_FDS} descriptors sent with one frame")
            if not data:
                if eof_ok and got == 0:
                    raise EOFError
                raise ProtocolError("the connection closed in the middle of a frame")
            chunks.append(data)
            got += len(data)
        return b"".join(chunks)

    def close(self) -> None:
        self.sock.close()


def peer_uid(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end, as the kernel saw it connect."""
    pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return pid, uid
