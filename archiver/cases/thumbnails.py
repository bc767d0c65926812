"""Pictures of what a video shows, for the case report: a strip of small frames taken by ffmpeg at even
intervals, made once per recording and kept in `<data_dir>/cache/thumbnails` (never in the archive's
folders), then inlined in the page as a data: URI so the page stays self-contained."""

from __future__ import annotations

import base64
import logging
import tempfile
from pathlib import Path, PurePosixPath

import ffmpeg

from archiver.fs import Folder

log = logging.getLogger(__name__)

FRAMES = 4  # frames per strip, evenly spread over the recording
WIDTH = 160  # pixels per frame
CACHE = PurePosixPath("cache/thumbnails")
SEEK_FROM_S = 30.0  # longer recordings are seeked into (five minutes of 1080p: 0.4 s, against 11 s for one pass)
NONE = b""  # the cached answer for a file ffmpeg cannot read: not asked again


def strip(data_dir: Path, archive_path: str, sha256: str, duration_s: float | None) -> str | None:
    """A data: URI of the recording's strip (JPEG), or None when ffmpeg cannot read it."""
    name = f"{sha256}.jpg"
    with Folder.open(data_dir, CACHE, create=True) as cache:  # no symlink in the data dir is followed
        try:
            data = cache.read_bytes(name)
        except FileNotFoundError:
            data = _make(data_dir / archive_path, duration_s)
            cache.write_file(name, data)
    if data == NONE:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def _make(path: Path, duration_s: float | None) -> bytes:
    if not duration_s or duration_s <= 0:
        return NONE
    source = ffmpeg.input(f"file:{path.absolute()}")  # a name with ':' is a file, never a protocol
    if duration_s <= SEEK_FROM_S:  # short: one pass over every frame costs less than opening it four times
        picture = source.filter("fps", fps=f"{FRAMES}/{duration_s:.3f}").filter("scale", WIDTH, -2) \
            .filter("tile", f"{FRAMES}x1")
    else:  # long: each frame's input seeks to its moment, so ffmpeg decodes from the keyframe before it only
        picture = ffmpeg.filter([ffmpeg.input(f"file:{path.absolute()}", ss=f"{duration_s * (i + 0.5) / FRAMES:.3f}")
                                 .video.filter("scale", WIDTH, -2) for i in range(FRAMES)], "hstack", inputs=FRAMES)
    with tempfile.TemporaryDirectory(prefix="archiver-thumbs-") as scratch:
        out = Path(scratch) / "strip.jpg"
        try:
            picture.output(str(out), vframes=1, **{"q:v": 6}).overwrite_output().run(quiet=True)
            return out.read_bytes() if out.exists() and out.stat().st_size else NONE
        except ffmpeg.Error as exc:
            log.info("no thumbnails path=%s error=%s", path, (exc.stderr or b"")[-200:])
            return NONE
