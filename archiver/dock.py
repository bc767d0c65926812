"""Which mounted filesystems are recorders: mounts at or below one of `dock.mount_roots`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    mount_point: Path
    fstype: str
    source: str
    options: tuple[str, ...]

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


def _unescape(field: str) -> str:
    raw = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)
    return raw.encode("latin-1", "surrogateescape").decode("utf-8", "surrogateescape")


def parse_mountinfo(text: str) -> list[Mount]:
    """Parse /proc/self/mountinfo (see proc(5)). Pure."""
    mounts = []
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        if not sep:
            continue
        fields, rest = head.split(), tail.split()
        if len(fields) < 6 or len(rest) < 2:
            continue
        mounts.append(Mount(Path(_unescape(fields[4])), rest[0], _unescape(rest[1]), tuple(fields[5].split(","))))
    return mounts


def recorder_mounts(mounts: list[Mount], roots: tuple[Path, ...]) -> list[Mount]:
    """The mounts at or below a mount root, innermost last; a root itself counts only if it is a mount."""
    chosen = []
    for mount in mounts:
        if any(mount.mount_point == root or root in mount.mount_point.parents for root in roots):
            chosen.append(mount)
    return sorted({m.mount_point: m for m in chosen}.values(), key=lambda m: str(m.mount_point))


def current_recorder_mounts(roots: tuple[Path, ...]) -> list[Mount]:
    return recorder_mounts(parse_mountinfo(MOUNTINFO.read_text(errors="surrogateescape")), roots)
