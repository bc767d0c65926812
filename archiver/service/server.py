"""The station service: the daemon does the station's operations for its people, on a Unix socket.

- Who is calling comes from the kernel (SO_PEERCRED), never from the request. A request names one operation
  of `operations` and its typed arguments; the operation itself decides whether this person may do it and
  what they may see, and writes its custody event. The reply is the operation's plain value, which the
  person's client formats as a direct run would.
- The service never opens, stats, lists or resolves a path a person names. What they hand in arrives as
  descriptors their client opened as them, each checked to be a regular file open for reading; what the
  operation hands back goes out as descriptors under names the operation chose.
- Bounded, whatever a client does: a request (the call and its files) must arrive whole within 10 s; a
  client that stops reading for 60 s is dropped; at most 128 requests at once and 24 per person; a descriptor
  that arrives unasked is closed at once; a person's refusals are one custody event a minute. A served
  request never writes a crash file and never sends a traceback: a bug is one line to the person and the
  traceback in the daemon's log. No network, ever.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import threading
import time
from typing import Any

from archiver.archive.workspace import Workspace
from archiver.errors import ArchiverError, ServiceError
from archiver.i18n import ENGLISH, LANGUAGES, _, speaking
from archiver.operations.access import person_for_uid
from archiver.operations.core import Context, Refusals, admit, check_input, run
from archiver.service import protocol as wire

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0  # the whole request: the call and every file handed in
ANSWER_TIMEOUT = 60.0  # a client that reads nothing of its answer for this long is dropped
MAX_CLIENTS = 128
MAX_PER_PERSON = 24  # at most this share of the service for one person, whatever they send
REQUEST_NICE = 10


class StationService:
    def __init__(self, ws: Workspace, refusals: Refusals | None = None) -> None:
        self.ws = ws
        self.path = ws.cfg.service.socket
        self.refusals = refusals or Refusals(ws.cfg.service.refusals_every_s)
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self._lock = threading.Lock()
        self._per_uid: dict[int, int] = {}
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._listener = _listen(self.path)
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
        try:
            self.refusals.flush(self.ws)
        except ArchiverError as exc:
            log.error("service: the refusals counted last could not be logged: %s", exc)

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
            try:
                pid, uid = wire.peer_uid(sock)
            except OSError:
                sock.close()
                continue
            if not self._slots.acquire(blocking=False):
                log.warning("service: busy, %d requests at once: a request turned away uid=%d", MAX_CLIENTS, uid)
                _turn_away(sock, _("the station service is busy: try again in a moment"))
                continue
            if not self._enter(uid):
                self._slots.release()
                log.warning("service: %d requests at once from uid=%d: one turned away", MAX_PER_PERSON, uid)
                _turn_away(sock, _("you have {count} requests open at the station service already: wait for them "
                                   "to finish").format(count=MAX_PER_PERSON))
                continue
            threading.Thread(target=self._serve_one, args=(sock, pid, uid), name="service-request",
                             daemon=True).start()

    def _enter(self, uid: int) -> bool:
        with self._lock:
            if self._per_uid.get(uid, 0) >= MAX_PER_PERSON:
                return False
            self._per_uid[uid] = self._per_uid.get(uid, 0) + 1
            return True

    def _leave(self, uid: int) -> None:
        with self._lock:
            self._per_uid[uid] -= 1
            if not self._per_uid[uid]:
                del self._per_uid[uid]

    def _serve_one(self, sock: socket.socket, pid: int, uid: int) -> None:
        _yield_to_ingest()
        conn = wire.Connection(sock)
        ctx: Context | None = None
        try:
            conn.deadline = time.monotonic() + REQUEST_TIMEOUT
            op, args, language, files = _read_call(conn)
            person = person_for_uid(uid, self.ws.cfg.access)
            self.ws.make_room()
            ctx = Context(self.ws.cfg, person, lambda _upgrade: self.ws, refusals=self.refusals)
            with speaking(language):
                try:
                    admit(ctx, op)  # before any file is handed in: a refusal comes first
                    if files:
                        conn.send(wire.READY, {})
                        ctx.inputs = _read_inputs(conn)
                except ArchiverError as exc:
                    conn.deadline = None
                    _answer_error(conn, exc)
                    return
            conn.deadline = None
            sock.settimeout(ANSWER_TIMEOUT)
            log.info("service: serving user=%s uid=%d operation=%s", person.user, uid, op)
            with speaking(language):
                self._answer(conn, ctx, op, args)
        except (EOFError, wire.ProtocolError, OSError) as exc:
            log.warning("service: request dropped pid=%d uid=%d reason=%s", pid, uid,
                        "the client went away" if isinstance(exc, EOFError) else exc)
        except Exception:
            log.exception("service: request failed pid=%d uid=%d", pid, uid)
        finally:
            if ctx is not None:
                ctx.close()
            conn.close()
            self._leave(uid)
            self._slots.release()

    def _answer(self, conn: wire.Connection, ctx: Context, op: str, args: dict[str, Any]) -> None:
        try:
            value = run(ctx, op, args)
        except ArchiverError as exc:
            if exc.exit_code == 70:  # a bug: the traceback stays here, the person gets one line
                log.error("service: internal error operation=%s user=%s", op, ctx.actor.user, exc_info=exc)
                exc = ArchiverError(_("internal error: this is a bug; the station's log has the details "
                                      "(journalctl -u archiver): report it"))
                exc.exit_code = 70
            _answer_error(conn, exc)
            return
        conn.send(wire.RESULT, {"value": value, "handbacks": len(ctx.handbacks)})
        for item in ctx.handbacks:
            conn.send(wire.PUT, {"name": item.name, "sha256": item.sha256, "size": item.size}, item.fd)
            kind, reply, fd = conn.receive()
            if fd is not None:
                os.close(fd)  # unasked
            if kind != wire.REPLY or "error" in reply:
                log.info("service: the client stopped taking files operation=%s", op)
                return


def _read_call(conn: wire.Connection) -> tuple[str, dict[str, Any], str, bool]:
    kind, data, fd = conn.receive(wire.MAX_CALL)
    if fd is not None:
        os.close(fd)  # unasked
    op, args, files, language = data.get("op"), data.get("args", {}), data.get("files"), data.get("language")
    if kind != wire.CALL or not isinstance(op, str) or len(op) > 100 or not isinstance(args, dict) \
            or not isinstance(files, bool):
        raise wire.ProtocolError("not a call of this protocol")
    return op, args, language if language in LANGUAGES else ENGLISH, files


def _read_inputs(conn: wire.Connection) -> list[Any]:
    """The files handed in, up to END, each checked to be a regular file open for reading (ArchiverError
    otherwise; every descriptor is closed then)."""
    inputs: list[Any] = []
    error: ArchiverError | None = None
    while True:
        kind, data, fd = conn.receive(wire.MAX_CALL)
        if kind == wire.END and fd is None:
            break
        if kind != wire.INPUT or fd is None or len(inputs) >= wire.MAX_INPUTS:
            if fd is not None:
                os.close(fd)
            for item in inputs:
                os.close(item.fd)
            raise wire.ProtocolError("not a file handed in, or more than the protocol takes")
        if error is not None:
            os.close(fd)
            continue
        try:
            inputs.append(check_input(data.get("name"), fd))
        except ArchiverError as exc:
            os.close(fd)
            error = exc
    if error is not None:
        for item in inputs:
            os.close(item.fd)
        raise error
    return inputs


def _answer_error(conn: wire.Connection, exc: ArchiverError) -> None:
    conn.send(wire.ERROR, {"message": str(exc), "code": exc.exit_code})


def _yield_to_ingest() -> None:
    """This thread (a person's request) runs ten nice steps below the daemon: on a busy machine the
    evidence being copied goes first, and a lookup waits a little instead. Linux nice is per thread."""
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + REQUEST_NICE))
    except OSError:
        pass


def _listen(path: Any) -> socket.socket:
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
        os.chmod(path, 0o666)  # anyone may ask; the operations decide who gets what
        listener.listen(64)
        listener.settimeout(0.5)
    except OSError as exc:
        listener.close()
        raise ServiceError(_("cannot serve on {path}: {strerror}").format(path=path, strerror=exc.strerror)) from exc
    return listener


def _turn_away(sock: socket.socket, message: str) -> None:
    try:
        sock.settimeout(1)
        wire.Connection(sock).send(wire.ERROR, {"message": message, "code": 3})
    except OSError:
        pass
    finally:
        sock.close()
