"""The I/O of one copy into the archive, and of reading one back: the hashers, a read-ahead over the source,
big copies written straight to the disk (O_DIRECT, requests in flight each way) with each chunk read back and
compared as it is written, the page-cache path for what O_DIRECT refuses, and the libc calls they need.
`store.Archive` puts them together; nothing here knows the archive's layout."""

from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import logging
import mmap
import os
import queue
import sys
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from archiver.errors import (
    SourceReadError,
    storage_error,
)
from archiver.fs import AtomicFile, Folder
from archiver.i18n import _

log = logging.getLogger(__name__)

CHUNK = 1 << 20

class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...


class _CryptographySM3:
    """SM3 through the cryptography package, for an OpenSSL whose hashlib lacks it."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import hashes

        self._hash = hashes.Hash(hashes.SM3())

    def update(self, data: bytes | memoryview, /) -> None:
        self._hash.update(bytes(data))

    def hexdigest(self) -> str:
        return self._hash.finalize().hex()


def new_hasher(algorithm: str) -> Hasher:
    if algorithm == "sm3" and "sm3" not in hashlib.algorithms_available:
        return _CryptographySM3()
    return hashlib.new(algorithm)


class Cancelled(Exception):
    """The copy was stopped on request (the daemon is shutting down); its temp file is gone."""


class _NoDirectIO(Exception):
    pass


class _ReadAhead:
    """Chunks of a file descriptor, read by a helper thread one step ahead of the consumer.

    Reading overlaps hashing and writing (each releases the GIL), and memory stays at `depth`
    page-aligned buffers (as O_DIRECT requires) whatever the file size. An error from reading
    is raised in the consumer, as the original OSError.

    With `cached_first` (a source), what the page cache already holds is read in the consumer's own thread
    (`RWF_NOWAIT`: a read that would wait for the device is refused, not made), and the helper thread starts at
    the first chunk the cache lacks. A chunk handed between threads costs each thread the GIL again, and on a
    source the cache holds (a card's first files read while the command loaded, an inbox just written) that
    handing, not the read, was the cost: `copy_in` of 1.3 GB of the bench's card, cached, on the same disk took
    2.6-3.8 s with the thread, 2.4-2.6 s without it.
    """

    def __init__(self, fd: int, depth: int = 3, cached_first: bool = False) -> None:
        self._fd = fd
        self._free: queue.Queue[mmap.mmap | None] = queue.Queue()
        self._full: queue.Queue[tuple[mmap.mmap | None, int, BaseException | None]] = queue.Queue()
        for _slot in range(depth):
            self._free.put(mmap.mmap(-1, CHUNK))
        self._thread: threading.Thread | None = None
        self._offset = 0  # read in the consumer's thread so far
        if not (cached_first and hasattr(os, "RWF_NOWAIT")):
            self._start()

    def _start(self, at: int | None = None) -> None:
        """The helper thread, reading on from the descriptor's position (or from `at`)."""
        if at is not None:
            os.lseek(self._fd, at, os.SEEK_SET)
        self._thread = threading.Thread(target=self._read, name="read-ahead", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while (buf := self._free.get()) is not None:
                n = os.readv(self._fd, [buf])
                self._full.put((buf, n, None))
                if n == 0:
                    return
        except BaseException as exc:  # handed to the consumer
            self._full.put((None, 0, exc))

    def _cached(self, buf: mmap.mmap) -> int | None:
        """The next chunk, if the page cache holds its start (the rest of it then read, so chunks stay whole and
        block-aligned); None when it would wait for the device, or the filesystem cannot tell."""
        try:
            n = os.preadv(self._fd, [buf], self._offset, os.RWF_NOWAIT)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                return None
            raise
        with memoryview(buf) as view:
            while 0 < n < len(buf) and (more := os.preadv(self._fd, [view[n:]], self._offset + n)):
                n += more
        return n

    def __iter__(self) -> Iterator[memoryview]:
        for buf, n in self.held():
            with memoryview(buf) as view:
                yield view[:n]
            self._free.put(buf)

    def held(self) -> Iterator[tuple[mmap.mmap, int]]:
        """(buffer, bytes read) in order; each buffer is the consumer's until it calls `release`."""
        while self._thread is None:
            buf = self._free.get()
            n = self._cached(buf)
            if n is None:
                self._free.put(buf)
                self._start(self._offset)
            elif n == 0:
                self._free.put(buf)
                return
            else:
                self._offset += n
                yield buf, n
        while True:
            buf, n, exc = self._full.get()
            if exc is not None:
                raise exc
            if buf is None or n == 0:
                return
            yield buf, n

    def release(self, buf: mmap.mmap) -> None:
        self._free.put(buf)

    def close(self) -> None:
        if self._thread is not None:
            self._free.put(None)
            self._thread.join()

    def __enter__(self) -> _ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_buffers = threading.local()


def _thread_buffer(use: str) -> mmap.mmap:
    """This thread's own page-aligned chunk buffer (as O_DIRECT requires) for `use`: mapping and unmapping one
    per file or per chunk costs more than the read it serves."""
    buf = getattr(_buffers, use, None)
    if buf is None:
        buf = mmap.mmap(-1, CHUNK)
        setattr(_buffers, use, buf)
    return buf


class _Direct:
    """Chunks of a small file read in this thread: a read-ahead thread would cost more than the read.
    Each thread keeps one buffer: mapping and unmapping one per file costs more than reading it."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buf = _thread_buffer("chunk")

    def __iter__(self) -> Iterator[memoryview]:
        while n := os.readv(self._fd, [self._buf]):
            with memoryview(self._buf) as view:
                yield view[:n]

    def __enter__(self) -> _Direct:
        return self

    def __exit__(self, *exc: object) -> None:
        pass  # the buffer goes with its last view


DEEP = 32 * CHUNK  # from this size a copy takes the deep path: requests in flight each way, proved as it is written
_WAIT_WRITE = 1 | 2 | 4  # sync_file_range: wait for earlier writeback, write the range, wait for it


def _chunks(fd: int, size: int, cached_first: bool = False) -> _Direct | _ReadAhead:
    """Read ahead in a helper thread only where there is more than one chunk to overlap (with `cached_first`, only
    from the first chunk the page cache lacks)."""
    return _Direct(fd) if size < CHUNK else _ReadAhead(fd, cached_first=cached_first)


def _hash_file(folder: Folder, name: str, extra_flags: int, algorithms: Iterable[str],
               cancel: threading.Event | None = None, head: bytearray | None = None) -> dict[str, str]:
    hashers = {a: new_hasher(a) for a in algorithms}
    try:
        fd = folder.open_file(name, os.O_RDONLY | extra_flags)
    except OSError as exc:
        if extra_flags and exc.errno == errno.EINVAL:
            raise _NoDirectIO from exc
        raise
    try:
        if not extra_flags:
            _advise(fd, os.POSIX_FADV_DONTNEED)
        with _chunks(fd, os.fstat(fd).st_size) as chunks:
            try:
                for chunk in chunks:
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("stopped while reading back the archived copy")
                    if head is not None and not head:
                        head += chunk
                    for h in hashers.values():
                        h.update(chunk)
            except OSError as exc:
                if extra_flags and exc.errno == errno.EINVAL:
                    raise _NoDirectIO from exc
                raise
    finally:
        os.close(fd)
    return {a: h.hexdigest() for a, h in hashers.items()}


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _errno_error() -> OSError:
    """The OSError of the libc call that just failed."""
    err = ctypes.get_errno()
    return OSError(err, os.strerror(err))


def open_source(source: Path) -> int:
    """A recorder's file opened for reading, and only that (SourceReadError otherwise)."""
    # O_NOFOLLOW: a file swapped for a symlink after the scan is refused; O_NONBLOCK: a FIFO
    # swapped in does not hang us; O_NOATIME: the recorder's access times stay as they were.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    for extra in (getattr(os, "O_NOATIME", 0), 0):
        try:
            return os.open(source, flags | extra)
        except PermissionError:
            if not extra:
                raise SourceReadError(_("permission denied")) from None
        except OSError as exc:
            raise SourceReadError(_describe_read_error(exc)) from exc
    raise SourceReadError(_("cannot open"))  # pragma: no cover - loop always returns or raises


def _pump(src_fd: int, out_fd: int, size: int, hashers: Iterable[Hasher], folder: Path, on_bytes,
          cancel: threading.Event | None) -> int:
    hashers = list(hashers)
    total = 0
    with _chunks(src_fd, size, cached_first=True) as chunks:
        try:
            for chunk in chunks:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("stopped before this file was copied completely")
                _update(hashers, chunk)
                _write_at(out_fd, out_fd, chunk, total, folder)
                total += len(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
        except OSError as exc:
            raise SourceReadError(_describe_read_error(exc)) from exc
    return total


SWITCH_INTERVAL_S = 1e-4


def quick_handoffs() -> None:
    """Let a thread whose read, write or hash just returned have the GIL back within a tenth of a millisecond,
    not the interpreter's default 5 ms (process-wide, and kept: every run wants it). Each chunk of a copy passes
    between threads several times, and while another thread runs Python (the catalog loading as the copy starts,
    a batch being recorded) each pass waited out the interval: a cached 1.3 GB card took 2.77 s to ingest
    at 5 ms, 2.00 s at 0.1 ms, the bare copy loop 2.03 s (medians of 6, side by side); 30 us and 10 us did
    worse (2.28 s, 2.39 s). 10,000 photos: 10.4 s and 10.9 s, within their noise."""
    if sys.getswitchinterval() > SWITCH_INTERVAL_S:
        sys.setswitchinterval(SWITCH_INTERVAL_S)


DEPTH = 4  # requests a big file keeps in flight on the archive disk, each way: a disk serves several faster


def _pump_deep(src_fd: int, out_fd: int, direct_fd: int | None, proof_fd: int | None, hashers: Iterable[Hasher],
               folder: Path, on_bytes, cancel: threading.Event | None) -> tuple[int, bool]:
    """A big file: read ahead, hash in order, and write each chunk at its offset with DEPTH writes in flight,
    straight to the disk through `direct_fd` (O_DIRECT; no page-cache copy to write back later) where the
    chunk is block-aligned, else through `out_fd`. Each chunk is then read back through `proof_fd` (O_DIRECT)
    and compared with the bytes hashed. Returns (bytes copied, whether every chunk was read back and matched)."""
    hashers = list(hashers)
    writes = _Writes(out_fd, direct_fd, proof_fd, folder)
    total = 0
    try:
        # DEPTH buffers held by the writes (each until its read-back), DEPTH read ahead, one being hashed
        with _ReadAhead(src_fd, depth=2 * DEPTH + 1, cached_first=True) as chunks:
            try:
                for buf, n in chunks.held():
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("stopped before this file was copied completely")
                    with memoryview(buf) as view:
                        _update(hashers, view[:n])
                    writes.submit(buf, n, total, chunks.release)
                    total += n
                    if on_bytes is not None:
                        on_bytes(n)
            except OSError as exc:
                raise SourceReadError(_describe_read_error(exc)) from exc
            finally:
                writes.wait()  # before the buffers go
    finally:
        writes.close()
    return total, writes.proved


def copy_deep(place: Folder, out: AtomicFile, src_fd: int, size: int, hashers: dict[str, Hasher], folder: Path,
              on_bytes, cancel: threading.Event | None) -> tuple[int, dict[str, str] | None]:
    """A big file written straight to the disk, each chunk read back past the page cache and compared with the
    bytes that were hashed: (bytes copied, the digests when every chunk matched, else None)."""
    _preallocate(out.fd, size, folder)
    direct = _open_direct(place, out.temp, os.O_WRONLY)
    proof = _open_direct(place, out.temp, os.O_RDONLY) if direct is not None else None
    try:
        total, proved = _pump_deep(src_fd, out.fd, direct, proof, hashers.values(), folder, on_bytes, cancel)
    finally:
        for fd in (direct, proof):
            if fd is not None:
                os.close(fd)
    # every byte on the disk is then a byte that was hashed
    return total, {a: h.hexdigest() for a, h in hashers.items()} if proved else None


class _Writes:
    """Positional writes of one file, DEPTH at a time, each read back and compared where `proof_fd` allows;
    the first error is raised by `wait`."""

    def __init__(self, out_fd: int, direct_fd: int | None, proof_fd: int | None, folder: Path) -> None:
        self._out, self._direct, self._proof, self._folder = out_fd, direct_fd, proof_fd, folder
        self._pool = ThreadPoolExecutor(DEPTH, thread_name_prefix="write")
        self._pending: list = []
        self._error: BaseException | None = None
        self.proved = proof_fd is not None  # so far, every chunk written was read back and matched

    def submit(self, buf: mmap.mmap, n: int, offset: int, release) -> None:
        if self._error is not None:
            release(buf)
            raise self._error
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._pool.submit(self._write, buf, n, offset, release))

    def _write(self, buf: mmap.mmap, n: int, offset: int, release) -> None:
        try:
            direct = self._direct is not None and not n % _BLOCK and not offset % _BLOCK
            with memoryview(buf) as view:
                used = _write_at(self._direct if direct else self._out, self._out, view[:n], offset, self._folder)
            if direct and used == self._out:
                self._direct = None  # this filesystem takes no direct writes after all
            if self.proved and not self._matches(buf, n, offset, buffered=used == self._out):
                self.proved = False
        except BaseException as exc:
            self._error = self._error or exc
        finally:
            release(buf)

    def _matches(self, buf: mmap.mmap, n: int, offset: int, buffered: bool) -> bool:
        """Read the chunk just written back from the disk and compare. False sends the whole copy to be read
        back after the copy (a filesystem refusing a direct read, or a mismatch: that read-back decides)."""
        back = _thread_buffer("back")
        try:
            if buffered and _libc().sync_file_range(self._out, ctypes.c_int64(offset), ctypes.c_int64(n),
                                                    _WAIT_WRITE) != 0:
                raise _errno_error()
            got = os.preadv(self._proof, [back], offset)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                return False
            raise storage_error(exc, str(self._folder)) from exc
        if got >= n and _same(back, buf, n):
            return True
        log.warning("copy read back differs while being written folder=%s offset=%d: reading it all back",
                    self._folder, offset)
        return False

    def wait(self) -> None:
        for future in self._pending:
            future.result()
        self._pending = []
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        self._pool.shutdown()


def _same(a: mmap.mmap, b: mmap.mmap, n: int) -> bool:
    """Whether the first `n` bytes of two buffers are equal (memcmp: comparing memoryviews goes byte by byte
    in Python's own loop, about 80 times slower)."""
    x, y = ctypes.c_char.from_buffer(a), ctypes.c_char.from_buffer(b)
    try:
        return _libc().memcmp(ctypes.c_void_p(ctypes.addressof(x)), ctypes.c_void_p(ctypes.addressof(y)),
                             ctypes.c_size_t(n)) == 0
    finally:
        del x, y


_BLOCK = 4096  # what O_DIRECT needs offsets and lengths to be multiples of (the common logical block size)


def _update(hashers: list[Hasher], chunk: memoryview) -> None:
    for h in hashers:
        h.update(chunk)


def _write_at(fd: int, out_fd: int, chunk: memoryview, offset: int, folder: Path) -> int:
    """Write `chunk` at `offset`; returns the descriptor that wrote it (`out_fd` if O_DIRECT was refused)."""
    done = 0
    try:
        while done < len(chunk):
            try:
                done += os.pwrite(fd, chunk[done:], offset + done)
            except OSError as exc:
                if fd == out_fd or exc.errno != errno.EINVAL:
                    raise
                fd = out_fd
    except OSError as exc:
        raise storage_error(exc, str(folder)) from exc
    return fd


def _make_durable(out: AtomicFile, folder: Path) -> None:
    try:
        if out.fd >= 0:
            out.sync()
            _advise(out.fd, os.POSIX_FADV_DONTNEED)  # the read-back goes to the disk anyway
        out.flush()
    except OSError as exc:
        raise storage_error(exc, str(folder)) from exc


def _preallocate(fd: int, size: int, folder: Path) -> None:
    """Give a big copy all its blocks before it is written (fallocate): its direct writes then land inside the
    file's size in allocated space (the same-disk benchmark went from about 4.5 s to 3.7 s), and a disk too
    full for it says so before the copy starts. A filesystem that cannot is left to allocate as it writes.
    The copy always ends at exactly the source's size, or is discarded."""
    if _libc().fallocate(fd, 0, ctypes.c_int64(0), ctypes.c_int64(size)) != 0:
        error = _errno_error()
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
            raise storage_error(error, str(folder))


def _open_direct(folder: Folder, name: str, access: int) -> int | None:
    """Another, O_DIRECT descriptor on the file `name` (O_WRONLY or O_RDONLY), where the filesystem allows one."""
    try:
        return folder.open_file(name, access | os.O_DIRECT)
    except OSError:
        return None


def _describe_read_error(exc: OSError) -> str:
    if exc.errno in (errno.EIO, errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.ESTALE, errno.ENOTCONN):
        return _("reading the recorder failed ({strerror}): was it removed? dock it again to finish").format(
            strerror=exc.strerror)
    if exc.errno == errno.ELOOP:
        return _("became a symlink after the scan; not followed")
    return _("cannot read: {strerror}").format(strerror=exc.strerror)


def _advise(fd: int, advice: int) -> None:
    try:
        os.posix_fadvise(fd, 0, 0, advice)
    except OSError:
        pass  # advice only; some filesystems do not take it
