"""Many small files: a card of N photos of 2-6 KB (default 10,000), `cp -r; sync` versus `archiver ingest`,
from cold caches, into a data dir on the benchmark's disk ($BENCH_DIR, default /var/tmp/archiver-bench).

The photos are one real JPEG (ffmpeg) with a different tail each (bytes after the end-of-image marker,
which decoders ignore): every file is a valid photo with its own hash, made in seconds rather than by N
ffmpeg runs. Beside `cp`, the floor of a verified copy: `cp -r; sync`, then every copy read back past the
page cache (O_DIRECT). The command's cold start (an empty card) is reported apart. Target: the ingest at most
10x the copy.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from bench import cold_start, drop_caches, measure, read_direct

from archiver.dock.simulate import RecorderSpec, make_photo

TARGET = 10.0


def make_card(base: Path, files: int) -> Path:
    card = base / f"small-{files}"
    done = base / f"small-{files}.complete"
    if done.exists():
        return card
    shutil.rmtree(card, ignore_errors=True)
    folder = card / "PHOTO"
    folder.mkdir(parents=True)
    spec = RecorderSpec(size="64x48")
    seed = base / "seed.jpg"
    make_photo(seed, spec, spec.start, 0)
    photo = seed.read_bytes()
    rng = random.Random(11)
    for i in range(files):
        when = datetime(2022, 11, 3, 8) + timedelta(seconds=7 * i)
        tail = rng.randbytes(max(0, rng.randrange(2000, 6000) - len(photo)))
        (folder / f"TA00716_JX0227_{when:%Y%m%d%H%M%S}.JPG").write_bytes(photo + tail)
    done.write_text(datetime.now().isoformat())
    return card


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = Path(os.environ.get("BENCH_DIR", "/var/tmp/archiver-bench"))
    base.mkdir(parents=True, exist_ok=True)
    card = make_card(base, args.files)
    archiver = str(Path(sys.executable).parent / "archiver")
    config = base / "small.toml"
    config.write_text("")
    copies, ingests, floors = [], [], []
    for i in range(args.runs):
        copy, data = base / f"small-cp-{i}", base / f"small-data-{i}"
        for path in (copy, data):
            subprocess.run(["chmod", "-R", "u+w", str(path)], capture_output=True)
            shutil.rmtree(path, ignore_errors=True)
        env = {"ARCHIVER_CONFIG": str(config), "ARCHIVER_DATA_DIR": str(data)}
        # the station exists before a recorder is docked: data dir, key and catalog made beforehand, not timed;
        # `measure` drops the caches right before each timed command
        subprocess.run([archiver, "init"], env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)
        steps = [(copies, ["sh", "-c", 'cp -r "$0" "$1" && sync', str(card), str(copy)], {}),
                 (ingests, [archiver, "ingest", str(card)], env)]
        for figures, command, env in steps if i % 2 == 0 else reversed(steps):  # alternate who goes first
            figures.append(measure(command, env)[0])
        drop_caches()
        floors.append(copies[-1] + read_direct(sorted(copy.rglob("*.JPG"))))
        for path in (copy, data):
            subprocess.run(["chmod", "-R", "u+w", str(path)], check=True)
            shutil.rmtree(path)
    start = cold_start(archiver, base, args.runs)
    cp, ingest, floor = statistics.median(copies), statistics.median(ingests), statistics.median(floors)
    ratio = ingest / cp
    disk = subprocess.run(["df", "--output=source,fstype", str(base)], capture_output=True, text=True).stdout
    print(f"{args.files:,} photos of 2-6 KB, median of {args.runs} runs, caches dropped before each command, "
          f"{' '.join(disk.split()[-2:])}")
    print(f"  cp -r; sync       {cp:8.2f} s")
    print(f"  floor             {floor:8.2f} s  (cp -r; sync, then each copy read back O_DIRECT)")
    print(f"  archiver ingest   {ingest:8.2f} s  ({ingest / args.files * 1000:.2f} ms a file)  {ratio:.1f}x cp "
          f"(target {TARGET:.0f}x: {'met' if ratio <= TARGET else 'NOT met'}), {ingest / floor:.1f}x the floor")
    print(f"  cold start        {start:8.2f} s  (an empty card, caches dropped; target 0.5 s: "
          f"{'met' if start <= 0.5 else 'NOT met'})")


if __name__ == "__main__":
    main()
