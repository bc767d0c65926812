"""Formatting for people (tables, progress) and for scripts (one JSON document on stdout)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _stream(stream: Any) -> Any:
    """The stream a served command really writes to (the station service switches sys.stdout per thread)."""
    return getattr(stream, "target", stream)


def console() -> Console:
    """Tables on stdout; piped into a file or another program, they are not cut to 80 columns."""
    file = _stream(sys.stdout)
    out = Console(file=file, highlight=False, width=getattr(file, "columns", None))
    if not out.is_terminal:
        out = Console(file=file, highlight=False, width=400)
    return out


class TerminalProgress:
    """Files, bytes and throughput on stderr while an ingest runs, when stderr is a terminal."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
            TransferSpeedColumn(), TimeRemainingColumn(),
            console=Console(file=_stream(sys.stderr), width=getattr(_stream(sys.stderr), "columns", None)),
        )
        self._task = self._progress.add_task("ingest", total=None)
        self._files = self._done = 0

    @staticmethod
    def wanted() -> bool:
        return sys.stderr.isatty()

    def begin(self, files: int, total_bytes: int) -> None:
        self._files = files
        self._progress.update(self._task, total=total_bytes, description=f"ingest 0/{files} files")
        self._progress.start()

    def advance(self, nbytes: int) -> None:
        self._progress.advance(self._task, nbytes)

    def file_done(self, rel: str, outcome: str) -> None:
        self._done += 1
        self._progress.update(self._task, description=f"ingest {self._done}/{self._files} files")
        if outcome == "failed":
            self._progress.console.print(f"[red]failed[/red] {rel!r}")

    def end(self) -> None:
        self._progress.stop()
