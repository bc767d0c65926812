"""The station service: the daemon serves the command line to the station's people on a Unix socket.

- Who is calling comes from the kernel (SO_PEERCRED), never from the request; what they may do
  from their Unix groups (`access.py`). A refusal is one line, exit 4, and a `denied` custody event.
- A request is one command line. It runs in a thread of the daemon, on the daemon's open workspace
  (a warm catalog), its custody events naming the caller. What it prints goes back to the client as
  it is printed; the client prints it, so tables, JSON, errors and exit codes are the command's own.
- Paths the caller names are opened and written by the client, as the caller (`ServedFiles`): the
  service never reads or writes a file for someone who could not do so themselves. Footage is handed
  over as an open descriptor (SCM_RIGHTS), never copied through the socket.
- Bounded: a request of at most 64 KiB, sent within 10 s; a client that stops reading for 60 s, sends
  garbage or goes away is dropped with a log line; at most 64 requests at once. No network, ever.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from archiver.archive.workspace import Workspace
from archiver.errors import ArchiverError, InsecureError, ServiceError
from archiver.i18n import ENGLISH, LANGUAGES, _, speaking
from archiver.service import protocol as wire
from archiver.service.access import Person, person_for_uid
from archiver.service.transfer import Files

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0
ANSWER_TIMEOUT = 60.0
MAX_CLIENTS = 64
REQUEST_NICE = 10


class Runner(Protocol):
    """The command line, as the service runs it (given by the CLI layer, which sits above the service)."""

    def command_of(self, argv: list[str]) -> tuple[str | None, list[str]]:
        """(the matrix's name of the command, or None for help and usage; global options given)."""

    def run(self, argv: list[str], ws: Workspace, person: Person, command: str | None, files: Files) -> int: ...


@dataclass
class Request:
    argv: list[str]
    cwd: Path
    tty: tuple[bool, bool]
    columns: int | None
    language: str = ENGLISH

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Request:
        argv, cwd, tty, columns = data.get("argv"), data.get("cwd"), data.get("tty"), data.get("columns")
        if not (isinstance(argv, list) and len(argv) <= 4096 and all(isinstance(a, str) for a in argv)
                and isinstance(cwd, str) and cwd.startswith("/") and isinstance(tty, list) and len(tty) == 2
                and all(isinstance(t, bool) for t in tty)
                and (columns is None or (isinstance(columns, int) and 0 < columns < 10000))):
            raise wire.ProtocolError("not a request of this protocol")
        language = data.get("language")
        return cls(argv, Path(cwd), (tty[0], tty[1]), columns, language if language in LANGUAGES else ENGLISH)


class StationService:
    def __init__(self, ws: Workspace, runner: Runner) -> None:
        self.ws = ws
        self.runner = runner
        self.path = ws.cfg.service.socket
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._listener = _listen(self.path)
        install_output_switch()
        self._thread = threading.Thread(target=self._accept, name="service", daemon=True)
        self._thread.start()
        log.info("station service listening socket=%s", self.path)

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
            try:
                if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                    os.unlink(self.path)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                sock, _addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                log.exception("service: accept failed")
                continue
            if not self._slots.acquire(blocking=False):
                log.warning("service: busy, %d requests at once: a request turned away", MAX_CLIENTS)
                _turn_away(sock)
                continue
            threading.Thread(target=self._serve_one, args=(sock,), name="service-request", daemon=True).start()

    def _serve_one(self, sock: socket.socket) -> None:
        _yield_to_ingest()
        conn = wire.Connection(sock)
        pid, uid = -1, -1
        try:
            pid, uid = wire.peer_uid(sock)
            sock.settimeout(REQUEST_TIMEOUT)
            kind, data, fds = conn.receive_json(wire.MAX_REQUEST)
            for fd in fds:
                os.close(fd)
            if kind != wire.REQUEST:
                raise wire.ProtocolError(f"a {kind!r} frame where a request belongs")
            request = Request.parse(data)
            sock.settimeout(ANSWER_TIMEOUT)
            channel = Channel(conn)
            code = self._run(channel, uid, request)
            channel.send(wire.EXIT, {"code": code})
        except (EOFError, wire.ProtocolError, OSError) as exc:
            log.warning("service: request dropped pid=%d uid=%d reason=%s", pid, uid,
                        "the client went away" if isinstance(exc, EOFError) else exc)
        except Exception:
            log.exception("service: request failed pid=%d uid=%d", pid, uid)
        finally:
            conn.close()
            self._slots.release()

    def _run(self, channel: Channel, uid: int, request: Request) -> int:
        person = person_for_uid(uid, self.ws.cfg.access)
        command, global_options = self.runner.command_of(request.argv)
        with speaking(request.language), \
                serving(ClientStream(channel, wire.STDOUT, request.tty[0], request.columns),
                        ClientStream(channel, wire.STDERR, request.tty[1], request.columns)):
            ws = self.ws.acting(person.actor(command))
            if global_options:
                print(_("Error: {options} cannot be given through the station service: it serves its own data "
                        "dir and configuration").format(options=" and ".join(global_options)), file=sys.stderr)
                return 2
            refusal = person.refusal(command, self.ws.cfg.access.groups)
            if refusal is not None:
                with speaking(ENGLISH):  # the custody log is read by auditors anywhere: one language
                    logged = person.refusal(command, self.ws.cfg.access.groups)
                ws.custody.append("denied", {"command": command}, {"reason": logged})
                log.info("service: refused user=%s uid=%d command=%s", person.user, person.uid, command)
                print(_("Error: {message}").format(message=refusal), file=sys.stderr)
                return 4
            log.info("service: serving user=%s uid=%d command=%s", person.user, person.uid, command)
            files = ServedFiles(channel, request.cwd, person, self.ws.cfg.data_dir)
            return self.runner.run(request.argv, ws, person, command, files)


def _yield_to_ingest() -> None:
    """This thread (a person's request) runs ten nice steps below the daemon: on a busy machine the
    evidence being copied goes first, and a lookup waits a little instead. Linux nice is per thread."""
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + REQUEST_NICE))
    except OSError:
        pass


def _listen(path: Path) -> socket.socket:
    """Bind the socket, replacing a stale one left by a daemon that died; never another daemon's, and never
    something else planted at that name."""
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True)
        path.parent.chmod(0o755)  # whatever the umask: everyone must reach the socket
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise ServiceError(_("{path} exists and is not a socket: remove it (and find out who put it there)").format(
                                 path=path))
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            os.unlink(path)  # a stale socket: nobody answers
        else:
            raise ServiceError(_("another archiver daemon already serves {path}: stop it first").format(
                                 path=path))
        finally:
            probe.close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        listener.bind(str(path))
        os.chmod(path, 0o666)  # anyone may ask; the service decides who gets what
        listener.listen(64)
        listener.settimeout(0.5)
    except OSError as exc:
        listener.close()
        raise ServiceError(_("cannot serve on {path}: {strerror}").format(path=path, strerror=exc.strerror)) from exc
    return listener


def _turn_away(sock: socket.socket) -> None:
    try:
        sock.settimeout(1)
        conn = wire.Connection(sock)
        conn.send(wire.STDERR, b"Error: the station service is busy: try again in a moment\n")
        conn.send(wire.EXIT, {"code": 3})
    except OSError:
        pass
    finally:
        sock.close()


# -- what a served command prints -------------------------------------------------------------------
class Channel:
    """A connection shared by a command and its progress bar: whole frames, and a client that went away
    only ends the output (the command itself finishes, so nothing is left half-done)."""

    def __init__(self, conn: wire.Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.gone = False

    def send(self, kind: bytes, payload: bytes | dict[str, Any] = b"", fds: tuple[int, ...] = ()) -> None:
        with self.lock:
            self.conn.send(kind, payload, fds)

    def print(self, kind: bytes, data: bytes) -> None:
        if self.gone:
            return
        try:
            self.send(kind, data)
        except OSError as exc:
            self.gone = True
            log.warning("service: client stopped reading, its output is dropped reason=%s", exc)

    def ask(self, kind: bytes, payload: dict[str, Any], fds: tuple[int, ...] = ()) -> tuple[dict[str, Any], list[int]]:
        """Send a request to the client and wait for its reply. ArchiverError with the client's error."""
        try:
            self.send(kind, payload, fds)
            reply_kind, data, got = self.conn.receive_json()
        except (OSError, EOFError, wire.ProtocolError) as exc:
            self.gone = True
            raise ServiceError(_("the client went away: {value}").format(value=exc or 'closed')) from None
        if reply_kind != wire.REPLY:
            for fd in got:
                os.close(fd)
            self.gone = True
            raise ServiceError(_("the client answered {reply_kind!r} where a reply belongs").format(
                                 reply_kind=reply_kind))
        if "error" in data:
            for fd in got:
                os.close(fd)
            error = ArchiverError(str(data["error"]))
            code = data.get("code")
            error.exit_code = code if isinstance(code, int) and code in (2, 3) else 2
            raise error
        return data, got


class ClientStream:
    """sys.stdout or sys.stderr of a served command: text to the client, which prints it."""

    encoding = "utf-8"
    errors = "strict"

    def __init__(self, channel: Channel, kind: bytes, tty: bool, columns: int | None) -> None:
        self.channel, self.kind, self.tty, self.columns = channel, kind, tty, columns
        self.buffer = self  # click writes bytes to .buffer

    def write(self, text: str | bytes) -> int:
        self.channel.print(self.kind, text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape"))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return self.tty

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        raise OSError(_("a served command's output has no descriptor"))


class OutputSwitch:
    """Stands in for sys.stdout / sys.stderr: each served command's thread writes to its own client;
    every other thread (the daemon, its log) to the real stream."""

    def __init__(self, default: Any) -> None:
        self.default = default
        self.local = threading.local()

    @property
    def target(self) -> Any:
        return getattr(self.local, "stream", None) or self.default

    def write(self, text: str) -> int:
        return self.target.write(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


def install_output_switch() -> None:
    for name in ("stdout", "stderr"):
        if not isinstance(getattr(sys, name), OutputSwitch):
            setattr(sys, name, OutputSwitch(getattr(sys, name)))


@contextmanager
def serving(out: ClientStream, err: ClientStream) -> Iterator[None]:
    switches = (sys.stdout, sys.stderr)
    assert all(isinstance(s, OutputSwitch) for s in switches), "install_output_switch() first"
    for switch, stream in zip(switches, (out, err), strict=True):
        switch.local.stream = stream
    try:
        yield
    finally:
        for switch in switches:
            switch.local.stream = None


# -- the paths a served command's caller named ------------------------------------------------------
class ServedFiles:
    """Paths as the caller's client sees them: relative to its working folder, opened by the client, as
    the caller. Inputs arrive as descriptors the client opened; outputs are made in a private folder of
    the service and handed to the client to copy where the caller asked."""

    def __init__(self, channel: Channel, cwd: Path, person: Person, data_dir: Path) -> None:
        self.channel, self.cwd, self.person, self.data_dir = channel, cwd, person, data_dir

    def absolute(self, path: Path) -> Path:
        return self.cwd / path

    def _open(self, path: Path, folder: bool) -> int:
        _reply, fds = self.channel.ask(wire.OPEN, {"path": str(self.absolute(path)), "dir": folder})
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise ServiceError(_("the client sent no descriptor for {path}").format(path=path))
        return fds[0]

    def read_input(self, path: Path, limit: int, *, secret: bool = False) -> bytes:
        fd = self._open(path, False)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ArchiverError(_("{path} is not a regular file").format(path=path))
            if secret and (st.st_uid != self.person.uid or st.st_mode & 0o077):
                raise InsecureError(_("identity file {path} must be {user}'s alone (chmod 600 {path})").format(
                                      path=path, user=self.person.user))
            if st.st_size > limit:
                raise ArchiverError(_("{path} is larger than {value} MiB: refused").format(
                                      path=path, value=limit >> 20))
            chunks, got = [], 0
            while got <= limit and (chunk := os.read(fd, 1 << 20)):
                chunks.append(chunk)
                got += len(chunk)
            if got > limit:
                raise ArchiverError(_("{path} is larger than {value} MiB: refused").format(
                                      path=path, value=limit >> 20))
            return b"".join(chunks)
        finally:
            os.close(fd)

    def input_tree(self, path: Path) -> Path:
        """A folder to read, the one the caller opened: refused if anything in it is not readable by them
        (the service would read it with its own rights). Symlinks are not followed by what reads it."""
        fd = self._open(path, True)
        try:
            for top, dirs, files, top_fd in os.fwalk(".", dir_fd=fd, follow_symlinks=False):
                for name in (*dirs, *files):
                    st = os.stat(name, dir_fd=top_fd, follow_symlinks=False)
                    if not stat.S_ISLNK(st.st_mode) and not self.person.may_read(st.st_mode, st.st_uid, st.st_gid):
                        where = os.path.normpath(os.path.join(str(path), top, name))
                        raise ArchiverError(_("{where} is not readable by {user}: the station service reads only "
                                              "what you can read yourself").format(
                                              where=where, user=self.person.user))
            return Path(os.readlink(f"/proc/self/fd/{fd}"))
        finally:
            os.close(fd)

    @contextmanager
    def _private(self) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(dir=self.data_dir, prefix=".service-") as scratch:
            yield Path(scratch)

    @contextmanager
    def output_file(self, path: Path) -> Iterator[Path]:
        with self._private() as scratch:
            made = scratch / (path.name or "out")
            yield made
            fd = os.open(made, os.O_RDONLY | os.O_CLOEXEC)
            try:
                self.channel.ask(wire.PUT, {"path": str(self.absolute(path)), "replace": True}, (fd,))
            finally:
                os.close(fd)

    @contextmanager
    def output_tree(self, path: Path) -> Iterator[Path]:
        with self._private() as scratch:
            made = scratch / (path.name or "out")
            yield made
            self.channel.ask(wire.TREE, {"dest": str(self.absolute(path))})
            for top, _dirs, files in os.walk(made):
                for name in files:
                    full = Path(top) / name
                    fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                    try:
                        self.channel.ask(wire.PUT, {"rel": str(full.relative_to(made))}, (fd,))
                    finally:
                        os.close(fd)
            self.channel.ask(wire.DONE, {})

    def deliver(self, src: int, dest: Path, sha256: str, size: int) -> str:
        reply, _fds = self.channel.ask(wire.PUT, {"path": str(self.absolute(dest)), "sha256": sha256, "size": size,
                                                 "replace": False}, (src,))
        return str(reply.get("sha256", ""))
