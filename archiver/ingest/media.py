"""What a file is: media type by extension and by content (ffprobe through ffmpeg-python)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import ffmpeg

from archiver.i18n import _

_BY_EXTENSION = {
    **dict.fromkeys(("mp4", "mov", "avi", "mkv", "ts", "mts", "m4v", "3gp", "wmv", "flv", "h264", "h265"), "video"),
    **dict.fromkeys(("wav", "aac", "mp3", "amr", "m4a", "ogg", "opus", "flac", "wma"), "audio"),
    **dict.fromkeys(("jpg", "jpeg", "png", "bmp", "heic", "tif", "tiff"), "photo"),
}
_IMAGE_CODECS = {"mjpeg", "png", "bmp", "tiff", "webp", "gif", "hevc_image", "jpegls"}
_IMAGE_FORMATS = ("image2", "_pipe")


@dataclass(frozen=True)
class MediaInfo:
    format_name: str
    duration_s: float | None
    creation_time: datetime | None
    streams: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def media_type(self) -> str:
        """The type the content shows, whatever the extension says."""
        kinds = {s.get("codec_type") for s in self.streams}
        video = [s for s in self.streams if s.get("codec_type") == "video"
                 and not s.get("disposition", {}).get("attached_pic")]
        is_image_format = any(part in self.format_name for part in _IMAGE_FORMATS)
        if video and all(s.get("codec_name") in _IMAGE_CODECS for s in video) and (
            is_image_format or not self.duration_s
        ):
            return "photo"
        if video:
            return "video"
        if "audio" in kinds:
            return "audio"
        return "other"

    def summary(self) -> dict[str, Any]:
        """The facts worth keeping in the catalog."""
        return {
            "format": self.format_name,
            "duration_s": self.duration_s,
            "creation_time": self.creation_time.isoformat() if self.creation_time else None,
            "streams": [
                {k: s[k] for k in ("codec_type", "codec_name", "width", "height", "sample_rate", "channels")
                 if k in s}
                for s in self.streams
            ],
        }


class ProbeError(Exception):
    """ffprobe could not read the file as media."""


# Leading bytes of the containers recorders and phones write (MP4/MOV at offset 4).
_MAGIC = (b"RIFF", b"ID3", b"\xff\xd8\xff", b"OggS", b"#!AMR", b"\x1a\x45\xdf\xa3", b"fLaC", b"\x89PNG", b"GIF8",
          b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3", b"FLV", b"\x30\x26\xb2\x75", b"BM")


def looks_like_media(path: Path) -> bool:
    """A cheap look at the first bytes: could ffprobe make something of this file?"""
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    if len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return True
    if head[:1] == b"\x47" and len(head) >= 1:  # MPEG-TS sync byte
        return True
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # MP3 / ADTS AAC frame sync
        return True
    return head.startswith(_MAGIC)


def type_by_extension(name: str) -> str:
    suffix = Path(name).suffix.lower().lstrip(".")
    return _BY_EXTENSION.get(suffix, "other")


def probe(path: Path) -> MediaInfo:
    """Run ffprobe on a local file. Raises ProbeError when it is not readable media."""
    # The file: prefix keeps a name starting with '-' or holding ':' from being read as an option or protocol.
    target = f"file:{path.absolute()}"
    try:
        data = ffmpeg.probe(target, v="error")
    except ffmpeg.Error as exc:
        detail = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise ProbeError(detail[-1] if detail else "ffprobe failed") from exc
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise ProbeError(str(exc)) from exc
    fmt = data.get("format") or {}
    streams = tuple(data.get("streams") or ())
    if not streams:
        raise ProbeError(_("no audio, video or image streams"))
    return MediaInfo(
        format_name=fmt.get("format_name", ""),
        duration_s=_float(fmt.get("duration")),
        creation_time=_creation_time(fmt, streams),
        streams=streams,
    )


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _creation_time(fmt: dict[str, Any], streams: tuple[dict[str, Any], ...]) -> datetime | None:
    for tags in [fmt.get("tags") or {}] + [s.get("tags") or {} for s in streams]:
        text = tags.get("creation_time")
        if not text:
            continue
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            continue
        if value.tzinfo is not None and value.year > 1970:
            return value
    return None
