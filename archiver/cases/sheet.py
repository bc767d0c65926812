"""Reading an .xlsx case register in a child process, with limits: a workbook is a zip of XML that can declare
a sheet of a million rows by 16,384 columns in a few kilobytes, so its rows are read by a process of its own
with caps on memory, CPU time, rows, columns and decompressed bytes, and a deadline; whatever the file does,
the caller gets rows or a one-line refusal.

    parent: rows(name, data) ──stdin: the bytes──► python -m archiver.cases.sheet ──stdout: JSON rows──► parent
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from datetime import datetime
from typing import Any

MAX_ROWS = 100_000
MAX_COLUMNS = 64
MAX_UNZIPPED = 256 << 20  # bytes of XML a workbook may unpack to
MEMORY = 1 << 30  # address space of the child
CPU_SECONDS = 60
DEADLINE = 60.0  # seconds of wall time


class SheetError(Exception):
    """The workbook cannot be read within the limits, or is not a workbook: the message says which."""


def rows(data: bytes) -> list[tuple[int, list[Any]]]:
    """(row number, cells) of the first sheet, read by a child process within the limits. Date cells come back
    as datetimes, numbers as their text, empty cells as ""."""
    try:
        done = subprocess.run([sys.executable, "-I", "-m", "archiver.cases.sheet"], input=data, capture_output=True,
                              timeout=DEADLINE, close_fds=True)
    except subprocess.TimeoutExpired:
        raise SheetError(f"not read within {DEADLINE:.0f} s") from None
    if done.returncode != 0:
        last = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise SheetError(last[0][:300])
    return [(number, [datetime.fromisoformat(c["t"]) if isinstance(c, dict) else c for c in cells])
            for number, cells in json.loads(done.stdout)]


def _read(data: bytes) -> list[tuple[int, list[Any]]]:
    """In the child: the rows, within the caps."""
    import openpyxl

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise SheetError(f"not a workbook ({exc})") from None
    if unzipped > MAX_UNZIPPED:
        raise SheetError(f"unpacks to {unzipped >> 20} MiB (at most {MAX_UNZIPPED >> 20} MiB read)")
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise SheetError(f"not a readable workbook ({exc})") from None
    found = []
    try:
        for number, row in enumerate(book.worksheets[0].iter_rows(max_col=MAX_COLUMNS, values_only=True), 1):
            if number > MAX_ROWS:
                raise SheetError(f"more than {MAX_ROWS} rows")
            found.append((number, [_cell(value) for value in row]))
    finally:
        book.close()
    while found and not any(found[-1][1]):  # a declared range beyond the last row written
        found.pop()
    return found


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def main() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    try:
        found = _read(sys.stdin.buffer.read(MAX_UNZIPPED + 1))
    except SheetError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    except MemoryError:
        print(f"needs more than {MEMORY >> 20} MiB to read", file=sys.stderr)
        sys.exit(2)
    json.dump(found, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
