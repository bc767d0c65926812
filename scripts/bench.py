"""Ingest throughput against `cp -r` and `sha256sum` on the same simulated recorder, verify against
`sha256sum` of the same archived files, and backup against the `age` CLI and `restic backup` of
those files, all in the same run.

Each measurement starts with cold caches (when run as root) and a fresh destination; the
figures are medians over --repeat runs. Ingest does more than cp: it hashes, fsyncs, reads the
copy back past the page cache and probes each file, so the ratio shows what that costs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from archiver.backup.age import Identity
from archiver.simulate import RecorderSpec, make_recorder

BITRATE_MBIT = 80
SEGMENT_SECONDS = 6.4  # about 60 MiB a segment at that bitrate


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    if os.geteuid() == 0:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    drop_caches()
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    return time.perf_counter() - start


def recorder(base: Path, size_mib: int) -> Path:
    card = base / f"card-{size_mib}MiB"
    done = base / f"card-{size_mib}MiB.complete"
    if done.exists():
        return card
    shutil.rmtree(card, ignore_errors=True)
    segments = max(1, round(size_mib / (BITRATE_MBIT / 8 * SEGMENT_SECONDS * 0.94)))
    print(f"making a {size_mib} MiB recorder ({segments} segments) in {card} ...", file=sys.stderr)
    make_recorder(card, RecorderSpec(segments=segments, segment_seconds=SEGMENT_SECONDS, size="1280x720",
                                     bitrate=f"{BITRATE_MBIT}M", audio=1, photos=2))
    done.write_text("")
    return card


def _backups(base: Path, i: int, data: Path, archived: list[str], archiver: str, recipients: list[str],
             results: dict[str, list[float]]) -> None:
    """Encrypting the same archived files: the age CLI per file, restic, and archiver backup run."""
    for name in (f"age-{i}", f"restic-{i}", f"target-{i}"):
        shutil.rmtree(base / name, ignore_errors=True)
        (base / name).mkdir()
    loop = 'for f; do age -r "$R1" -r "$R2" -o "$OUT/$(basename "$f").age" "$f" || exit 1; done'
    results["age -r -r, each file"].append(timed(["sh", "-c", loop, "sh", *archived],
                                                 env={"R1": recipients[0], "R2": recipients[1],
                                                      "OUT": str(base / f"age-{i}")}))
    restic = {"RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": str(base / f"restic-{i}")}
    subprocess.run(["restic", "init", "-q"], check=True, env={**os.environ, **restic}, stdout=subprocess.DEVNULL)
    results["restic backup"].append(timed(["restic", "backup", "-q", str(data / "archive")], env=restic))
    config = base / f"backup-{i}.toml"
    config.write_text(f"[backup]\ntargets = [{str(base / f'target-{i}')!r}]\nrecipients = {recipients!r}\n")
    results["archiver backup run"].append(timed([archiver, "--data-dir", str(data), "backup", "run"],
                                                env={"ARCHIVER_CONFIG": str(config)}))
    for name in (f"age-{i}", f"restic-{i}", f"target-{i}"):
        shutil.rmtree(base / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("size_mib", nargs="?", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    base = Path(os.environ.get("BENCH_DIR", "/var/tmp/archiver-bench"))
    base.mkdir(parents=True, exist_ok=True)
    card = recorder(base, args.size_mib)
    files = sorted(str(p) for p in card.rglob("*") if p.is_file())
    total = sum(os.path.getsize(f) for f in files)
    archiver = str(Path(sys.executable).parent / "archiver")
    config = base / "bench.toml"
    config.write_text("")  # built-in defaults only

    results: dict[str, list[float]] = {"cp -r": [], "cp -r; sync": [], "sha256sum": [], "archiver ingest": [],
                                       "sha256sum of the archive": [], "archiver verify": [],
                                       "age -r -r, each file": [], "restic backup": [], "archiver backup run": []}
    recipients = [str(Identity.generate().recipient) for _ in range(2)]
    for i in range(args.repeat):
        dest = base / f"cp-{i}"
        shutil.rmtree(dest, ignore_errors=True)
        results["cp -r"].append(timed(["cp", "-r", str(card), str(dest)]))
        shutil.rmtree(dest)
        # cp leaves its writes in the page cache; ingest fsyncs every file, so compare with that too
        results["cp -r; sync"].append(timed(["sh", "-c", 'cp -r "$0" "$1" && sync', str(card), str(dest)]))
        shutil.rmtree(dest)
        results["sha256sum"].append(timed(["sha256sum", *files]))
        data = base / f"data-{i}"
        if data.exists():
            subprocess.run(["chmod", "-R", "u+w", str(data)], check=True)
            shutil.rmtree(data)
        results["archiver ingest"].append(timed([archiver, "--data-dir", str(data), "ingest", str(card)],
                                                env={"ARCHIVER_CONFIG": str(config)}))
        archived = sorted(str(p) for p in (data / "archive").rglob("*") if p.is_file()
                          and not p.name.startswith("manifest-"))
        results["sha256sum of the archive"].append(timed(["sha256sum", *archived]))
        results["archiver verify"].append(timed([archiver, "--data-dir", str(data), "verify"],
                                                env={"ARCHIVER_CONFIG": str(config)}))
        _backups(base, i, data, archived, archiver, recipients, results)
        subprocess.run(["chmod", "-R", "u+w", str(data)], check=True)
        shutil.rmtree(data)

    fs = subprocess.run(["df", "--output=source,fstype", str(base)], capture_output=True, text=True).stdout
    print(f"recorder: {len(files)} files, {total / 2**20:.0f} MiB; disk: {' '.join(fs.split()[2:])}; "
          f"cold caches: {os.geteuid() == 0}; median of {args.repeat}")
    cp = statistics.median(results["cp -r"])
    for name, runs in results.items():
        t = statistics.median(runs)
        print(f"  {name:26s} {t:7.2f} s  {total / 2**20 / t:8.1f} MiB/s  {t / cp:5.2f}x the time of cp -r")


if __name__ == "__main__":
    main()
