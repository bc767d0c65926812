"""The card's first bytes read while the command is still loading.

A one-shot `archiver ingest` spends its first half second or more (from a cold cache) loading the catalog, the
custody log and the rest before the first byte is copied; the card, the slowest part of a dock, would sit idle
meanwhile. So, once the scan has listed the files, a helper thread reads them in the order the copy will, into
the page cache only (nothing is kept, nothing is written, nothing is trusted: the copy reads and hashes every
byte again, from the cache where it is still there), until the pipeline is ready to start or a budget is spent.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterable
from pathlib import Path

from archiver.archive.copying import open_source
from archiver.errors import SourceReadError

_CHUNK = 1 << 20
BUDGET = 256 << 20  # at most this much read ahead, and never more than an eighth of the memory free


def _budget() -> int:
    try:
        with open("/proc/meminfo", "rb") as fh:
            for line in fh:
                if line.startswith(b"MemAvailable:"):
                    return min(BUDGET, int(line.split()[1]) * 1024 // 8)
    except (OSError, ValueError, IndexError):
        pass
    return BUDGET // 4


class ReadAhead:
    """Reads `paths` (regular files, in order) in a daemon thread until `stop()` or the budget is spent. Opens
    them as the copy does (no symlink followed, no FIFO waited on, the access times kept) and reads nothing that
    is not a regular file by then; any error ends it quietly (the copy will meet the same file and say what is
    wrong)."""

    def __init__(self, paths: Iterable[Path], budget: int | None = None) -> None:
        self._paths, self._budget = list(paths), _budget() if budget is None else budget
        self._stopping = threading.Event()
        self.read = 0  # bytes read so far
        self._thread = threading.Thread(target=self._run, name="readahead", daemon=True)

    def start(self) -> ReadAhead:
        if self._paths and self._budget > 0:
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stops at the next chunk and waits for it (a chunk of a card at USB 2 speed: about 25 ms)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        buffer = bytearray(_CHUNK)
        for path in self._paths:
            try:
                fd = open_source(path)  # as the copy opens it: no symlink, no hang, access times kept
            except SourceReadError:
                continue
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    continue
                while not self._stopping.is_set() and self.read < self._budget:
                    got = os.readv(fd, [buffer])
                    if got <= 0:
                        break
                    self.read += got
            except OSError:
                return
            finally:
                os.close(fd)
            if self._stopping.is_set() or self.read >= self._budget:
                return
