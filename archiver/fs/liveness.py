"""Whether the process that made something still runs: a temp file, a writer's mark, an ingest run's row. Its pid
alone does not say (the daemon's own threads share one pid; a pid is reused after a reboot or in a container):
a process counts as the maker only if it runs now and had started by the time the thing was made."""

from __future__ import annotations

import os
from pathlib import Path

SLACK_S = 1.0  # the kernel gives boot time in whole seconds: a start up to this long after still counts as before


def started_at(pid: int, proc: Path = Path("/proc")) -> float | None:
    """When the process `pid` started (seconds since the epoch), or None when there is no such process."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
        boot = next(int(line.split()[1]) for line in (proc / "stat").read_text().splitlines()
                    if line.startswith("btime "))
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime, in clock ticks after boot
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def gone(pid: int | None, made_at: float) -> bool:
    """Whether the process `pid` that made something at `made_at` (seconds since the epoch) no longer runs: no
    process has that pid, or the one that has it started after the thing was made. Unknown pid: gone."""
    if pid is None:
        return True
    started = started_at(pid)
    return started is None or started > made_at + SLACK_S
