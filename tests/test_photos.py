"""Photos are read in-process (no ffprobe process per photo): size from the JPEG frame header or the PNG
IHDR chunk, time from EXIF. Checked against ffprobe on real files, and against hostile headers."""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from runner import ARCHIVER

from archiver.dock.simulate import RecorderSpec, make_photo
from archiver.ingest import media

BEIJING = timezone(timedelta(hours=8))


def _exif(taken: str, offset: str | None = None) -> bytes:
    """An APP1 EXIF segment (big-endian TIFF): IFD0 -> Exif IFD with DateTimeOriginal (and OffsetTimeOriginal)."""
    entries = [(0x9003, taken.encode() + b"\0")] + ([(0x9011, offset.encode() + b"\0")] if offset else [])
    exif_ifd_at = 8 + 2 + 12 + 4  # after the header and IFD0's one entry
    data_at = exif_ifd_at + 2 + 12 * len(entries) + 4
    ifd0 = struct.pack(">H", 1) + struct.pack(">HHII", 0x8769, 4, 1, exif_ifd_at) + b"\0\0\0\0"
    exif_ifd, blobs = struct.pack(">H", len(entries)), b""
    for tag, value in entries:
        exif_ifd += struct.pack(">HHII", tag, 2, len(value), data_at + len(blobs))
        blobs += value
    tiff = b"MM\0*" + struct.pack(">I", 8) + ifd0 + exif_ifd + b"\0\0\0\0" + blobs
    body = b"Exif\0\0" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("photo") / "p.jpg"
    make_photo(path, RecorderSpec(size="320x240"), RecorderSpec.start, 0)
    return path.read_bytes()


def test_a_jpeg_with_exif_is_read_like_ffprobe_reads_it(jpeg: bytes, tmp_path: Path):
    photo = jpeg[:2] + _exif("2022:11:03 09:36:26", "+08:00") + jpeg[2:]
    path = tmp_path / "x.jpg"
    path.write_bytes(photo)
    ours = media.photo_info(photo, UTC)
    theirs = media.probe(path)  # the real ffprobe on the same bytes
    assert ours is not None and ours.media_type == theirs.media_type == "photo"
    assert [(s["width"], s["height"]) for s in ours.streams] == [(s["width"], s["height"]) for s in theirs.streams] \
        == [(320, 240)]
    assert ours.creation_time == datetime(2022, 11, 3, 9, 36, 26, tzinfo=BEIJING)
    # without an offset the camera's clock is taken to be in the station's timezone
    plain = jpeg[:2] + _exif("2022:11:03 09:36:26") + jpeg[2:]
    assert media.photo_info(plain, BEIJING).creation_time == datetime(2022, 11, 3, 9, 36, 26, tzinfo=BEIJING)
    assert media.photo_info(jpeg, BEIJING).creation_time is None


def test_a_png_is_read_in_process(tmp_path: Path):
    path = tmp_path / "p.png"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=red:size=64x48", "-frames:v", "1",
                    str(path)], check=True)
    info = media.photo_info(path.read_bytes(), UTC)
    assert info is not None and info.media_type == "photo" and info.streams[0]["width"] == 64


def test_hostile_headers_never_raise_and_are_left_to_ffprobe(jpeg: bytes):
    """Truncated files, bad lengths, EXIF offsets pointing anywhere, loops of fill bytes: None or a value, never
    an exception (a None sends the file to ffprobe, as before)."""
    photo = jpeg[:2] + _exif("2022:11:03 09:36:26", "+08:00") + jpeg[2:]
    assert media.photo_info(b"", UTC) is None
    assert media.photo_info(b"\xff\xd8", UTC) is None
    assert media.photo_info(b"\xff\xd8" + b"\xff" * 5000, UTC) is None
    assert media.photo_info(b"\xff\xd8\xff\xe1\x00\x01", UTC) is None  # a length below its own size
    assert media.photo_info(photo[:40], UTC) is None  # cut inside the EXIF block
    rng = random.Random(16)
    for _ in range(3000):
        mutated = bytearray(photo[:600])
        for _flip in range(rng.randint(1, 8)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        result = media.photo_info(bytes(mutated) + photo[600:], UTC)
        assert result is None or result.media_type == "photo"


def test_photos_are_ingested_without_starting_ffprobe(jpeg: bytes, tmp_path: Path):
    """With no ffprobe on PATH, photos still get their type, size and EXIF time; a video is flagged unreadable
    (proof that ffprobe really was out of reach)."""
    card = tmp_path / "card" / "PHOTO"
    card.mkdir(parents=True)
    (card / "TA00716_JX0227_20221103093626.JPG").write_bytes(jpeg)
    (card / "IMG_0001.JPG").write_bytes(jpeg[:2] + _exif("2022:11:03 10:00:00", "+08:00") + jpeg[2:])
    (card / "TA00716_JX0227_20221103093700.MP4").write_bytes(os.urandom(4096))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "sqlite3"):
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    config = tmp_path / "c.toml"
    config.write_text('timezone = "Asia/Shanghai"\n')
    env = {**os.environ, "PATH": str(bin_dir), "ARCHIVER_DATA_DIR": str(tmp_path / "data"),
           "ARCHIVER_CONFIG": str(config)}
    done = subprocess.run([ARCHIVER, "ingest", str(card.parent), "--json"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    listed = subprocess.run([ARCHIVER, "recordings", "list", "--json"], env=env, capture_output=True, text=True)
    rows = {r["original_path"]: r for r in json.loads(listed.stdout)}
    named, exif, video = (rows[f"PHOTO/{n}"] for n in ("TA00716_JX0227_20221103093626.JPG", "IMG_0001.JPG",
                                                       "TA00716_JX0227_20221103093700.MP4"))
    assert named["media_type"] == exif["media_type"] == "photo" and named["flags"] == []
    assert exif["flags"] == ["name_unparsed", "device_unknown"]  # what its name lacks, nothing about its content
    assert exif["start"].startswith("2022-11-03T10:00:00")
    assert "unreadable_media" in video["flags"]
