"""An attacker's own client of the station service: the wire protocol written again from its description, with
the standard library alone, run by a throwaway user as `/usr/bin/python3 attacker.py MODE SOCKET ...`. It prints
one JSON document of what the service answered. Nothing of the archiver is imported: a hostile client owes
the service no courtesy."""

from __future__ import annotations

import array
import json
import os
import socket
import struct
import sys
import time

HEADER = struct.Struct(">Ic")
CALL, READY, INPUT, END, REPLY, RESULT, PUT, ERROR = b"C", b"G", b"I", b"N", b"R", b"V", b"P", b"E"


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.settimeout(30)
    return sock


def send(sock: socket.socket, kind: bytes, payload: dict, fds: list[int] = ()) -> None:
    data = json.dumps(payload, ensure_ascii=False).encode()
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([HEADER.pack(len(data), kind) + data], ancillary)


def receive(sock: socket.socket) -> tuple[str, dict, list[int]]:
    def exactly(n: int, fds: list[int]) -> bytes:
        got = b""
        while len(got) < n:
            data, anc, _flags, _addr = sock.recvmsg(n - len(got), socket.CMSG_SPACE(64))
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(array.array("i", raw[: len(raw) - len(raw) % 4]))
            if not data:
                raise EOFError
            got += data
        return got

    fds: list[int] = []
    size, kind = HEADER.unpack(exactly(HEADER.size, fds))
    return kind.decode(), json.loads(exactly(size, fds)), fds


def answer(sock: socket.socket) -> dict:
    """Everything the service says until it closes: its frames, the names of files it hands back."""
    frames = []
    try:
        while True:
            kind, data, fds = receive(sock)
            frames.append({"kind": kind, "data": data, "fds": len(fds)})
            for fd in fds:
                os.close(fd)
            if kind == "P":
                send(sock, REPLY, {"ok": True})
            if kind == "E" or (kind == "V" and not data.get("handbacks")):
                break
    except (EOFError, OSError) as exc:
        frames.append({"kind": "closed", "data": str(exc)})
    return {"frames": frames}


def hand_in(path: str, op: str, args: dict, name: str, fd: int) -> dict:
    """Call `op` with one file handed in: `fd`, whatever it is, under `name`."""
    sock = connect(path)
    send(sock, CALL, {"op": op, "args": args, "files": True, "language": "en"})
    kind, data, _fds = receive(sock)
    if kind != "G":
        return {"frames": [{"kind": kind, "data": data}]}
    send(sock, INPUT, {"name": name}, [fd])
    send(sock, END, {"count": 1})
    return answer(sock)


def main() -> None:
    mode, path, *rest = sys.argv[1:]
    if mode == "call":  # OP ARGS_JSON
        sock = connect(path)
        send(sock, CALL, {"op": rest[0], "args": json.loads(rest[1]), "files": False, "language": "en"})
        result = answer(sock)
    elif mode == "deleted-folder":  # FOLDER TARGET: a folder's descriptor, the folder then removed, and a
        folder, target = rest     # symlink planted where /proc would name the removed folder
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        os.rmdir(folder)
        os.symlink(target, folder + " (deleted)")
        result = hand_in(path, "ingest", {"source": folder}, "station.key", fd)
    elif mode == "o-path":  # PATH: an O_PATH descriptor (of a folder the user cannot list, say)
        fd = os.open(rest[0], os.O_PATH)
        result = hand_in(path, "ingest", {"source": rest[0]}, "station.key", fd)
    elif mode == "name":  # FILE NAME: a real file handed in under a hostile name
        fd = os.open(rest[0], os.O_RDONLY)
        result = hand_in(path, "ingest", {"source": "/tmp"}, rest[1], fd)
    elif mode == "refused":  # N OP: as many refused calls as fast as possible
        codes: dict[str, int] = {}
        for _n in range(int(rest[0])):
            sock = connect(path)
            send(sock, CALL, {"op": rest[1], "args": {}, "files": False, "language": "en"})
            kind, data, _fds = receive(sock)
            key = f"{kind}{data.get('code', '')}"
            codes[key] = codes.get(key, 0) + 1
            sock.close()
        result = {"codes": codes}
    elif mode == "extra-fds":  # N: each call and each reply carries descriptors nobody asked for
        ok = 0
        for _n in range(int(rest[0])):
            sock = connect(path)
            spare = [os.open("/dev/null", os.O_RDONLY) for _ in range(3)]
            send(sock, CALL, {"op": "recordings get", "args": {"refs": ["1"], "reason": "fd test"}, "files": False,
                              "language": "en"}, spare)
            left = 1
            while left:
                kind, data, fds = receive(sock)
                for fd in fds:
                    os.close(fd)
                if kind == "V":
                    left = data.get("handbacks", 0)
                elif kind == "P":
                    send(sock, REPLY, {"ok": True}, spare)
                    ok, left = ok + 1, left - 1
                else:
                    break
            for fd in spare:
                os.close(fd)
            sock.close()
        result = {"handed_back": ok}
    elif mode == "slow":  # N SECONDS: N connections, each sending one byte of a call every second
        socks = [connect(path) for _ in range(int(rest[0]))]
        frame = json.dumps({"op": "status", "args": {}, "files": False, "language": "en"}).encode()
        message = HEADER.pack(len(frame), CALL) + frame
        started, closed = time.monotonic(), {}
        for second in range(int(rest[1])):
            for i, sock in enumerate(socks):
                if i in closed:
                    continue
                try:
                    sock.sendall(message[second:second + 1])
                    sock.setblocking(False)
                    try:
                        sock.recv(65536)  # an answer to a call never finished, or the end: given up on
                        closed[i] = time.monotonic() - started
                    except BlockingIOError:
                        pass
                    finally:
                        sock.setblocking(True)
                except OSError:
                    closed[i] = time.monotonic() - started
            time.sleep(1)
        result = {"closed": len(closed), "latest": max(closed.values(), default=None)}
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
