"""The web view as the daemon's child (`web.with_daemon`, `archiver daemon --web`): a process of its own, so it
keeps its lower priority, its password helper and its drop to the service user, and a crash of either side leaves
the other running. Restarted when it ends while the daemon runs; stopped with the daemon."""

from __future__ import annotations

import logging
import subprocess
import threading

log = logging.getLogger(__name__)

RESTART_AFTER_S = 5.0  # as the unit's RestartSec


class WebChild:
    def __init__(self, stop: threading.Event, command: list[str], restart_after_s: float = RESTART_AFTER_S) -> None:
        self._stop = stop
        self._command = command
        self._restart_after_s = restart_after_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._keep, name="web", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _keep(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self._stop.is_set():
                    return
                self._proc = subprocess.Popen(self._command, stdin=subprocess.DEVNULL)
            log.info("web view started pid=%d", self._proc.pid)
            code = self._proc.wait()
            if self._stop.is_set():
                return
            log.error("web view ended code=%d: started again in %.0f s", code, self._restart_after_s)
            self._stop.wait(self._restart_after_s)

    def stop(self, timeout: float = 15.0) -> None:
        """After the daemon's stop is set: SIGTERM the child, SIGKILL it if it has not gone within the timeout."""
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._thread.join(timeout)
