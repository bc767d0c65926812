"""The station service's wire format: frames on a Unix stream socket, open files beside them.

A frame is a header (payload length, 4 bytes big-endian; kind, 1 byte) and its payload, one JSON object.
Open files travel beside a frame as SCM_RIGHTS, one per frame, so footage and the files a person hands in
are passed, never copied through the service, and the service never opens a path a person names.

    client -> service   CALL    {"op", "args", "files": bool, "language"}  (once, first)
    service -> client   READY   {}                                         (with files) they may come: the
                                                                           person may do this operation
    client -> service   INPUT   {"name"} + a descriptor, for each file     the files the person opened
                        END     {"count": N}                               no more files
                        REPLY   {"ok": true} | {"error", "code"}           answering a PUT
    service -> client   RESULT  {"value", "handbacks": M}                  the operation's value
                        PUT     {"name", "sha256", "size"} + a descriptor, M times: copy it, answer REPLY
                        ERROR   {"message", "code"}                        the operation failed; last frame

Only the standard library: the client imports this and nothing heavier.
"""

from __future__ import annotations

import array
import json
import os
import socket
import struct
import time
from typing import Any

CALL, READY, INPUT, END, REPLY, RESULT, PUT, ERROR = b"C", b"G", b"I", b"N", b"R", b"V", b"P", b"E"

MAX_CALL = 1 << 20  # the first frame: an operation and its arguments (a command line's worth), never more
MAX_FRAME = 16 * 1024 * 1024  # anything else a peer may send (a result with a report page in it)
MAX_INPUTS = 10_000  # files one call may hand in
_HEADER = struct.Struct(">Ic")


class ProtocolError(Exception):
    """The peer sent something that is not a frame of this protocol, or went away mid-frame, or too slowly."""


class Connection:
    """One end of a service connection. With a `deadline` (time.monotonic()), every receive must finish by it:
    a peer that trickles a request byte by byte is dropped when its time is up, not at each read's."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline: float | None = None

    def send(self, kind: bytes, payload: dict[str, Any], fd: int | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        frame = _HEADER.pack(len(data), kind) + data
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))] if fd is not None else []
        sent = self.sock.sendmsg([frame], ancillary)
        if sent < len(frame):
            self.sock.sendall(frame[sent:])

    def receive(self, limit: int = MAX_FRAME) -> tuple[bytes, dict[str, Any], int | None]:
        """The next frame: (kind, its JSON object, the descriptor that came with it or None). EOFError when the
        peer closed between frames. Any descriptor beyond one per frame is closed on arrival."""
        fds: list[int] = []
        try:
            header = self._exactly(_HEADER.size, fds, eof_ok=True)
            size, kind = _HEADER.unpack(header)
            if size > limit:
                raise ProtocolError(f"a frame of {size} bytes (at most {limit} accepted)")
            payload = self._exactly(size, fds)
            try:
                data = json.loads(payload)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise ProtocolError(f"frame {kind!r} does not hold a JSON object")
        except BaseException:
            _close(fds)
            raise
        _close(fds[1:])
        return kind, data, fds[0] if fds else None

    def _exactly(self, size: int, fds: list[int], eof_ok: bool = False) -> bytes:
        chunks, got = [], 0
        space = socket.CMSG_SPACE(4 * array.array("i").itemsize)
        while got < size:
            if self.deadline is not None:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    raise ProtocolError("too slow: the request did not arrive in time")
                self.sock.settimeout(left)
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(min(size - got, 1 << 20), space,
                                                                   getattr(socket, "MSG_CMSG_CLOEXEC", 0))
            except TimeoutError:
                raise ProtocolError("too slow: the request did not arrive in time") from None
            for level, kind, raw in ancillary:  # every descriptor that arrived, truncated batches included
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(array.array("i", raw[: len(raw) - len(raw) % 4]))
            if not data:
                if eof_ok and got == 0:
                    raise EOFError
                raise ProtocolError("the connection closed in the middle of a frame")
            chunks.append(data)
            got += len(data)
        return b"".join(chunks)

    def close(self) -> None:
        self.sock.close()


def _close(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def peer_uid(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end, as the kernel saw it connect."""
    pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return pid, uid
