"""The per-day manifests (`manifest-sha256.txt`, `manifest-sm3.txt`), derived from the catalog."""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path

from sqlalchemy import select

from archiver.archive.store import Archive
from archiver.catalog import Catalog, Recording


def day_entries(archive: Archive, catalog: Catalog, folder: Path, algorithms: Iterable[str]) -> dict[str, dict]:
    """{algorithm: {path relative to the day folder: digest}} for the recordings of one day folder."""
    prefix = archive.relative(folder) + "/"
    with catalog.session() as session:
        rows = session.execute(select(Recording.archive_path, Recording.sha256, Recording.sm3)
                               .where(Recording.archive_path.startswith(prefix, autoescape=True),
                                      Recording.purged_at.is_(None))).all()
    entries = {}
    for algorithm in algorithms:
        digests = {path[len(prefix):]: (sha256 if algorithm == "sha256" else sm3) for path, sha256, sm3 in rows}
        entries[algorithm] = {rel: d for rel, d in digests.items() if d}
    return entries


def write_day_manifests(archive: Archive, catalog: Catalog, folders: Iterable[Path], algorithms: Iterable[str],
                        locks=None) -> None:
    """Rewrite each day folder's manifests from the catalog, where they differ from what is on disk. A day with
    nothing archived and no folder (a file found to be archived already, under another day) is left alone."""
    algorithms = tuple(algorithms)
    for folder in sorted(set(folders)):
        with locks.hold(f"manifest:{folder}") if locks is not None else nullcontext():
            entries = day_entries(archive, catalog, folder, algorithms)
            if not any(entries.values()) and not os.path.lexists(folder):
                continue
            for algorithm, digests in entries.items():
                archive.write_manifest(folder, algorithm, digests.items())


def parse_manifest(text: str) -> dict[str, str]:
    """{relative path: digest} from a manifest in `sha256sum` format (escaped names included)."""
    listed = {}
    for line in text.splitlines():
        escaped = line.startswith("\\")
        digest, _sep, rel = line.lstrip("\\").partition("  ")
        if escaped:
            rel = rel.replace("\\\\", "\0").replace("\\n", "\n").replace("\\r", "\r").replace("\0", "\\")
        listed[rel] = digest
    return listed
