"""Planning an ingest: where each file goes and what its name and probe say. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from archiver.archive.store import safe_name
from archiver.config import Config
from archiver.ingest import media
from archiver.ingest.naming import parse_name
from archiver.ingest.scan import Found

UNKNOWN_DEVICE = "unknown"


@dataclass(frozen=True)
class Planned:
    found: Found
    serial: str | None
    officer: str | None
    start: datetime | None  # from the file name, in the configured timezone
    flags: tuple[str, ...]
    day: date  # the archive day folder
    name: str  # the file's name in the archive

    @property
    def device_folder(self) -> str:
        return safe_name(self.serial) if self.serial else UNKNOWN_DEVICE


def plan_file(found: Found, cfg: Config, device: str | None, officer: str | None) -> Planned:
    """Decide where a file goes and what its name says, from the scan facts alone.

    `device` / `officer` fill in what the name lacks (from --device/--officer or a registered
    volume label). A file whose device stays unknown is flagged `device_unknown`.
    """
    info = parse_name(found.rel, cfg.naming.patterns, cfg.naming.time_format, cfg.timezone)
    when = info.start or datetime.fromtimestamp(found.mtime_ns / 1e9, cfg.timezone)
    serial = info.serial or device
    flags = [] if info.parsed else ["name_unparsed"]
    if serial is None:
        flags.append("device_unknown")
    return Planned(
        found=found,
        serial=serial,
        officer=info.officer or officer,
        start=info.start,
        flags=tuple(flags),
        day=when.date(),
        name=safe_name(Path(found.rel).name),
    )


def describe_media(planned: Planned, probed: media.MediaInfo | None, tz: tzinfo) -> dict[str, Any]:
    """The catalog fields that come from the name and the probe."""
    by_ext = media.type_by_extension(planned.found.rel)
    flags = list(planned.flags)
    media_type = by_ext
    if probed is None:
        if by_ext != "other":
            flags.append("unreadable_media")
    else:
        media_type = probed.media_type
        if by_ext != "other" and media_type != by_ext:
            flags.append("extension_mismatch")
    start = planned.start
    if start is None and probed is not None and probed.creation_time is not None:
        start = probed.creation_time.astimezone(tz)
    duration = probed.duration_s if probed is not None and media_type in ("video", "audio") else None
    end = start + timedelta(seconds=duration) if start is not None and duration is not None else None
    if media_type == "photo":
        end = start
    return {"media_type": media_type, "flags": flags, "start": start, "end": end, "duration_s": duration,
            "media": probed.summary() if probed is not None else None}
