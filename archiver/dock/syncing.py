"""The daemon's continuous sync: ship the custody log to the centre every `central.interval_s` and after
each ingest; while the centre is out of reach, wait longer each time (doubling, up to
`central.max_backoff_s`), so a station offline for days only grows its queue and a log line per try."""

from __future__ import annotations

import logging
import threading

from archiver.archive.workspace import Workspace
from archiver.central.sync import sync
from archiver.errors import ArchiverError

log = logging.getLogger(__name__)


class ContinuousSync:
    def __init__(self, ws: Workspace, stop: threading.Event) -> None:
        self.ws = ws
        self.stop = stop
        self.delay = ws.cfg.central.interval_s
        self._poked = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sync", daemon=True)

    def start(self) -> None:
        if self.ws.cfg.central.url:
            log.info("central sync on station=%s every=%ss", self.ws.cfg.station_id, self.ws.cfg.central.interval_s)
            self._thread.start()

    def poke(self) -> None:
        """Something new is in the log (an ingest ended): sync soon, unless the centre is being waited for."""
        self._poked.set()

    def join(self) -> None:
        if self._thread.is_alive():
            self._poked.set()
            self._thread.join()

    def _run(self) -> None:
        central = self.ws.cfg.central
        while not self.stop.is_set():
            try:
                report = sync(self.ws, cancel=self.stop)
            except ArchiverError as exc:
                self.delay = min(max(self.delay * 2, central.interval_s), central.max_backoff_s)
                log.warning("central sync failed station=%s retry_in=%.0fs error=%s", self.ws.cfg.station_id,
                            self.delay, exc)
                self._wait(self.delay, pokeable=False)
                continue
            except Exception:
                log.exception("central sync crashed station=%s", self.ws.cfg.station_id)
                self.delay = central.max_backoff_s
                self._wait(self.delay, pokeable=False)
                continue
            self.delay = central.interval_s
            if report.applied or report.refused:
                log.log(logging.ERROR if report.refused else logging.INFO,
                        "central sync station=%s applied=%d central_seq=%d head=%d refused=%s",
                        report.station, report.applied, report.central_seq, report.head,
                        ";".join(f"{r['seq']}:{r['kind']}" for r in report.refused) or "-")
            self._wait(self.delay, pokeable=True)

    def _wait(self, seconds: float, pokeable: bool) -> None:
        if not pokeable:  # backing off: an ingest does not bring an unreachable centre back
            self.stop.wait(seconds)
            self._poked.clear()
            return
        self._poked.wait(seconds)
        self._poked.clear()
