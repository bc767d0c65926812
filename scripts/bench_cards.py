"""`scripts/bench cards`: a verified ingest against the copy and the disk's floor, source by source, in one run.

    scripts/bench cards [--card-mib N] [--cached-mib N] [--six-mib N] [--runs N] [--cases same-disk,usb2,usb3,six]

- same disk: the recorder's files on the archive's disk, already in the page cache (the whole 3 GiB recorder, as
  issue 30 states the case, or --cached-mib of it); `cp -r; sync` and `archiver ingest` beside the floor measured on
  that disk with the same number of bytes: `dd conv=fsync` (write and sync) and `dd iflag=direct` (read past the
  cache), one after the other and both at once, and `cp -r; sync` followed by an O_DIRECT read of the copy (a
  verified ingest writes every byte and reads it back; the best of the three, round by round, is the floor); and, to
  tell the disk from the program, a bare loop of what a verified copy asks of it (O_DIRECT writes, each chunk read
  straight back, four at once). The floor is measured in the same rounds as `cp` and the ingest, the order turning
  each round: this disk's speed drifts by a third from one minute to the next.
- usb2 / usb3: the files on an ext4 image loop-mounted read-only, its reads throttled by the blkio
  cgroup (`blkio.throttle.read_bps_device` on the loop device) to 40 or 200 MiB/s, cold caches.
- six: six such USB 2 cards mounted at once under the mount root of a running `archiver daemon` that has sat
  idle (the caches dropped once it is ready), timed from the mounts to the sixth `ingest finished` line, against
  six `cp -r; sync` run at once.
- beside each case, the archive disk's floor for as many bytes; and apart, the command's cold start: an empty
  card's `archiver ingest`, caches dropped.

The recordings are the real MP4s of `scripts/bench` (made once, kept under $BENCH_DIR). Each ingest goes
to an empty station made beforehand with `archiver init` (as a docked recorder finds it); the caches are dropped
after that, right before the timed command. Run as root. Medians of --runs; the two sides alternate which goes
first.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from bench import cold_start, drop_caches, make_card, read_direct

REPO = Path(__file__).resolve().parent.parent
ARCHIVER = str(REPO / ".venv" / "bin" / "archiver")
BLKIO = Path("/sys/fs/cgroup/blkio")
USB2, USB3 = 40, 200  # MiB/s
TARGETS = {"usb2": 1.03, "usb3": 1.10, "six": 1.10}  # the cached case's target is the floor (FLOOR_TARGET)
FLOOR_TARGET = 1.05


def run(cmd: list[str], env: dict[str, str] | None = None, cgroup: Path | None = None,
        report: list[dict] | None = None) -> float:
    """Seconds one command takes (in the cgroup if given); its JSON output appended to `report` if given."""
    if cgroup is not None:
        cmd = ["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "sh", *cmd]
    start = time.perf_counter()
    done = subprocess.run(cmd, env={**os.environ, **(env or {})},
                          stdout=subprocess.PIPE if report is not None else subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[-3:])} failed (exit {done.returncode}): {done.stderr[-400:]}")
    if report is not None:
        report.append(json.loads(done.stdout))
    return seconds


def pick(card: Path, mib: float, skip: set[Path]) -> list[Path]:
    """Recordings of the bench card adding up to about `mib` (largest first), none of those in `skip`."""
    want, chosen, total = mib * 2**20, [], 0
    for path in sorted(card.rglob("*.MP4"), key=lambda p: p.stat().st_size, reverse=True):
        if path not in skip and total < want * 0.9 and total + path.stat().st_size <= want * 1.15:
            chosen.append(path)
            total += path.stat().st_size
    if total < want / 2:
        raise SystemExit(f"the bench card holds too little for {mib:g} MiB more; make it bigger (scripts/bench --size)")
    return chosen


def holding(base: Path, name: str, files: list[Path], suffix: str) -> Path:
    """Where a card made of `files` is kept for the next run: named by what it holds, so one made for other files
    (another --card-mib) is never reused; the stale ones of that name go."""
    listing = "\n".join(f"{p.name} {p.stat().st_size}" for p in sorted(files))
    kept = base / f"{name}-{hashlib.sha256(listing.encode()).hexdigest()[:10]}{suffix}"
    if not kept.exists():
        for stale in base.glob(f"{name}-*{suffix}"):
            clean(stale)
    return kept


def make_image(base: Path, name: str, files: list[Path]) -> Path:
    """An ext4 image (mkfs -d, no mount needed) holding `files` under RECORD/."""
    image = holding(base, name, files, ".img")
    if image.exists():
        return image
    tree = base / f"{name}.tree"
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "RECORD").mkdir(parents=True)
    for path in files:
        os.link(path, tree / "RECORD" / path.name)
    size = sum(p.stat().st_size for p in files) * 1.1 + (64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image), f"{int(size) >> 20}M"], check=True)
    shutil.rmtree(tree)
    return image


@contextmanager
def mounted(image: Path, where: Path):
    """The image loop-mounted read-only at `where`; yields its loop device."""
    loop = subprocess.run(["losetup", "--find", "--show", "--read-only", str(image)], check=True,
                          capture_output=True, text=True).stdout.strip()
    where.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["mount", "-o", "ro,noload", loop, str(where)], check=True)
        try:
            yield loop
        finally:
            subprocess.run(["umount", str(where)], check=True)
    finally:
        subprocess.run(["losetup", "-d", loop], check=True)


@contextmanager
def throttled(loops: list[str], mib_s: int):
    """A blkio cgroup whose members read each of these loop devices at most `mib_s` MiB/s."""
    group = BLKIO / f"archiver-bench-{os.getpid()}"
    group.mkdir()
    try:
        for loop in loops:
            st = os.stat(loop)
            (group / "blkio.throttle.read_bps_device").write_text(
                f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)} {mib_s << 20}\n")
        yield group
    finally:
        for pid in (group / "cgroup.procs").read_text().split():
            (BLKIO / "cgroup.procs").write_text(pid)
        group.rmdir()


def clean(*paths: Path) -> None:
    for path in paths:
        if path.is_dir():
            subprocess.run(["chmod", "-R", "u+w", str(path)], check=True)
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def fresh(data: Path, env: dict[str, str]) -> None:
    """An empty station, as a recorder finds it when docked: data dir, key and catalog made (not timed)."""
    clean(data)
    subprocess.run([ARCHIVER, "init"], env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)


def station(base: Path, name: str, extra: str = "") -> dict[str, str]:
    config = base / f"{name}.toml"
    config.write_text(extra)
    return {"ARCHIVER_CONFIG": str(config), "ARCHIVER_DATA_DIR": str(base / f"{name}-data")}


def side_by_side(runs: int, *sides) -> list[list]:
    """What each side's timed command returned, `runs` times, the order turning each round (two sides alternate
    which goes first). Each side is (prepare, timed): what is set up beforehand (an empty station, a cached source)
    is not timed, and for a cold side the caches are dropped after it, right before the timed command."""
    figures: list[list] = [[] for _ in sides]
    for i in range(runs):
        for k in range(len(sides)):
            j = (k + i) % len(sides)
            prepare, timed = sides[j]
            prepare()
            figures[j].append(timed())
    return figures


class Floor:
    """The archive disk's floor for `total` bytes, a round at a time: `dd conv=fsync` (write and sync) and
    `dd iflag=direct` (read past the cache), one after the other and both at once (a verified ingest writes every
    byte and reads it back; the better of the two is the floor); and the bare loop of a verified copy."""

    def __init__(self, base: Path, total: int) -> None:
        self.dir, self.total = base / "floor", total
        self.dir.mkdir(exist_ok=True)
        count = str(total >> 20)
        self.write = ["dd", "if=/dev/zero", f"of={self.dir}/w", "bs=1M", f"count={count}", "conv=fsync", "status=none"]
        self.read = ["dd", f"if={self.dir}/r", "of=/dev/null", "bs=1M", "iflag=direct", "status=none"]
        run(["dd", "if=/dev/urandom", f"of={self.dir}/r", "bs=1M", f"count={count}", "conv=fsync", "status=none"])

    def once(self) -> dict[str, float]:
        (self.dir / "w").unlink(missing_ok=True)
        drop_caches()
        write = run(self.write)
        drop_caches()
        read = run(self.read)
        (self.dir / "w").unlink()
        drop_caches()
        both = run(["sh", "-c", f'{" ".join(self.write)} & {" ".join(self.read)}; wait'])
        (self.dir / "w").unlink()
        drop_caches()
        verified = written_and_read_back(self.dir / "v", self.total)
        return {"write": write, "read": read, "both": both, "floor": min(write + read, both), "verified": verified}

    def close(self) -> None:
        shutil.rmtree(self.dir)


def medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def disk_floor(base: Path, total: int, runs: int) -> dict[str, float]:
    """The floor's medians over `runs` rounds (`Floor`)."""
    floor = Floor(base, total)
    try:
        return medians([floor.once() for _ in range(runs)])
    finally:
        floor.close()


def written_and_read_back(path: Path, total: int, depth: int = 4) -> float:
    """Seconds for a bare loop of what a verified copy asks of the disk: `total` bytes written 1 MiB at a time with
    O_DIRECT, each chunk read straight back (O_DIRECT), `depth` at once; no source, no hashing, no catalog."""
    import mmap
    import threading
    from concurrent.futures import ThreadPoolExecutor

    chunk, chunks = 1 << 20, total >> 20
    data = mmap.mmap(-1, chunk)
    data.write(os.urandom(chunk))
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
    back = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buffers = threading.local()

    def one(i: int) -> None:
        buffer = getattr(buffers, "b", None) or mmap.mmap(-1, chunk)
        buffers.b = buffer
        os.pwrite(out, data, i * chunk)
        os.preadv(back, [buffer], i * chunk)

    try:
        start = time.perf_counter()
        os.posix_fallocate(out, 0, chunks * chunk)
        with ThreadPoolExecutor(depth) as pool:
            list(pool.map(one, range(chunks)))
        os.fsync(out)
        return time.perf_counter() - start
    finally:
        os.close(out)
        os.close(back)
        path.unlink()


def same_disk(base: Path, files: list[Path], runs: int) -> dict[str, float]:
    source = holding(base, "same-disk", files, ".card") / "RECORD"
    if not source.exists():
        source.mkdir(parents=True)
        for path in files:
            os.link(path, source / path.name)
    total = sum(p.stat().st_size for p in files)
    env = station(base, "same-disk")
    data, copy = Path(env["ARCHIVER_DATA_DIR"]), base / "same-disk.copy"

    def warm() -> None:  # the source, and the command itself, in the page cache: the cached case
        for path in source.iterdir():
            with path.open("rb") as fh:
                while fh.read(8 << 20):
                    pass

    inside: list[dict] = []
    read_backs: list[float] = []

    def copied() -> float:  # timed; then the copy read back past the cache, as the floor has it
        seconds = run(["sh", "-c", 'cp -r "$0" "$1" && sync', str(source.parent), str(copy)])
        drop_caches()
        read_backs.append(read_direct(sorted(p for p in copy.rglob("*") if p.is_file())))
        return seconds

    floor = Floor(base, total)  # in the same rounds: this disk's speed drifts by a third from minute to minute
    try:
        copies, ingests, floors = side_by_side(
            runs, (lambda: (clean(copy), warm()), copied),
            (lambda: (fresh(data, env), warm()),
             lambda: run([ARCHIVER, "ingest", "--json", str(source.parent)], env, report=inside)),
            (lambda: None, floor.once))
    finally:
        floor.close()
    clean(copy, data)
    if any(r["bytes_copied"] != total for r in inside):
        raise SystemExit(f"the cached case copied other than the {total} bytes picked: {source}")
    # the floor of a round: the better of dd's (apart or at once) and `cp -r; sync` with its copy read back
    best = [min(f["floor"], c + r) for f, c, r in zip(floors, copies, read_backs, strict=True)]
    return {"bytes": total, "cp": statistics.median(copies), "ingest": statistics.median(ingests),
            **medians(floors), "cp_read": statistics.median(c + r for c, r in zip(copies, read_backs, strict=True)),
            "floor": statistics.median(best), "inside": statistics.median(r["seconds"] for r in inside),
            "rounds": [i / f for i, f in zip(ingests, best, strict=True)]}


def card(base: Path, files: list[Path], mib_s: int, runs: int, name: str) -> dict[str, float]:
    image = make_image(base, "card", files)
    env = station(base, name)
    data, copy, where = Path(env["ARCHIVER_DATA_DIR"]), base / f"{name}.copy", base / f"{name}.mnt"
    with mounted(image, where) as loop, throttled([loop], mib_s) as group:
        copies, ingests = side_by_side(
            runs, (lambda: (clean(copy), drop_caches()),
                   lambda: run(["sh", "-c", 'cp -r "$0" "$1" && sync', str(where), str(copy)], cgroup=group)),
            (lambda: (fresh(data, env), drop_caches()), lambda: run([ARCHIVER, "ingest", str(where)], env,
                                                                    cgroup=group)))
    clean(copy, data)
    return {"bytes": sum(p.stat().st_size for p in files), "cp": statistics.median(copies),
            "ingest": statistics.median(ingests)}


def six_cards(base: Path, cards: list[list[Path]], runs: int) -> dict[str, float]:
    images = [make_image(base, f"six-{i}", files) for i, files in enumerate(cards)]
    media = base / "six.media"
    env = station(base, "six", f'[dock]\nmount_roots = ["{media}"]\ninboxes = []\nsettle_seconds = 0.2\n')
    data = Path(env["ARCHIVER_DATA_DIR"])
    copies, ingests = [], []
    for i in range(runs):
        for side in (("cp", "ingest") if i % 2 == 0 else ("ingest", "cp")):
            drop_caches()
            with _all_mounted(images, media) as (loops, wheres), throttled(loops, USB2) as group:
                if side == "cp":
                    for loop, where in zip(loops, wheres, strict=True):
                        where.mkdir(parents=True, exist_ok=True)
                        subprocess.run(["mount", "-o", "ro,noload", loop, str(where)], check=True)
                    targets = [base / f"six.copy-{n}" for n in range(len(wheres))]
                    clean(*targets)
                    script = " & ".join(f'cp -r "{w}" "{t}"' for w, t in zip(wheres, targets, strict=True))
                    copies.append(run(["sh", "-c", f"{script}; wait; sync"], cgroup=group))
                    clean(*targets)
                else:
                    ingests.append(_docked(data, env, group, media, wheres))
            clean(data)
    return {"bytes": sum(p.stat().st_size for files in cards for p in files), "cp": statistics.median(copies),
            "ingest": statistics.median(ingests)}


@contextmanager
def _all_mounted(images: list[Path], media: Path):
    """Every image attached to a loop device first, then mounted (under `media`) one right after another."""
    loops = [subprocess.run(["losetup", "--find", "--show", "--read-only", str(image)], check=True,
                            capture_output=True, text=True).stdout.strip() for image in images]
    wheres = [media / f"card{n}" for n in range(len(images))]
    try:
        yield loops, wheres
    finally:
        for where in wheres:
            if os.path.ismount(where):
                subprocess.run(["umount", str(where)], check=True)
        for loop in loops:
            subprocess.run(["losetup", "-d", loop], check=True)


def _docked(data: Path, env: dict[str, str], group: Path, media: Path, wheres: list[Path]) -> float:
    """Seconds from mounting the cards under a running daemon (in the cgroup) to its last 'ingest finished'."""
    media.mkdir(exist_ok=True)
    for where in wheres:
        where.mkdir(exist_ok=True)
    log_path = data.parent / "six-daemon.log"
    with log_path.open("wb") as log:
        daemon = subprocess.Popen(["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$@"', "sh", ARCHIVER,
                                   "daemon"], env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log)
    try:
        _wait_for(log_path, b"daemon ready", 1, daemon)
        loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
        drop_caches()  # a daemon that has sat idle: what it runs is no longer in the page cache
        start = time.perf_counter()
        for where in wheres:
            image_loop = next(line.split(":")[0] for line in loops.splitlines()
                              if f"/six-{where.name[4:]}-" in line)
            subprocess.run(["mount", "-o", "ro,noload", image_loop, str(where)], check=True)
        _wait_for(log_path, b"ingest finished", len(wheres), daemon)
        seconds = time.perf_counter() - start
        if b"pending=0" not in log_path.read_bytes() or b"failed=0" not in log_path.read_bytes():
            raise SystemExit(f"the daemon did not archive everything: {log_path}")
        return seconds
    finally:
        daemon.terminate()
        daemon.wait()


def _wait_for(log: Path, line: bytes, count: int, proc: subprocess.Popen) -> None:
    end = time.monotonic() + 600
    while log.read_bytes().count(line) < count:
        if proc.poll() is not None or time.monotonic() > end:
            raise SystemExit(f"the daemon stopped or took too long: {log}")
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench cards", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--card-mib", type=float, default=1200, help="the single card's size (default 1200)")
    parser.add_argument("--cached-mib", type=float, default=0,
                        help="the cached case's size (default 0: every recording of the 3 GiB recorder)")
    parser.add_argument("--six-mib", type=float, default=180, help="each of the six cards' size (default 180)")
    parser.add_argument("--runs", type=int, default=2, help="runs of each side; medians (default 2)")
    parser.add_argument("--cases", default="same-disk,usb2,usb3,six", help="which (default all)")
    args = parser.parse_args()
    if os.geteuid() != 0 or not BLKIO.is_dir():
        sys.exit("run scripts/bench cards as root on a machine with the cgroup v1 blkio controller")
    base = Path(os.environ.get("BENCH_DIR", "/var/tmp/archiver-bench"))
    base.mkdir(parents=True, exist_ok=True)
    source = make_card(base, 3.0)
    one = pick(source, args.card_mib, set())
    used = set(one)
    six = []
    for _ in range(6):
        six.append(pick(source, args.six_mib, used) if args.six_mib else [])
        used.update(six[-1])
    cases = args.cases.split(",")
    results = {}
    if "same-disk" in cases:
        cached = pick(source, args.cached_mib, set()) if args.cached_mib else sorted(source.rglob("*.MP4"))
        results["same-disk"] = same_disk(base, cached, args.runs)
    if "usb2" in cases:
        results["usb2"] = card(base, one, USB2, args.runs, "usb2")
    if "usb3" in cases:
        results["usb3"] = card(base, one, USB3, args.runs, "usb3")
    if "six" in cases:
        results["six"] = six_cards(base, six, args.runs)
    # by bytes: the archive disk's floor for as many bytes (the cached case measured its own in its rounds)
    floors = {f["bytes"]: {k: f[k] for k in ("write", "read", "both", "floor", "verified")}
              for f in results.values() if "floor" in f}
    for figures in results.values():
        figures |= floors.setdefault(figures["bytes"], disk_floor(base, figures["bytes"], args.runs))
    start = cold_start(ARCHIVER, base, args.runs)
    print(f"median of {args.runs} runs; {os.cpu_count()} cores; caches dropped before each command but the cached "
          f"case's; data dirs under {base}")
    print(f"  {'case':34s} {'MiB':>6s} {'cp -r; sync':>12s} {'floor':>8s} {'ingest':>8s}  ratio to cp (target)")
    names = {"same-disk": "same disk, source cached", "usb2": f"card at USB 2 ({USB2} MiB/s), cold",
             "usb3": f"card at USB 3 ({USB3} MiB/s), cold", "six": "six USB 2 cards at once, idle daemon"}
    for case, figures in results.items():
        ratio, target = figures["ingest"] / figures["cp"], TARGETS.get(case)
        verdict = "against the floor, below" if target is None else \
            f"{target:.2f}x: {'met' if ratio <= target else 'NOT met'}"
        print(f"  {names[case]:34s} {figures['bytes'] / 2**20:6.0f} {figures['cp']:10.2f} s {figures['floor']:6.2f} s "
              f"{figures['ingest']:6.2f} s  {ratio:.2f}x ({verdict})")
        if case == "same-disk":
            floor_ratio = figures["ingest"] / figures["floor"]
            print(f"  {'  floor: write+fsync':34s} {figures['write']:17.2f} s, direct read {figures['read']:.2f} s, "
                  f"both at once {figures['both']:.2f} s")
            print(f"  {'  cp -r; sync, then read back':34s} {figures['cp_read']:17.2f} s  (the copy read O_DIRECT; "
                  "the floor is the better of these, round by round)")
            bare = figures["verified"]
            print(f"  {'  written and read back, bare':34s} {bare:17.2f} s  {bare / figures['floor']:.2f}x the floor "
                  "(O_DIRECT, each chunk read back, 4 at once)")
            print(f"  {'  ingest / floor':34s} {figures['floor']:17.2f} s  {floor_ratio:.2f}x ({FLOOR_TARGET:.2f}x: "
                  f"{'met' if floor_ratio <= FLOOR_TARGET else 'NOT met'}; round by round "
                  f"{', '.join(f'{r:.2f}x' for r in figures['rounds'])})")
            inside = figures["inside"]
            print(f"  {'  inside the process':34s} {inside:26.2f} s  {inside / figures['floor']:.2f}x the floor "
                  "(ingest started to finished: no start-up)")
    print(f"  {'cold start: an empty card':34s} {start:26.2f} s  (target 0.50 s: "
          f"{'met' if start <= 0.5 else 'NOT met'})")


if __name__ == "__main__":
    main()
