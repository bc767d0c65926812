"""Formatting for people (tables, progress) and for scripts (one JSON document on stdout)."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, TypeVar

import click

from archiver.i18n import _, use_english
from archiver.i18n.text import break_points, cells, head, shorten_middle

SHORTEST = 12  # columns a shortened path keeps at the least: its start, "…" and the end of its name
PREFIX = 9  # columns a shortened hash keeps: 8 hex digits (enough to find a recording) and "…"
COLUMN_GAP = 2  # between two columns of a table

F = TypeVar("F", bound=Callable[..., Any])

def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def echo_fields(rows: list[tuple[str, str]]) -> None:
    """Label and value lines, the values lined up (by terminal columns: a Chinese label is twice as wide)."""
    width = max(cells(label) for label, _value in rows) + 2
    for label, value in rows:
        click.echo(label + " " * (width - cells(label)) + value)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def local_time(text: str | None, *, minutes: bool = False) -> str:
    """An ISO 8601 time from the JSON form (already in the configured zone) as a table shows it."""
    if not text:
        return "-"
    shown = text[:19].replace("T", " ")
    return shown[:16] if minutes else shown


def seconds(value: float | None) -> str:
    """A duration as a table shows it, in whole seconds ("-" for none)."""
    return "-" if value is None else _("{count:.0f} s").format(count=value)


def echo_wrapped(text: str, indent: str = "", hang: str = "    ") -> None:
    """A line of prose for people, wrapped to the terminal by its columns (continuation lines indented by
    `hang`); piped into a file or program, one line as it is."""
    width = terminal_width()
    if width is not None:
        click.echo(click.wrap_text(text, width, initial_indent=indent, subsequent_indent=indent + hang))
    else:
        click.echo(indent + text)


class Column(NamedTuple):
    """A table column, and what it may give up when the terminal is narrower than the table. Nothing
    else is ever cut: times, ids and numbers are shown whole."""

    header: str
    shorten: bool = False  # lose its middle to "…": paths (their start and file name stay)
    prefix: bool = False  # lose its end to "…": hashes (a prefix of 8+ digits still finds the recording)
    wrap: bool = False  # wrap onto more lines: titles, details
    optional: bool = False  # be left out when nothing else makes the table fit


def print_table(columns: Sequence[Column], rows: Iterable[Sequence[str]]) -> None:
    """A table for people, on stdout, fitted to the terminal's width: a header, a rule, the rows, columns two
    apart. Values are shown as they are; text that wraps breaks between words and between Chinese characters."""
    limit = terminal_width() or 400
    rows = [[str(value) for value in row] for row in rows]
    keep = list(range(len(columns)))
    width = {i: max([cells(c.header), *(cells(row[i]) for row in rows)]) for i, c in enumerate(columns)}

    def total() -> int:
        return sum(width[i] for i in keep) + COLUMN_GAP * (len(keep) - 1)

    def narrowable(kind: str, least: int) -> list[int]:
        return [i for i in keep if getattr(columns[i], kind) and width[i] > max(cells(columns[i].header), least)]

    # What gives way first: text that wraps, then hashes (to a prefix), then optional columns, then paths.
    while total() > limit:
        elastic = narrowable("wrap", SHORTEST) or narrowable("prefix", PREFIX) or []
        optional = [i for i in keep if columns[i].optional]
        if not elastic and not optional:
            elastic = narrowable("shorten", SHORTEST)
        if elastic:
            width[max(elastic, key=width.__getitem__)] -= 1
        elif optional:
            keep.remove(optional[0])
        else:
            break
    gap = " " * COLUMN_GAP
    lines = [gap.join(_pad(columns[i].header, width[i]) for i in keep), "─" * total()]
    for row in rows:
        parts = [_wrap(row[i], width[i]) if columns[i].wrap else [_fit(row[i], columns[i], width[i])] for i in keep]
        for n in range(max(len(part) for part in parts)):
            lines.append(gap.join(_pad(part[n] if n < len(part) else "", width[i])
                                  for part, i in zip(parts, keep, strict=True)))
    click.echo("\n".join(lines))


def terminal_width() -> int | None:
    """The columns of the terminal stdout is, as COLUMNS or the terminal says; None when it is not one (a
    file or a pipe: nothing is cut to fit)."""
    if not sys.stdout.isatty():
        return None
    text = os.environ.get("COLUMNS", "")
    if text.isdigit() and int(text) > 0:
        return int(text)
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except OSError:
        return 80


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - cells(text))


def _wrap(text: str, width: int) -> list[str]:
    """`text` on lines of at most `width` columns: broken between words and Chinese characters, a piece longer
    than a line folded."""
    lines, line = [], ""
    for word in re.findall(r"\s+|\S+", text):
        for piece in ([word] if word.isspace() else break_points(word)):
            if cells(line) + cells(piece) <= width:
                line += piece
                continue
            if line.strip():
                lines.append(line.rstrip())
            line = "" if piece.isspace() else piece
            while cells(line) > width:  # a piece wider than the column: folded
                cut = head(line, width) or line[0]
                lines.append(cut)
                line = line[len(cut):]
    if line.strip() or not lines:
        lines.append(line.rstrip())
    return lines


def _fit(value: str, column: Column, width: int) -> str:
    """A cell's value in its column's width: a path shortened in its middle, anything else cut with "…"."""
    if column.shorten:
        return shorten_middle(value, width)
    if cells(value) > width:
        return head(value, width - 1) + "…"
    return value


class TerminalProgress:
    """Files, bytes and throughput on stderr while an ingest runs, when stderr is a terminal."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
            TransferSpeedColumn(), TimeRemainingColumn(),
            console=Console(file=sys.stderr),
        )
        self._task = self._progress.add_task("ingest", total=None)
        self._files = self._done = 0

    @staticmethod
    def wanted() -> bool:
        return sys.stderr.isatty()

    def begin(self, files: int, total_bytes: int) -> None:
        self._files = files
        self._progress.update(self._task, total=total_bytes, description=self._describe())
        self._progress.start()

    def advance(self, nbytes: int) -> None:
        self._progress.advance(self._task, nbytes)

    def file_done(self, rel: str, outcome: str) -> None:
        self._done += 1
        self._progress.update(self._task, description=self._describe())
        if outcome == "failed":
            self._progress.console.print(_("[red]failed[/red] {rel!r}").format(rel=rel))

    def _describe(self) -> str:
        return _("ingest {done}/{files} files").format(done=self._done, files=self._files)

    def end(self) -> None:
        self._progress.stop()


def json_option(help: str) -> Callable[[F], F]:
    """`--json`: one JSON document on stdout. JSON is for scripts, so the whole command then speaks English
    (its messages, errors and details), whatever the person's language."""

    def english(_ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        if value:
            use_english()
        return value

    return click.option("--json", "as_json", is_flag=True, is_eager=True, callback=english, help=help)
