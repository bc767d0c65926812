"""Recorder file names -> device serial, officer number, start time. Pure: no I/O.

The default pattern is the `<serial>_<officer>_<YYYYMMDDhhmmss>` form seen on deployed
recorders (e.g. TA00716_JX0227_20170623093621.MOV). Files added by hand carry all-nines
placeholders (`99999`): those fields count as missing, so `--device` / `--officer` fill them.
A voice recorder's `REC20220315-090200` is read by the second default pattern; a time format of
digits alone (the default) skips the separators a device writes between date and time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath
from zoneinfo import ZoneInfo

_PLACEHOLDER = re.compile(r"^9{5,}$")
_DIGITS_ONLY = re.compile(r"^(?:%[YmdHMS])+$")  # a time format of digits alone, as the default


@dataclass(frozen=True)
class NameInfo:
    serial: str | None
    officer: str | None
    start: datetime | None  # aware, in the configured timezone
    parsed: bool  # a pattern matched and its time (if it has one) is a real time


def parse_name(name: str, patterns: tuple[re.Pattern[str], ...], time_format: str, tz: ZoneInfo) -> NameInfo:
    """Parse a file name (with or without folders and extension) with the first pattern that matches."""
    stem = PurePath(name).name
    if "." in stem.lstrip("."):
        stem = stem[: stem.rfind(".")]
    for pattern in patterns:
        match = pattern.match(stem)
        if not match:
            continue
        groups = match.groupdict()
        serial = _field(groups.get("serial"))
        officer = _field(groups.get("officer"))
        start = None
        parsed = True
        if "start" in pattern.groupindex:
            text = groups["start"] or ""
            if _DIGITS_ONLY.match(time_format):  # 20220315-090200: the separators a device puts in are not read
                text = re.sub(r"\D", "", text)
            try:
                start = datetime.strptime(text, time_format).replace(tzinfo=tz)
            except ValueError:
                parsed = False
        return NameInfo(serial, officer, start, parsed)
    return NameInfo(None, None, None, False)


def _field(value: str | None) -> str | None:
    if not value or _PLACEHOLDER.match(value):
        return None
    return value
