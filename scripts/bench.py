"""archiver against the tools people use instead, on the same simulated recorder, in the same run.

    scripts/bench [--size GIB] [--runs N] [--json FILE]

The recorder is real MP4 (x264 + AAC) whose payload never repeats (grain seeded per segment), one
segment at least a third of the total, the rest smaller. Each run drops the page cache (as root),
then times whole commands, start-up included, alternating which side goes first. Medians of the
runs are printed with ratios; the peak RSS of each archiver command is read from wait4().
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from archiver.backup.age import Identity
from archiver.dock.simulate import RecorderSpec, make_audio, make_photo, make_video

MBIT = 80
SPEC = RecorderSpec(size="1280x720", bitrate=f"{MBIT}M", noise=True)
MIB_PER_S = 9.8  # what the encoder writes per second of video at that bitrate (measured)

# name -> (baseline it is compared with, target ratio or None)
COMPARE = {
    "archiver ingest": ("cp -r; sync", 1.10),
    "archiver verify": ("sha256sum of the archive", 0.5),
    "archiver backup run": ("age -r -r, each file", 1.0),
}


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    if os.geteuid() == 0:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one whole command, from a cold cache."""
    drop_caches()
    start = time.perf_counter()
    # GNU time (small) starts the command and reports its peak RSS; a child forked or spawned from
    # this Python process would count this process's memory in its own peak
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], env={**os.environ, **(env or {})},
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd[:3])} failed with exit {done.returncode}: {done.stderr[-500:]}")
    return seconds, int(done.stderr.strip().splitlines()[-1]) / 1024


def read_direct(paths: list[Path]) -> float:
    """Seconds to read every file in `paths` past the page cache (O_DIRECT, into one aligned buffer), as the
    ingest's read-back does: the second half of the floor."""
    import mmap

    buffer = mmap.mmap(-1, 8 << 20)  # page-aligned, as O_DIRECT wants
    start = time.perf_counter()
    for path in paths:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        try:
            offset = 0
            while (got := os.preadv(fd, [buffer], offset)) > 0:
                offset += got
        finally:
            os.close(fd)
    return time.perf_counter() - start


def cold_start(archiver: str, base: Path, runs: int) -> float:
    """Median seconds of `archiver ingest` of an empty card into an existing station, caches dropped before each:
    the command's start, apart from any copying."""
    empty, data = base / "empty-card", base / "empty-data"
    empty.mkdir(exist_ok=True)
    config = base / "empty.toml"
    config.write_text("")
    env = {"ARCHIVER_CONFIG": str(config), "ARCHIVER_DATA_DIR": str(data)}
    subprocess.run([archiver, "init"], env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)
    seconds = statistics.median(measure([archiver, "ingest", str(empty)], env)[0] for _ in range(runs))
    shutil.rmtree(data)
    return seconds


def make_card(base: Path, size_gib: float) -> Path:
    card = base / f"card-{size_gib:g}GiB"
    done = base / f"card-{size_gib:g}GiB.complete"
    if done.exists():
        return card
    shutil.rmtree(card, ignore_errors=True)
    total = size_gib * 1024
    rng = random.Random(3)
    sizes = [total / 3]
    while sum(sizes) < total - 1:
        sizes.append(min(rng.uniform(60, 300), total - sum(sizes)))
    print(f"making a {size_gib:g} GiB recorder in {card} ({len(sizes)} segments) ...", file=sys.stderr)
    folder = card / "RECORD"
    folder.mkdir(parents=True)
    when = SPEC.start
    for i, mib in enumerate(sizes):
        seconds = max(1.0, mib / MIB_PER_S)
        make_video(folder / f"{SPEC.serial}_{SPEC.officer}_{when:%Y%m%d%H%M%S}.MP4", SPEC, when, seconds, i)
        when += timedelta(seconds=seconds)
    for i in range(3):
        shot = SPEC.start + timedelta(seconds=5 + 13 * i)
        (card / "PHOTO").mkdir(exist_ok=True)
        make_photo(card / "PHOTO" / f"{SPEC.serial}_{SPEC.officer}_{shot:%Y%m%d%H%M%S}.JPG", SPEC, shot, i)
    make_audio(card / "RECORD" / f"{SPEC.serial}_{SPEC.officer}_{SPEC.start:%Y%m%d%H%M%S}.WAV", SPEC,
               SPEC.start, 30, 0)
    done.write_text(datetime.now().isoformat())
    return card


def one_run(base: Path, card: Path, i: int, archiver: str, recipients: list[str]) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    data = base / f"data-{i}"
    for path in (data, base / f"cp-{i}", base / f"age-{i}", base / f"restic-{i}", base / f"target-{i}"):
        if path.exists():
            subprocess.run(["chmod", "-R", "u+w", str(path)], check=True)
            shutil.rmtree(path)
    config = base / f"bench-{i}.toml"
    config.write_text(f"[backup]\ntargets = [{str(base / f'target-{i}')!r}]\nrecipients = {recipients!r}\n")
    (base / f"target-{i}").mkdir()
    env = {"ARCHIVER_CONFIG": str(config), "ARCHIVER_DATA_DIR": str(data)}
    copy = base / f"cp-{i}"

    def baselines_ingest() -> None:
        out["cp -r; sync"] = measure(["sh", "-c", 'cp -r "$0" "$1" && sync', str(card), str(copy)])
        shutil.rmtree(copy)
        out["cp -r; sha256sum"] = measure(["sh", "-c", 'cp -r "$0" "$1" && sync && cd "$1" && find . -type f '
                                           '-exec sha256sum {} + >/dev/null', str(card), str(copy)])
        shutil.rmtree(copy)

    ordered = [baselines_ingest, lambda: out.__setitem__("archiver ingest", measure(
        [archiver, "ingest", str(card)], env))]
    for step in ordered if i % 2 == 0 else reversed(ordered):
        step()

    archived = sorted(str(p) for p in (data / "archive").rglob("*") if p.is_file()
                      and not p.name.startswith("manifest-"))
    known = base / f"known-{i}.txt"
    with known.open("w") as fh:
        subprocess.run(["hashdeep", "-c", "sha256", *archived], stdout=fh, check=True)
    verify_steps = [
        lambda: out.__setitem__("sha256sum of the archive", measure(["sha256sum", *archived])),
        lambda: out.__setitem__("hashdeep -a", measure(["hashdeep", "-a", "-c", "sha256", "-k", str(known),
                                                        *archived])),
        lambda: out.__setitem__("archiver verify", measure([archiver, "verify"], env)),
    ]
    for step in verify_steps if i % 2 == 0 else reversed(verify_steps):
        step()

    (base / f"age-{i}").mkdir()
    loop = 'for f; do age -r "$R1" -r "$R2" -o "$OUT/$(basename "$f").age" "$f" || exit 1; done'
    restic = {"RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": str(base / f"restic-{i}")}
    subprocess.run(["restic", "init", "-q"], check=True, env={**os.environ, **restic}, stdout=subprocess.DEVNULL)
    backup_steps = [
        lambda: out.__setitem__("age -r -r, each file", measure(
            ["sh", "-c", loop, "sh", *archived], {"R1": recipients[0], "R2": recipients[1],
                                                   "OUT": str(base / f"age-{i}")})),
        lambda: out.__setitem__("restic backup", measure(["restic", "backup", "-q", str(data / "archive")],
                                                         restic)),
        lambda: out.__setitem__("archiver backup run", measure([archiver, "backup", "run"], env)),
    ]
    for step in backup_steps if i % 2 == 0 else reversed(backup_steps):
        step()
    for path in (data, base / f"age-{i}", base / f"restic-{i}", base / f"target-{i}"):
        subprocess.run(["chmod", "-R", "u+w", str(path)], check=True)
        shutil.rmtree(path)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=float, default=3.0, help="recorder size in GiB (default 3)")
    parser.add_argument("--runs", type=int, default=3, help="runs; medians are reported (default 3)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    base = Path(os.environ.get("BENCH_DIR", "/var/tmp/archiver-bench"))
    base.mkdir(parents=True, exist_ok=True)
    card = make_card(base, args.size)
    total = sum(p.stat().st_size for p in card.rglob("*") if p.is_file())
    archiver = str(Path(sys.executable).parent / "archiver")
    recipients = [str(Identity.generate().recipient) for _ in range(2)]
    runs = [one_run(base, card, i, archiver, recipients) for i in range(args.runs)]
    names = list(runs[0])
    medians = {n: (statistics.median(r[n][0] for r in runs), max(r[n][1] for r in runs)) for n in names}
    disk = subprocess.run(["df", "--output=source,fstype", str(base)], capture_output=True, text=True).stdout
    machine = (f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
               f"{' '.join(disk.split()[-2:])}")
    print(f"{total / 2**30:.2f} GiB recorder ({sum(1 for p in card.rglob('*') if p.is_file())} files), "
          f"median of {args.runs} runs, cold caches: {os.geteuid() == 0}; {machine}")
    print(f"  {'command':28s} {'seconds':>8s} {'MiB/s':>8s} {'peak RSS':>9s}  ratio (target)")
    figures = {}
    for name in names:
        seconds, rss = medians[name]
        line = f"  {name:28s} {seconds:8.2f} {total / 2**20 / seconds:8.0f} {rss:7.0f} MB"
        if name in COMPARE:
            base_name, target = COMPARE[name]
            ratio = seconds / medians[base_name][0]
            met = "met" if ratio <= target else "NOT met"
            line += f"  {ratio:.2f}x {base_name} (target {target:.2f}x: {met})"
            figures[name] = {"ratio": ratio, "baseline": base_name, "target": target}
        figures.setdefault(name, {}).update({"seconds": seconds, "peak_rss_mb": rss})
        print(line)
    restic_ratio = medians["archiver backup run"][0] / medians["restic backup"][0]
    print(f"  archiver backup run is {restic_ratio:.2f}x restic backup (target 0.80x: "
          f"{'met' if restic_ratio <= 0.8 else 'NOT met'})")
    if args.json:
        args.json.write_text(json.dumps({"bytes": total, "runs": args.runs, "machine": machine,
                                         "figures": figures}, indent=2))


if __name__ == "__main__":
    main()
