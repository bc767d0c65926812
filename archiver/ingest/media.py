"""What a file is: media type by extension and by content (ffprobe through ffmpeg-python)."""

from __future__ import annotations

import struct
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
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
            return looks_like(fh.read(16))
    except OSError:
        return False


def looks_like(head: bytes) -> bool:
    """Whether a file starting with these bytes could be media."""
    head = head[:16]
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


# -- photos, read in-process ------------------------------------------------------------------
# A photo needs no ffprobe process (about 50 ms each, most of a small file's ingest): its size is in
# the JPEG frame header or the PNG IHDR chunk and its time in the EXIF block. Anything else, or a
# header this parser does not follow, goes to ffprobe as before.

PHOTO_HEAD = 256 << 10  # the frame header and EXIF block of any camera's JPEG lie well within this
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers; C4/C8/CC are tables
_PNG = b"\x89PNG\r\n\x1a\n"


def photo_info(head: bytes, tz: tzinfo) -> MediaInfo | None:
    """Width, height and EXIF time of a JPEG or PNG from its first bytes, or None (ask ffprobe)."""
    try:
        if head.startswith(_PNG) and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
            return _photo("png_pipe", "png", width, height, None)
        if head.startswith(b"\xff\xd8"):
            return _jpeg(head, tz)
    except (struct.error, IndexError, ValueError):
        pass
    return None


def _photo(fmt: str, codec: str, width: int, height: int, taken: datetime | None) -> MediaInfo | None:
    if not width or not height:
        return None
    return MediaInfo(format_name=fmt, duration_s=None, creation_time=taken,
                     streams=({"codec_type": "video", "codec_name": codec, "width": width, "height": height},))


def _jpeg(head: bytes, tz: tzinfo) -> MediaInfo | None:
    pos, taken = 2, None
    while pos + 4 <= len(head):
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length
            pos += 2
            continue
        (length,) = struct.unpack(">H", head[pos + 2:pos + 4])
        body = head[pos + 4:pos + 2 + length]
        if length < 2 or len(body) != length - 2:
            return None
        if marker == 0xE1 and body.startswith(b"Exif\0\0") and taken is None:
            taken = _exif_time(body[6:], tz)
        elif marker in _SOF:
            height, width = struct.unpack(">HH", body[1:5])
            return _photo("jpeg_pipe", "mjpeg", width, height, taken)
        elif marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before them
            return None
        pos += 2 + length
    return None


def _exif_time(tiff: bytes, tz: tzinfo) -> datetime | None:
    """DateTimeOriginal (else DateTime) of an EXIF block, in its OffsetTimeOriginal or else `tz`."""
    try:
        order = {b"II": "<", b"MM": ">"}[tiff[:2]]
        ifd0 = _ifd(tiff, order, struct.unpack(order + "I", tiff[4:8])[0])
        sub = _ifd(tiff, order, ifd0[0x8769][2]) if 0x8769 in ifd0 else {}
        text = _ascii(tiff, order, *sub.get(0x9003, ifd0.get(0x0132, (0, 0, 0))))
        when = datetime.strptime(text, "%Y:%m:%d %H:%M:%S")
        offset = _ascii(tiff, order, *sub[0x9011]) if 0x9011 in sub else ""
        if offset:
            sign = -1 if offset[0] == "-" else 1
            hours, minutes = offset[1:].split(":")
            return when.replace(tzinfo=timezone(sign * timedelta(hours=int(hours), minutes=int(minutes))))
        return when.replace(tzinfo=tz)
    except (KeyError, struct.error, IndexError, ValueError):
        return None


def _ifd(tiff: bytes, order: str, offset: int) -> dict[int, tuple[int, int, int]]:
    """{tag: (type, count, value or offset)} of one IFD."""
    (count,) = struct.unpack(order + "H", tiff[offset:offset + 2])
    entries = {}
    for i in range(min(count, 512)):
        at = offset + 2 + 12 * i
        tag, kind, n, value = struct.unpack(order + "HHII", tiff[at:at + 12])
        entries[tag] = (kind, n, value)
    return entries


def _ascii(tiff: bytes, order: str, kind: int, count: int, value: int) -> str:
    if kind != 2 or not count:
        raise ValueError("not text")
    raw = struct.pack(order + "I", value)[:count] if count <= 4 else tiff[value:value + count]
    return raw.split(b"\0", 1)[0].decode("ascii")
