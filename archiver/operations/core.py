"""What every operation shares: the person it is done for, the files they handed in, what it hands back, the
custody events it writes, and the one door (`run`) through which every face calls it.

An operation is a function `op(ctx, **arguments) -> value`: `ctx` carries the actor and the workspace, the
arguments are plain typed values (str, int, float, bool, None and lists of them), and the value is plain
data (the JSON form of the contracts), so the station service can carry both and the face that asked formats
the value with the same code whether it ran the operation itself or had the service run it. `run` decides
whether the actor may do it at all (the matrix); the operation decides what they may see (an officer's own)
and writes its custody event.
"""

from __future__ import annotations

import fcntl
import importlib
import logging
import os
import stat
import threading
import time
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archiver.config import Config
from archiver.errors import ArchiverError, InternalError, NotFoundError, RefusedError
from archiver.fs import relative_name
from archiver.i18n import ENGLISH, _, speaking
from archiver.operations.access import MATRIX, Actor

log = logging.getLogger(__name__)

TEXT_LIMIT = 500  # characters of any free text a custody event keeps (a search text, a reason)
LIST_LIMIT = 1000  # items of a list a custody event keeps

# Where each operation lives, by the matrix's name; loaded when first called (a lookup does not pay for
# ffmpeg, bagit or age). Rooms above this one (the centre) register theirs here by name.
MODULES = {
    "init": "station", "daemon": "station", "ingest": "station", "devices add": "station", "devices list": "lookups",
    "recordings list": "lookups", "recordings show": "lookups", "recordings get": "evidence",
    "recordings view": "lookups",
    "recordings classify": "keeping", "cases import": "cases", "cases link": "cases", "cases unlink": "cases",
    "cases remove": "cases", "cases list": "lookups", "cases search": "lookups", "cases show": "lookups",
    "cases check": "lookups", "cases report": "cases", "people import": "cases", "people list": "cases",
    "recordings set-time": "cases", "verify": "archiver.central.operations",
    "verify-export": "evidence",
    "status": "archiver.central.operations", "export": "evidence", "keys show": "lookups", "custody show": "lookups",
    "backup run": "backups", "backup status": "backups", "backup verify": "backups",
    "backup restore": "backups", "rebuild-catalog": "evidence", "access show": "lookups",
    "access check": "lookups", "hold add": "keeping", "hold remove": "keeping", "hold list": "keeping",
    "retention plan": "keeping", "retention requests": "keeping", "retention purge": "keeping",
    "retention approve": "keeping", "report year": "lookups", "report period": "lookups",
    "sync": "archiver.central.operations", "central": "archiver.central.operations", "web": "station",
    "stations add": "archiver.central.operations",
    "stations list": "archiver.central.operations", "stations check": "archiver.central.operations",
}


@dataclass(frozen=True)
class Input:
    """A file the person opened for an operation, as themselves: a descriptor of a regular file (never a
    path) and a checked relative name (its place in a folder they handed in, or its own name)."""

    name: str
    fd: int

    def read(self, limit: int) -> bytes:
        """Its bytes, at most `limit` of them (else refused)."""
        chunks, got = [], 0
        while got <= limit and (chunk := os.pread(self.fd, 1 << 20, got)):
            chunks.append(chunk)
            got += len(chunk)
        if got > limit:
            raise ArchiverError(_("{path} is larger than {value} MiB: refused").format(path=self.name,
                                                                                    value=limit >> 20))
        return b"".join(chunks)


@dataclass(frozen=True)
class Handback:
    """A file an operation hands to the person: named by the operation (a checked relative name), open at
    `fd`, with the hash and size the copy must have. The face copies it where the person asked."""

    name: str
    fd: int
    sha256: str | None = None
    size: int | None = None


def check_input(name: object, fd: int) -> Input:
    """A descriptor handed in: refused unless it is open for reading on a regular file (an O_PATH descriptor
    or one of a folder, a device or a socket is refused)."""
    name = relative_name(name)
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        st = os.fstat(fd)
    except OSError as exc:
        raise ArchiverError(_("{name}: not an open file ({strerror})").format(name=name,
                                                                            strerror=exc.strerror)) from None
    if flags & getattr(os, "O_PATH", 0) or flags & os.O_ACCMODE == os.O_WRONLY or not stat.S_ISREG(st.st_mode):
        raise ArchiverError(_("{name} was not handed in as a regular file open for reading: refused").format(
                              name=name))
    return Input(name, fd)


def capped(value: Any, limit: int = TEXT_LIMIT) -> Any:
    """`value` with every string cut to `limit` characters and every list to LIST_LIMIT items (what a
    custody event keeps of free text: a reason, a search, a path)."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + f"…[{len(value) - limit} more]"
    if isinstance(value, dict):
        return {str(k)[:limit]: capped(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [capped(v, limit) for v in value[:LIST_LIMIT]]
        return items + ([f"…[{len(value) - LIST_LIMIT} more]"] if len(value) > LIST_LIMIT else [])
    return value


class Refusals:
    """A person's refusals in the custody log: the first of each window is written at once, the rest are
    counted and written with the next one after the window (or when the service stops). However fast someone
    knocks, the log grows by one event a minute for them."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._last: dict[int, float] = {}
        self._pending: dict[int, tuple[dict[str, Any], dict[str, int]]] = {}

    def refused(self, ws: Any, actor: dict[str, Any], command: str, reason: str) -> None:
        uid, now = int(actor["uid"]), time.monotonic()
        with self._lock:
            if now - self._last.get(uid, -self.window) < self.window:
                _actor, counts = self._pending.setdefault(uid, (actor, {}))
                counts[command] = counts.get(command, 0) + 1
                return
            self._last[uid] = now
            _actor, earlier = self._pending.pop(uid, (actor, {}))
        details = {"reason": capped(reason), "count": 1 + sum(earlier.values())}
        if earlier:
            details["also"] = earlier
        ws.custody.as_actor(actor).append("denied", {"command": command}, details)

    def flush(self, ws: Any) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for actor, counts in pending.values():
            ws.custody.as_actor(actor).append("denied", {"command": None},
                                              {"count": sum(counts.values()), "also": counts})


@dataclass
class Context:
    """What an operation is given besides its arguments."""

    cfg: Config
    actor: Actor
    opener: Callable[[bool], Any]  # upgrade -> the Workspace (opened once; the daemon's own when served)
    inputs: list[Input] = field(default_factory=list)
    local: bool = False  # run in the person's own process: paths they name are theirs to open
    refusals: Refusals | None = None
    name: str = ""  # the operation, as the matrix names it
    handbacks: list[Handback] = field(default_factory=list)
    progress: Any = None  # a progress bar on the person's terminal, when the face runs the operation itself

    def workspace(self, *, upgrade: bool = False) -> Any:
        """The workspace, its custody events naming this actor."""
        return self.opener(upgrade).acting(self.actor.actor(self.name))

    def record(self, action: str, subject: dict[str, Any], details: dict[str, Any] | None = None,
               session: Any = None) -> None:
        """This operation's custody event (free text capped); with `session`, in that catalog transaction."""
        self.workspace().custody.append(action, capped(subject), capped(details or {}), session=session)

    def own_officer(self) -> str | None:
        """The officer number this actor's view is narrowed to (an officer alone); None when not narrowed."""
        if not self.actor.only_own(self.name):
            return None
        if not self.actor.officer_no:
            from archiver.cases.people import officer_of_user

            found = officer_of_user(self.workspace().catalog, self.actor.user)  # the personnel register's 系统用户
            if found:
                return found
            raise RefusedError(_("{user} is an officer with no 执法证号: give it in the personnel register's 系统用户 "
                                 "column (archiver people import), or add '{user} = \"JX…\"' under "
                                 "[access.officers]").format(user=self.actor.user))
        return self.actor.officer_no

    def hand_back(self, name: str, fd: int, sha256: str | None = None, size: int | None = None) -> None:
        self.handbacks.append(Handback(relative_name(name), fd, sha256, size))

    def the_input(self) -> Input:
        if len(self.inputs) != 1:
            raise ArchiverError(_("this needs exactly one file handed in ({count} given)").format(
                                  count=len(self.inputs)))
        return self.inputs[0]

    def close(self) -> None:
        for item in (*self.inputs, *self.handbacks):
            try:
                os.close(item.fd)
            except OSError:
                pass
        self.inputs, self.handbacks = [], []


_REGISTRY: dict[str, Callable[..., Any]] = {}


def operation(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a function as the operation the matrix calls `name`."""
    if name not in MATRIX:
        raise AssertionError(f"{name!r} has no row in the permission matrix")

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[name] = fn
        return fn

    return register


def find(name: str) -> Callable[..., Any]:
    """The operation `name`, its module loaded on first use. NotFoundError for a name that is none."""
    if name not in _REGISTRY:
        module = MODULES.get(name)
        if module is None:
            raise NotFoundError(_("no operation {name!r}").format(name=str(name)[:100]))
        importlib.import_module(module if "." in module else f"archiver.operations.{module}")
    return _REGISTRY[name]


def check_arguments(fn: Callable[..., Any], args: object) -> dict[str, Any]:
    """The arguments of a call that came over the wire, checked against the operation's signature: known
    names, the declared types, no NUL in any text. ArchiverError (bad input, exit 2) otherwise."""
    if not isinstance(args, dict):
        raise ArchiverError(_("the arguments of an operation are an object of names and values"))
    hints = typing.get_type_hints(fn)
    names = [n for n in fn.__code__.co_varnames[1:fn.__code__.co_argcount + fn.__code__.co_kwonlyargcount]]
    for key, value in args.items():
        if key not in names or not _fits(value, hints.get(key, Any)):
            raise ArchiverError(_("argument {name!r} is not one this operation takes, or not of its type").format(
                                  name=str(key)[:100]))
    return args


def _fits(value: Any, hint: Any) -> bool:
    if hint is Any:
        return _plain(value)
    origin, params = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, p) for p in params)
    if origin in (list, tuple):
        return isinstance(value, list) and len(value) <= 100_000 and all(_fits(v, params[0]) for v in value)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str) and "\0" not in value
    return isinstance(value, hint)


def _plain(value: Any) -> bool:
    if isinstance(value, str):
        return "\0" not in value
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, bool | int | float)


def admit(ctx: Context, name: str) -> None:
    """Whether `ctx.actor` may do operation `name` at all: RefusedError (exit 4, a `denied` event) unless the
    matrix lets their roles do it; NotFoundError for a name that is no operation."""
    if name not in MATRIX:
        raise NotFoundError(_("no operation {name!r}").format(name=str(name)[:100]))
    ctx.name = name
    refusal = ctx.actor.refusal(name, ctx.cfg.access.groups)
    if refusal is not None:
        with speaking(ENGLISH):  # the custody log is read by auditors anywhere: one language
            logged = ctx.actor.refusal(name, ctx.cfg.access.groups) or refusal
        ws = ctx.opener(False)
        actor = ctx.actor.actor(name)
        if ctx.refusals is not None:
            ctx.refusals.refused(ws, actor, name, logged)
        else:
            ws.custody.as_actor(actor).append("denied", {"command": name}, {"reason": capped(logged)})
        raise RefusedError(refusal)


def run(ctx: Context, name: str, args: dict[str, Any]) -> Any:
    """Do operation `name` for `ctx.actor`, once admitted (`admit`). An error that is not an ArchiverError
    becomes InternalError (the caller decides where its traceback goes)."""
    admit(ctx, name)
    fn = find(name)
    args = check_arguments(fn, args)
    try:
        return fn(ctx, **args)
    except ArchiverError:
        raise
    except Exception as exc:
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):  # the catalog locked or full outside a commit
            from archiver.catalog.db import catalog_error

            raise catalog_error(exc) from exc
        raise InternalError(str(exc)) from exc


def input_path(ctx: Context, path: str | None) -> Path | None:
    """A path the person named, for an operation run in their own process alone: the station service never
    opens a path for someone else."""
    if path is None:
        return None
    if not ctx.local:
        raise ArchiverError(_("the station service opens no path for you: hand the files in instead"))
    return Path(path)
