"""The `archiver` command's entry point: through the station service, or run right here.

Anyone but root and the service user, on a station whose service is running, goes through the
service: it learns who is calling from the kernel and decides what they may do. Root and the service
user (and anyone working on a data dir of their own, `--data-dir`) run the command in this process.
This module imports nothing heavy: a lookup through the service costs one small Python start-up.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any, NamedTuple

from archiver import i18n
from archiver.i18n import _
from archiver.service import protocol as wire

SYSTEM_CONFIG = "/etc/archiver/archiver.toml"
DEFAULT_SOCKET = "/run/archiver/archiver.sock"
DEFAULT_SERVICE_USER = "archiver"


def run(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    config, forwarded, own_data_dir = _split_options(args)
    settings = _settings([SYSTEM_CONFIG, *([config] if config else [])])
    language = i18n.choose(os.environ, settings.language if settings else None)
    i18n.install(language)
    route = route_for(settings, own_data_dir)
    if route is None:
        from archiver.cli import main

        main(args=args, prog_name="archiver")
        return
    path, service_uid = route
    sys.exit(call(path, service_uid, forwarded, language))


def _split_options(args: list[str]) -> tuple[str | None, list[str], bool]:
    """(the config file named, the arguments to send to the service, whether a data dir of one's own is named)."""
    config, own_data_dir = os.environ.get("ARCHIVER_CONFIG"), bool(os.environ.get("ARCHIVER_DATA_DIR"))
    forwarded: list[str] = []
    i = 0
    while i < len(args) and args[i].startswith("-"):
        arg = args[i]
        if arg == "--config" and i + 1 < len(args):
            config, i = args[i + 1], i + 2  # read here to find the socket; the service has its own
            continue
        if arg.startswith("--config="):
            config, i = arg.split("=", 1)[1], i + 1
            continue
        own_data_dir |= arg == "--data-dir" or arg.startswith("--data-dir=")
        forwarded.append(arg)
        i += 1
    return config, forwarded + args[i:], own_data_dir


def route_for(settings: Settings | None, own_data_dir: bool) -> tuple[str, int | None] | None:
    """(socket, the service user's uid) when this command goes to the service."""
    if os.geteuid() == 0 or own_data_dir:
        return None
    if settings is None:
        return None  # a config that does not parse: the command run here says what is wrong with it
    service_uid = _uid(settings.user)
    if os.geteuid() == service_uid or not os.path.exists(settings.socket):
        return None
    return settings.socket, service_uid


class Settings(NamedTuple):
    socket: str
    user: str
    language: str | None


def _settings(files: list[str]) -> Settings | None:
    path, user, language = DEFAULT_SOCKET, DEFAULT_SERVICE_USER, None
    for name in files:
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


def _uid(user: str) -> int | None:
    import pwd

    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def call(path: str, service_uid: int | None, argv: list[str], language: str = i18n.ENGLISH) -> int:
    """Send one command line to the service, print what it answers, do what it asks; its exit code."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError as exc:
        return _fail(_("the station service at {path} is not answering ({strerror}): ask an administrator to "
                       "start it (systemctl start archiver)").format(
                       path=path, strerror=exc.strerror))
    _pid, uid = wire.peer_uid(sock)
    if uid not in (0, service_uid):
        return _fail(_("{path} is served by uid {uid}, neither root nor the service user: not talking to it; "
                       "tell an administrator").format(path=path, uid=uid))
    conn = wire.Connection(sock)
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = "/"
    try:
        conn.send(wire.REQUEST, {"argv": argv, "cwd": cwd, "tty": [_isatty(1), _isatty(2)], "columns": _columns(),
                                 "language": language})
        return _Session(conn).serve()
    except (OSError, EOFError, wire.ProtocolError) as exc:
        return _fail(_("the station service ended the connection before the command finished ({value}); its log "
                       "says why (journalctl -u archiver)").format(value=exc or 'closed'))
    except KeyboardInterrupt:
        return 130
    finally:
        conn.close()


def _fail(message: str) -> int:
    print(_("Error: {message}").format(message=message), file=sys.stderr)
    return 3


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _columns() -> int | None:
    text = os.environ.get("COLUMNS", "")
    if text.isdigit() and int(text) > 0:
        return int(text)
    for fd in (1, 2):
        try:
            return os.get_terminal_size(fd).columns
        except OSError:
            continue
    return None


class _Session:
    def __init__(self, conn: wire.Connection) -> None:
        self.conn = conn
        self.tree: Any = None  # the staged folder being received (transfer.building)
        self.tree_root: Any = None  # its staging folder (a Path)

    def serve(self) -> int:
        try:
            while True:
                kind, payload, fds = self.conn.receive()
                try:
                    if kind in (wire.STDOUT, wire.STDERR):
                        _write(sys.stdout if kind == wire.STDOUT else sys.stderr, payload)
                    elif kind == wire.EXIT:
                        return int(_object(payload).get("code", 1))
                    else:
                        self._answer(kind, _object(payload), fds)
                finally:
                    for fd in fds:
                        os.close(fd)
        finally:
            self._abandon_tree()

    def _answer(self, kind: bytes, data: dict[str, Any], fds: list[int]) -> None:
        try:
            reply, give = self._do(kind, data, fds)
        except Exception as exc:  # answered, not raised: the service reports it as the command's error
            if exc.__class__.__module__.startswith("archiver"):
                message = str(exc)
            elif isinstance(exc, OSError) and exc.strerror:
                message = f"{exc.filename or 'a file'}: {exc.strerror}"
            else:
                message = f"{exc.__class__.__name__}: {exc}"
            self.conn.send(wire.REPLY, {"error": message, "code": getattr(exc, "exit_code", 2)})
            return
        try:
            self.conn.send(wire.REPLY, reply, give)
        finally:
            for fd in give:
                os.close(fd)

    def _do(self, kind: bytes, data: dict[str, Any], fds: list[int]) -> tuple[dict[str, Any], tuple[int, ...]]:
        if kind == wire.OPEN:
            flags = os.O_RDONLY | os.O_CLOEXEC | (os.O_DIRECTORY if data.get("dir") else 0)
            try:
                fd = os.open(str(data["path"]), flags)  # as the caller: the kernel checks their rights
            except OSError as exc:
                raise _Unanswerable(f"cannot open {data['path']}: {exc.strerror}") from None
            return {"ok": True}, (fd,)
        from pathlib import Path

        from archiver.service import transfer

        if kind == wire.TREE:
            self._abandon_tree()
            self.tree = transfer.building(Path(str(data["dest"])))
            self.tree_root = self.tree.__enter__()
            return {"ok": True}, ()
        if kind == wire.DONE:
            tree, self.tree = self.tree, None
            if tree is None:
                raise ValueError("no folder is being received")
            tree.__exit__(None, None, None)
            return {"ok": True}, ()
        if kind == wire.PUT and len(fds) == 1:
            if "rel" in data:
                if self.tree_root is None or self.tree is None:
                    raise ValueError("a file for a folder that is not being received")
                dest = self.tree_root / transfer.safe_relative(str(data["rel"]))  # copy_checked makes its folder
            else:
                dest = Path(str(data["path"]))
            found = transfer.copy_checked(fds[0], dest, data.get("sha256"), data.get("size"),
                                          replace=bool(data.get("replace")))
            return {"ok": True, "sha256": found}, ()
        raise ValueError(f"the service asked for {kind!r}, which this client does not know")

    def _abandon_tree(self) -> None:
        tree, self.tree = self.tree, None
        if tree is not None:
            try:
                tree.__exit__(RuntimeError, RuntimeError("abandoned"), None)
            except RuntimeError:
                pass


class _Unanswerable(Exception):
    """What the client cannot do for the service (a path the caller may not open), said in one line."""


def _object(payload: bytes) -> dict[str, Any]:
    data = json.loads(payload)
    if not isinstance(data, dict):
        raise wire.ProtocolError("a control frame without a JSON object")
    return data


def _write(stream: Any, data: bytes) -> None:
    try:
        stream.buffer.write(data)
        stream.flush()
    except BrokenPipeError:  # `archiver ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
