"""Running the real daemon as a process, for the dock tests."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from runner import ARCHIVER


def wait_for(predicate: Callable[[], object], timeout: float, what: str, step: float = 0.01):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class DaemonProcess:
    """`archiver daemon` with its own config; stderr goes to a log file the test can read."""

    def __init__(self, tmp: Path, data_dir: Path, roots: list[Path], inboxes: list[Path] | None = None,
                 extra: str = "", env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.config = tmp / f"daemon-{time.monotonic_ns()}.toml"
        if "[service]" not in extra:  # its own socket, never the machine's /run/archiver (and short: 107 bytes)
            self.socket_dir = Path(tempfile.mkdtemp(prefix="arcv-"))
            extra += f'\n[service]\nsocket = "{self.socket_dir}/archiver.sock"\n'
        self.config.write_text(
            "[dock]\n"
            f"mount_roots = {[str(r) for r in roots]!r}\n"
            f"inboxes = {[str(i) for i in inboxes or []]!r}\n"
            "settle_seconds = 0.5\n" + extra
        )
        self.log_path = tmp / f"daemon-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [ARCHIVER, "--config", str(self.config), "--data-dir", str(data_dir), "daemon"],
            stdout=subprocess.DEVNULL, stderr=self._log, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )
        wait_for(lambda: "daemon ready" in self.log() or self.proc.poll() is not None, 30, "daemon ready")
        assert self.proc.poll() is None, self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def catalog_rows(data_dir: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(data_dir / "catalog.db")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def temp_files(data_dir: Path) -> list[Path]:
    root = data_dir / "archive"
    return [p for p in root.rglob(".tmp-*")] if root.exists() else []


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime, all threads
