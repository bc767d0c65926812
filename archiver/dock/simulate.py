"""A simulated recorder made of real media (ffmpeg), for the tour, the tests and the benchmarks.

    python -m archiver.dock.simulate DIR [--serial TA00716] [--officer JX0227] [--start 2022-11-03T09:36:21] ...

Continuous video segments named `<serial>_<officer>_<YYYYMMDDhhmmss>.MP4` (each starting where
the previous one ended, plus --gap-seconds), audio clips (WAV), photos (JPG), and the device's
own log and system files. Each file's mtime is the end of what it records, as on a recorder.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import ffmpeg

from archiver.i18n import _

LAYOUTS = {
    "record": {"video": "RECORD", "audio": "AUDIO", "photo": "PHOTO"},
    "dcim": {"video": "DCIM/100MEDIA", "audio": "DCIM/100MEDIA", "photo": "DCIM/100MEDIA"},
    "flat": {"video": "", "audio": "", "photo": ""},
}


@dataclass(frozen=True)
class RecorderSpec:
    serial: str = "TA00716"
    officer: str = "JX0227"
    start: datetime = datetime(2022, 11, 3, 9, 36, 21)
    segments: int = 3
    segment_seconds: float = 4.0
    gap_seconds: float = 0.0
    audio: int = 1
    photos: int = 2
    size: str = "320x180"
    bitrate: str | None = None  # e.g. "40M" for large files (benchmarks)
    layout: str = "record"
    timezone: str = "Asia/Shanghai"
    device_files: bool = True
    noise: bool = False  # film grain seeded per segment: no two segments share payload bytes (benchmarks)


def _name(spec: RecorderSpec, when: datetime, ext: str) -> str:
    return f"{spec.serial}_{spec.officer}_{when:%Y%m%d%H%M%S}.{ext}"


def _place(root: Path, spec: RecorderSpec, kind: str, name: str) -> Path:
    folder = root / LAYOUTS[spec.layout][kind]
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def _creation_time(spec: RecorderSpec, when: datetime) -> str:
    utc = when.replace(tzinfo=ZoneInfo(spec.timezone)).astimezone(ZoneInfo("UTC"))
    return f"creation_time={utc:%Y-%m-%dT%H:%M:%S}.000000Z"


def _stamp(path: Path, spec: RecorderSpec, end: datetime) -> None:
    ts = end.replace(tzinfo=ZoneInfo(spec.timezone)).timestamp()
    os.utime(path, (ts, ts))


def _tint(spec: RecorderSpec) -> int:
    """0-359, fixed per recorder and officer: two recorders never film the same bytes (a real card's
    footage is its own), while one spec made twice gives the same files."""
    return zlib.crc32(f"{spec.serial}/{spec.officer}".encode()) % 360


def make_video(path: Path, spec: RecorderSpec, when: datetime, seconds: float, index: int) -> None:
    """One segment: test pattern video tinted per recorder (with `spec.noise`, grain seeded by `index`)
    and a sine tone."""
    video = ffmpeg.input(f"testsrc2=size={spec.size}:rate=25", f="lavfi", t=seconds).filter("hue", h=_tint(spec))
    if spec.noise:
        video = video.filter("noise", alls=30, allf="t+u", all_seed=7919 * (index + 1))
    audio = ffmpeg.input(f"sine=frequency={300 + 40 * index + _tint(spec) % 37}:sample_rate=16000", f="lavfi",
                         t=seconds)
    opts = {"c:v": "libx264", "preset": "ultrafast", "pix_fmt": "yuv420p", "c:a": "aac",
            "metadata": _creation_time(spec, when), "f": "mp4"}
    if spec.bitrate:
        # constant bitrate with filler, so the size is what was asked for
        opts.update({"b:v": spec.bitrate, "minrate": spec.bitrate, "maxrate": spec.bitrate,
                     "bufsize": spec.bitrate, "x264-params": "nal-hrd=cbr:force-cfr=1"})
    else:
        opts["qp"] = 30
    ffmpeg.output(video, audio, str(path), **opts).overwrite_output().run(quiet=True)


def make_audio(path: Path, spec: RecorderSpec, when: datetime, seconds: float, index: int) -> None:
    audio = ffmpeg.input(f"sine=frequency={500 + 50 * index + _tint(spec) % 43}:sample_rate=16000", f="lavfi",
                         t=seconds)
    ffmpeg.output(audio, str(path), **{"c:a": "pcm_s16le", "ac": 1, "f": "wav",
                                       "metadata": _creation_time(spec, when)}).overwrite_output().run(quiet=True)


def make_photo(path: Path, spec: RecorderSpec, when: datetime, index: int) -> None:
    frame = ffmpeg.input(f"testsrc2=size={spec.size}:rate=25", f="lavfi", t=1, ss=index * 0.2).filter(
        "hue", h=_tint(spec))
    ffmpeg.output(frame, str(path), **{"frames:v": 1, "q:v": 3, "f": "image2"}).overwrite_output().run(quiet=True)


def make_recorder(root: Path, spec: RecorderSpec = RecorderSpec()) -> list[Path]:
    """Write a recorder's card under `root`. Returns the recordings made (not the device files)."""
    if spec.layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}")
    root.mkdir(parents=True, exist_ok=True)
    made: list[tuple[Path, datetime]] = []
    when = spec.start
    for i in range(spec.segments):
        path = _place(root, spec, "video", _name(spec, when, "MP4"))
        make_video(path, spec, when, spec.segment_seconds, i)
        end = when + timedelta(seconds=spec.segment_seconds)
        made.append((path, end))
        when = end + timedelta(seconds=spec.gap_seconds)
    for i in range(spec.audio):
        start = spec.start + timedelta(seconds=7 + 61 * i)
        path = _place(root, spec, "audio", _name(spec, start, "WAV"))
        make_audio(path, spec, start, 3.0, i)
        made.append((path, start + timedelta(seconds=3)))
    for i in range(spec.photos):
        shot = spec.start + timedelta(seconds=5 + 13 * i)
        path = _place(root, spec, "photo", _name(spec, shot, "JPG"))
        make_photo(path, spec, shot, i)
        made.append((path, shot))
    if spec.device_files:
        log = root / "LOG" / "DEVICE.LOG"
        log.parent.mkdir(exist_ok=True)
        log.write_text("".join(f"{spec.start:%Y-%m-%d %H:%M:%S} REC START {spec.serial}\n" for _line in range(3)))
        system = root / "SYSTEM" / "CONFIG.INI"
        system.parent.mkdir(exist_ok=True)
        system.write_text(f"[device]\nserial={spec.serial}\nofficer={spec.officer}\n")
    for path, end in made:
        _stamp(path, spec, end)
    return [p for p, _spec in made]


@click.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--serial", default=RecorderSpec.serial, show_default=True, help="Device serial in the names.")
@click.option("--officer", default=RecorderSpec.officer, show_default=True, help="Officer number in the names.")
@click.option("--start", default=RecorderSpec.start.isoformat(), show_default=True,
              help="Start of the first segment, device-local time.")
@click.option("--segments", default=RecorderSpec.segments, show_default=True, help="Number of video segments.")
@click.option("--segment-seconds", default=RecorderSpec.segment_seconds, show_default=True,
              help="Length of each segment.")
@click.option("--gap-seconds", default=RecorderSpec.gap_seconds, show_default=True,
              help="Pause between consecutive segments.")
@click.option("--audio", default=RecorderSpec.audio, show_default=True, help="Number of audio clips.")
@click.option("--photos", default=RecorderSpec.photos, show_default=True, help="Number of photos.")
@click.option("--size", default=RecorderSpec.size, show_default=True, help="Video frame size.")
@click.option("--bitrate", default=None, help="Constant video bitrate (e.g. 40M) to make large files.")
@click.option("--layout", type=click.Choice(list(LAYOUTS)), default=RecorderSpec.layout, show_default=True,
              help="Folder layout of the card.")
@click.option("--no-device-files", is_flag=True, help="Leave out the device's log and system files.")
def main(directory: Path, serial, officer, start, segments, segment_seconds, gap_seconds, audio, photos, size,
         bitrate, layout, no_device_files) -> None:
    """Make a simulated recorder card in DIRECTORY from real ffmpeg media."""
    spec = RecorderSpec(serial, officer, datetime.fromisoformat(start).replace(tzinfo=None), segments,
                        segment_seconds, gap_seconds, audio, photos, size, bitrate, layout,
                        device_files=not no_device_files)
    made = make_recorder(directory, spec)
    total = sum(p.stat().st_size for p in made)
    click.echo(_("made {count} recordings ({value:.1f} MiB) in {directory}").format(
                 count=len(made), value=total / 2 ** 20, directory=directory))


if __name__ == "__main__":
    main()
