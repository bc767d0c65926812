"""The file-system primitives on their own: the sweep of what killed writers left, told apart from what a live
writer (this very process's other threads among them) is still writing."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from archiver.fs import liveness
from archiver.fs.sweep import sweep_interrupted


def test_the_sweep_leaves_a_live_writers_files_even_with_this_processs_pid_and_takes_a_dead_ones(tmp_path: Path):
    """The daemon's ingests are threads of one process: one of them sweeping before it starts must not take the
    temp copy another is writing. A dead pid's files go, and so do those of a pid reused by a process that
    started after they were made."""
    archive, marks = tmp_path / "archive", tmp_path
    day = archive / "2022" / "11" / "03"
    day.mkdir(parents=True)
    me = os.getpid()
    ours = day / f".tmp-{me}-0000beef-TA00716_JX0227_20221103093000.MP4"
    ours_mark = marks / f".tmp-{me}-0000beef-writing"
    for path in (ours, ours_mark):
        path.write_bytes(b"in flight")
    dead = subprocess.Popen(["true"])
    dead.wait()
    theirs = day / f".tmp-{dead.pid}-0badc0de-TA00716_JX0227_20221103093100.MP4"
    theirs_mark = marks / f".tmp-{dead.pid}-0badc0de-writing"
    reused = day / f".tmp-{me}-0ld0ld00-TA00716_JX0227_20221103093200.MP4"  # this pid, before this process began
    for path in (theirs, theirs_mark, reused):
        path.write_bytes(b"half")
    long_ago = liveness.started_at(me) - 3600
    os.utime(reused, (long_ago, long_ago))

    removed = sweep_interrupted(archive, marks)
    assert sorted(removed) == sorted([theirs, theirs_mark, reused])
    assert ours.exists() and ours_mark.exists()


def test_a_process_counts_as_the_maker_only_if_it_had_started_by_then():
    me = os.getpid()
    began = liveness.started_at(me)
    assert began is not None and abs(began - time.time()) < 24 * 3600 * 365
    assert not liveness.gone(me, time.time())  # made now, by this process
    assert liveness.gone(me, began - 3600)  # made before this process began: a reused pid
    assert liveness.gone(None, time.time()) and liveness.gone(2 ** 22 + 7, time.time())  # no pid, nobody's pid


def test_the_append_only_log_sets_a_torn_tail_aside_refuses_a_symlink_and_keeps_lines_whole(tmp_path: Path):
    import threading

    import pytest

    from archiver.errors import UnsafePathError
    from archiver.fs.appendlog import appending, set_aside

    with appending(tmp_path, "log.jsonl") as fh:  # made here: 0640, whole lines
        fh.write(b'{"n": 1}\n')
    assert (tmp_path / "log.jsonl").stat().st_mode & 0o777 == 0o640
    with (tmp_path / "log.jsonl").open("ab") as fh:
        fh.write(b'{"n": 2, "cut')  # a writer killed mid-append
    with appending(tmp_path, "log.jsonl") as fh:
        fh.write(b'{"n": 3}\n')
    assert (tmp_path / "log.jsonl").read_bytes() == b'{"n": 1}\n{"n": 3}\n'
    (aside,) = set_aside(tmp_path, "log.jsonl")
    assert (tmp_path / aside).read_bytes() == b'{"n": 2, "cut'

    def writer(tag: int) -> None:  # appenders under the lock, each with a line of many writes
        for i in range(50):
            with appending(tmp_path, "log.jsonl", lock=True) as fh:
                for part in (b'{"w": ', str(tag).encode(), b', "i": ', str(i).encode(), b"}\n"):
                    fh.write(part)
                    fh.flush()
    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = (tmp_path / "log.jsonl").read_bytes().splitlines()
    assert len(lines) == 202 and all(line.startswith(b"{") and line.endswith(b"}") for line in lines)

    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_bytes(b"")
    (tmp_path / "planted.jsonl").symlink_to(elsewhere)
    with pytest.raises(UnsafePathError, match="is a symlink"):
        with appending(tmp_path, "planted.jsonl") as fh:
            fh.write(b"x\n")
    assert elsewhere.read_bytes() == b""
