"""A docked recorder's volume label and UUID, as the daemon reads them off its mount (the registry of known
recorders is `ingest.devices`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from archiver.dock.watch import Mount
from archiver.ingest.devices import VolumeIds


def volume_ids(mount: Mount) -> VolumeIds:
    """The label and UUID of a mounted block device (udev's /dev/disk links, else blkid)."""
    source = Path(mount.source)
    if not source.is_absolute() or not source.exists():
        return VolumeIds()
    found: dict[str, str] = {}
    for kind, key in (("by-label", "LABEL"), ("by-uuid", "UUID")):
        folder = Path("/dev/disk") / kind
        if folder.is_dir():
            for link in folder.iterdir():
                if link.resolve() == source.resolve():
                    found[key] = link.name.encode().decode("unicode_escape")
    if len(found) < 2:
        try:
            out = subprocess.run(["blkid", "-o", "export", str(source)], capture_output=True, text=True,
                                 timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        for line in out.splitlines():
            key, _sep, value = line.partition("=")
            found.setdefault(key, value)
    return VolumeIds(found.get("LABEL") or None, found.get("UUID") or None)
