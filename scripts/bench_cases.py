"""`cases show` and `cases check --all` on a synthetic catalog of 1,000,000 recordings and 100,000 cases.

The catalog is made once (bulk inserts, then the real linking code) under $BENCH_DIR and reused.
Each officer has 1,000 ten-minute recordings spread over a year; each case has two actions by one
or two officers, placed where that officer recorded (with holes), so links and gaps are realistic.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

from archiver.archive.datadir import prepare_data_dir
from archiver.cases.links import LONGEST_RECORDING, check_cases, relink_actions
from archiver.catalog import Action, ActionOfficer, Case, Catalog, Recording
from archiver.catalog.models import utcnow
from archiver.config import LinkingConfig
from archiver.ledger.keys import ensure_station_key

BASE = datetime(2024, 1, 1, tzinfo=UTC)
SLACK = timedelta(seconds=30)


def build(data_dir: Path, recordings: int, cases: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    prepare_data_dir(data_dir, {0, os.geteuid()})
    catalog = Catalog.for_data_dir(data_dir)
    catalog.upgrade()
    officers = max(1, recordings // 1000)
    now = utcnow()
    starts: dict[int, list[datetime]] = {}
    with catalog.engine.begin() as conn:
        rows, rid = [], 0
        for o in range(officers):
            t = BASE + timedelta(minutes=rng.randrange(600))
            mine = starts[o] = []
            for _ in range(recordings // officers):
                rid += 1
                mine.append(t)
                rows.append({"id": rid, "sha256": f"{rid:064x}", "size": 600 << 20, "media_type": "video",
                             "original_path": f"RECORD/D{o:05d}_JX{o:04d}_{rid}.MP4", "device_serial": f"D{o:05d}",
                             "officer_no": f"JX{o:04d}", "start": t, "end": t + timedelta(minutes=10),
                             "duration_s": 600.0, "archive_path": f"archive/x/{rid}.MP4", "ingested_at": now,
                             "verified_at": now, "flags": []})
                # mostly back-to-back segments, sometimes a pause of up to 8 hours
                t += timedelta(minutes=10, seconds=rng.choice((0, 0, 0, 1, 2, 20, 3600 * rng.random() * 8)))
                if len(rows) == 20000:
                    conn.execute(insert(Recording), rows)
                    rows = []
        if rows:
            conn.execute(insert(Recording), rows)
        case_rows, action_rows, officer_rows = synthetic_cases(
            {f"JX{o:04d}": mine for o, mine in starts.items()}, cases, rng, "县综执罚〔2024〕{}号")
        for table, data in ((Case, case_rows), (Action, action_rows), (ActionOfficer, officer_rows)):
            for i in range(0, len(data), 20000):
                conn.execute(insert(table), data[i:i + 20000])
    started = time.perf_counter()
    with catalog.session() as session:
        ids = list(session.scalars(select(Action.id)))
        links = relink_actions(session, ids)
        session.commit()
    print(f"linked {len(ids)} actions: {links} automatic links in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)
    catalog.close()


def synthetic_cases(starts: dict[str, list[datetime]], cases: int, rng: random.Random,
                    number: str) -> tuple[list[dict], list[dict], list[dict]]:
    """Rows of `cases` cases of two actions each, by one or two officers, placed where the first of them
    recorded (`starts`: officer -> starts of their recordings): (cases, actions, action officers)."""
    officers, now = sorted(starts), utcnow()
    case_rows, action_rows, officer_rows, aid = [], [], [], 0
    for c in range(1, cases + 1):
        case_rows.append({"id": c, "case_no": number.format(c), "title": f"synthetic case {c}", "imported_at": now})
        for stage in ("调查取证", "送达"):
            aid += 1
            crew = rng.sample(officers, k=min(len(officers), rng.choice((1, 2))))
            start = rng.choice(starts[crew[0]]) + timedelta(minutes=rng.randrange(10))
            end = start + timedelta(minutes=rng.choice((5, 15, 30)))
            action_rows.append({"id": aid, "case_id": c, "stage": stage, "start": start, "end": end,
                                "recording_required": True, "link_from": start - SLACK, "link_to": end + SLACK,
                                "scan_from": start - SLACK - LONGEST_RECORDING})
            officer_rows.extend({"action_id": aid, "officer_no": o} for o in crew)
    return case_rows, action_rows, officer_rows


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
    return time.perf_counter() - start, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recordings", type=int, default=1_000_000)
    parser.add_argument("--cases", type=int, default=100_000)
    args = parser.parse_args()
    base = Path(os.environ.get("BENCH_DIR", "/var/tmp/archiver-bench"))
    data_dir = base / f"catalog-{args.recordings}-{args.cases}"
    if not (data_dir / ".complete").exists():
        started = time.perf_counter()
        build(data_dir, args.recordings, args.cases)
        (data_dir / ".complete").write_text("")
        print(f"built {data_dir} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    upgrade = Catalog.for_data_dir(data_dir)  # a catalog built by an older version gets the newer schema
    upgrade.upgrade()
    upgrade.close()
    ensure_station_key(data_dir)  # lookups are signed into the custody log
    config = base / "bench.toml"
    config.write_text("")
    env = {"ARCHIVER_CONFIG": str(config), "ARCHIVER_DATA_DIR": str(data_dir)}
    archiver = str(Path(sys.executable).parent / "archiver")
    size = (data_dir / "catalog.db").stat().st_size
    print(f"catalog: {args.recordings} recordings, {args.cases} cases, {size / 2**20:.0f} MiB")
    timed([archiver, "--version"], env)  # warm the interpreter's file cache
    catalog = Catalog.for_data_dir(data_dir)
    for case_no in ("县综执罚〔2024〕7号", f"县综执罚〔2024〕{args.cases - 7}号"):
        started = time.perf_counter()
        (check,) = check_cases(catalog, [case_no], LinkingConfig(30, 3), full=True)
        print(f"  the lookup behind cases show {case_no}: {(time.perf_counter() - started) * 1000:.1f} ms "
              f"({len(check.actions)} actions, {sum(len(a.recordings) for a in check.actions)} linked recordings)")
    catalog.close()
    for case_no in ("县综执罚〔2024〕1号", f"县综执罚〔2024〕{args.cases // 2}号", f"县综执罚〔2024〕{args.cases}号"):
        seconds, done = timed([archiver, "cases", "show", case_no, "--json"], env)
        print(f"  cases show {case_no}: {seconds:.2f} s (exit {done.returncode}; the whole command, "
              "interpreter start included)")
    seconds, done = timed([archiver, "recordings", "list", "--officer", "JX0042", "--since", "2024-01-05",
                           "--until", "2024-01-12", "--json"], env)
    print(f"  recordings list --officer JX0042 --since 2024-01-05 --until 2024-01-12: {seconds:.2f} s "
          f"(exit {done.returncode}, {done.stdout.count(chr(10) + '  {')} recordings)")
    seconds, done = timed([archiver, "cases", "check", "--all"], env)
    print(f"  cases check --all: {seconds:.1f} s (exit {done.returncode}: {done.stdout.strip().splitlines()[-1]})")
    seconds, _ = timed([archiver, "--help"], env)
    print(f"  archiver --help (interpreter and imports only): {seconds:.2f} s")


if __name__ == "__main__":
    main()
