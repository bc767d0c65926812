"""The file-system primitives on their own: the sweep of what killed writers left, told apart from what a live
writer (this very process's other threads among them) is still writing."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from archiver import liveness
from archiver.fs import sweep_interrupted


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
