"""The station service as a person's `archiver` reaches it: where the service is, whether to go through it, and
one call of an operation over the socket.

Anyone but root and the service user (and anyone working on a data dir of their own, `--data-dir`), on a
station whose service is running, goes through the service: it learns who is calling from the kernel and
decides what they may do. The command line is parsed and its answer formatted in the person's own process;
the service is sent the operation and its typed arguments, and the files the person opened, as descriptors.
Standard library only: a lookup through the service costs one small Python start-up.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from archiver.errors import ArchiverError, ServiceError
from archiver.i18n import _
from archiver.service import protocol as wire

SYSTEM_CONFIG = "/etc/archiver/archiver.toml"
DEFAULT_SOCKET = "/run/archiver/archiver.sock"
DEFAULT_SERVICE_USER = "archiver"


class Settings(NamedTuple):
    socket: str
    user: str
    language: str | None


def settings(config: str | None) -> Settings | None:
    """Where the service listens and who runs it, from the system config and the one named; None when a
    config cannot be read (the command then runs here and says what is wrong with it)."""
    path, user, language = DEFAULT_SOCKET, DEFAULT_SERVICE_USER, None
    for name in [SYSTEM_CONFIG, *([config] if config else [])]:
        try:
            with open(name, "rb") as fh:
                import tomllib

                data = tomllib.load(fh)
        except FileNotFoundError:
            if name == SYSTEM_CONFIG:
                continue
            return None
        except (OSError, ValueError):
            return None
        value = data.get("service", {}).get("socket")
        if isinstance(value, str) and value:
            path = os.path.join(os.path.dirname(os.path.abspath(name)), value)
        value = data.get("access", {}).get("service_user")
        if isinstance(value, str) and value:
            user = value
        value = data.get("ui", {}).get("language")
        if isinstance(value, str) and value:
            language = value
    return Settings(path, user, language)


def route_for(found: Settings | None, own_data_dir: bool) -> tuple[str, int | None] | None:
    """(socket, the service user's uid) when this person's commands go to the service; None: run here."""
    if os.geteuid() == 0 or own_data_dir or found is None:
        return None
    service_uid = _uid(found.user)
    if os.geteuid() == service_uid or not os.path.exists(found.socket):
        return None
    return found.socket, service_uid


def _uid(user: str) -> int | None:
    import pwd

    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


class Received(NamedTuple):
    """A file the service hands back: its name (checked by the receiver), an open descriptor, what it must hash
    to."""

    name: str
    fd: int
    sha256: str | None
    size: int | None


class Call:
    """One operation done by the service: `value` once it answered, then the files it hands back, in order."""

    def __init__(self, conn: wire.Connection, value: Any, handbacks: int) -> None:
        self.conn, self.value, self._left = conn, value, handbacks

    def handbacks(self) -> Iterator[Received]:
        """Each file the service hands back; the caller copies it before asking for the next (the service waits
        for that). Whatever the caller raises ends the call: the service stops handing files back."""
        while self._left:
            kind, data, fd = self._receive()
            if kind != wire.PUT or fd is None:
                _close(fd)
                raise ServiceError(_("the station service answered {kind!r} where a file belongs").format(kind=kind))
            self._left -= 1
            try:
                yield Received(str(data.get("name", "")), fd, _text(data.get("sha256")), _number(data.get("size")))
            finally:
                os.close(fd)
            self.conn.send(wire.REPLY, {"ok": True})

    def _receive(self) -> tuple[bytes, dict[str, Any], int | None]:
        try:
            return self.conn.receive()
        except (OSError, EOFError, wire.ProtocolError) as exc:
            raise _gone(exc) from None

    def close(self) -> None:
        self.conn.close()


Files = Callable[[], list[tuple[str, int]]]  # opens what the person hands in: [(name, descriptor)]


def call(path: str, service_uid: int | None, op: str, args: dict[str, Any], files: Files | None,
         language: str) -> Call:
    """Ask the service to do `op` with `args`; once it says this person may, open `files` (as this person) and
    hand them in. Raises ArchiverError with the service's message and exit code when the operation fails or
    is refused."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise ServiceError(_("the station service at {path} is not answering ({strerror}): ask an administrator "
                             "to start it (systemctl start archiver)").format(path=path, strerror=exc.strerror)) \
            from None
    conn = wire.Connection(sock)
    try:
        _pid, uid = wire.peer_uid(sock)
        if uid not in (0, service_uid):
            raise ServiceError(_("{path} is served by uid {uid}, neither root nor the service user: not talking to "
                                 "it; tell an administrator").format(path=path, uid=uid))
        conn.send(wire.CALL, {"op": op, "args": args, "files": files is not None, "language": language})
        done = Call(conn, None, 0)
        kind, data, fd = done._receive()
        _close(fd)
        if kind == wire.READY and files is not None:
            inputs = files()
            try:
                for name, handed in inputs:
                    conn.send(wire.INPUT, {"name": name}, handed)
            finally:
                for _name, handed in inputs:
                    os.close(handed)
            conn.send(wire.END, {"count": len(inputs)})
            kind, data, fd = done._receive()
            _close(fd)
        if kind == wire.ERROR:
            error = ArchiverError(str(data.get("message", "")))
            code = data.get("code")
            error.exit_code = code if isinstance(code, int) and 2 <= code <= 127 else 3
            raise error
        if kind != wire.RESULT:
            raise ServiceError(_("the station service answered {kind!r} where a result belongs").format(kind=kind))
        done.value, done._left = data.get("value"), _number(data.get("handbacks")) or 0
        return done
    except OSError as exc:
        conn.close()
        raise _gone(exc) from None
    except BaseException:
        conn.close()
        raise


def _gone(exc: BaseException) -> ServiceError:
    return ServiceError(_("the station service ended the connection before the command finished ({value}); its "
                          "log says why (journalctl -u archiver)").format(value=exc or "closed"))


def _close(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
