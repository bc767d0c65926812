"""The machinery of a pipeline of stages, each a thread, joined by bounded queues, knowing nothing of files:
batches taken as they come (lingering a moment for more), work started in parallel and handed on in its order,
and one way to halt: a stage whose work raised still hands its items on and the end marker after them, so no
stage ever waits on one that stopped taking. What the items are and what each stage does is the caller's
(`ingest.pipeline`)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

END = None  # what a stage puts after its last item


class Halting:
    """How a run ends early. `halt` for an expected end (no new work starts; with `drop`, the stages let go of
    what they hold); `fail` for an error nobody expected, kept to be raised once the stages have ended."""

    def __init__(self, stops: tuple[type[BaseException], ...]) -> None:
        self.stops = stops  # the errors that halt the run (the others are failures)
        self.halted = threading.Event()
        self.dropping = False
        self.crash: BaseException | None = None
        self.first: BaseException | None = None  # what halted the run
        self._lock = threading.Lock()

    def halt(self, exc: BaseException, drop: bool) -> bool:
        """The first halt counts: True when this one did."""
        with self._lock:
            if self.halted.is_set():
                return False
            self.first, self.dropping = exc, drop
            self.halted.set()
            return True

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            self.crash = self.crash or exc
            self.dropping = True
            self.halted.set()

    def stopping(self, cancel: threading.Event | None) -> Stopping:
        """What long work checks between its steps: a stop request (`cancel`), or a run letting go of what it
        holds."""
        return Stopping(self, cancel)


class Stopping:
    """Set once a stop is requested or the run drops what it holds (duck-types `threading.Event.is_set`)."""

    def __init__(self, halting: Halting, cancel: threading.Event | None) -> None:
        self._halting, self._cancel = halting, cancel

    def is_set(self) -> bool:
        return self._halting.dropping or (self._cancel is not None and self._cancel.is_set())


def take(inbox: queue.Queue, batch: int, linger_s: float) -> tuple[list[Any], bool]:
    """What is waiting, up to `batch` items, waiting up to `linger_s` for more to join the first; and whether
    the end marker came."""
    items = [inbox.get()]
    until = time.monotonic() + linger_s
    while len(items) < batch and items[-1] is not END:
        try:
            items.append(inbox.get(timeout=max(0.0, until - time.monotonic())))
        except queue.Empty:
            break
    ended = items[-1] is END
    return [i for i in items if i is not END], ended


def batch_stage(inbox: queue.Queue, work: Callable[[list[Any]], None], outbox: queue.Queue | None, batch: int,
                linger_s: float, halting: Halting, halt: Callable[[BaseException], None],
                drop: Callable[[list[Any]], None]) -> None:
    """Take batches and work on them to the end marker, whatever happens. Once the run drops what it holds, a
    batch is dropped instead of worked on, except by the last stage (`outbox` None), which still counts. An
    error of `halting.stops` halts the run (`halt`), any other fails it; either way the batch is dropped and
    handed on."""
    ended = False
    while not ended:
        items, ended = take(inbox, batch, linger_s)
        try:
            if halting.dropping:
                drop(items)
            if items and (outbox is None or not halting.dropping):
                work(items)
        except halting.stops as exc:
            halt(exc)
            drop(items)
        except BaseException as exc:
            halting.fail(exc)
            drop(items)
        if outbox is not None:
            for item in items:
                outbox.put(item)
    if outbox is not None:
        outbox.put(END)


def start_each(inbox: queue.Queue, start: Callable[[Any], Future | None], started: queue.Queue, halting: Halting,
               drop: Callable[[list[Any]], None]) -> None:
    """Start the work on each item as it comes (`start` gives its future, or None for nothing to do); the
    bounded `started` queue limits how many run at once."""
    while (item := inbox.get()) is not END:
        try:
            if halting.dropping:
                drop([item])
            started.put((item, start(item)))
        except BaseException as exc:  # pragma: no cover - a pool refuses work only once shut down
            halting.fail(exc)
            drop([item])
            started.put((item, None))
    started.put(END)


def hand_on_in_order(started: queue.Queue, outbox: queue.Queue, halting: Halting, halt: Callable[[BaseException], None],
                     drop: Callable[[list[Any]], None]) -> None:
    """Hand the items on in the order they were started, each once its work has ended. A work that returns an
    error (rather than None) halts the run with it; one that raises fails the run. Either way the item is
    dropped, and handed on."""
    while (entry := started.get()) is not END:
        item, work = entry
        try:
            stop = work.result() if work is not None else None
            if stop is not None:
                halt(stop)
                drop([item])
        except BaseException as exc:
            halting.fail(exc)
            drop([item])
        outbox.put(item)
    outbox.put(END)
