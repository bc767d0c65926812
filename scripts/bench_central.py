"""A county at scale on a real PostgreSQL: 20 stations x 100,000 recordings synced into the central catalog
(events per second, through the centre's own checks: order, chain, signature, then the facts applied and
linked), then 100,000 cases imported centrally and `cases check --all` over them.

Each station's custody log is made here with its own Ed25519 key: one `init` event, then one `ingest` event
per recording, as a station writes them (facts included); officers have 1,000 ten-minute recordings each.
The server is a throwaway one (scripts/engines) under $BENCH_DIR.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_cases import synthetic_cases
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, insert, select, text

from archiver.archive.datadir import prepare_data_dir
from archiver.cases.links import relink_actions
from archiver.catalog import Action, ActionOfficer, Case, Catalog, Recording, Station
from archiver.central.receive import Delivery, receive
from archiver.ledger.custody import GENESIS
from archiver.ledger.keys import StationKey, canonical, ensure_station_key

REPO = Path(__file__).resolve().parent.parent
BASE = datetime(2024, 1, 1, tzinfo=UTC)
BATCH = 500


def station_log(key: StationKey, station: int, recordings: int, rng: random.Random) -> tuple[list[bytes], dict]:
    """The station's log lines, and per officer the starts of their recordings (to place cases on)."""
    def line(seq: int, prev: str, action: str, subject: dict, details: dict) -> bytes:
        event = {"seq": seq, "time": (BASE + timedelta(seconds=seq)).isoformat(timespec="microseconds"),
                 "actor": {"user": "archiver", "uid": 998, "role": "service"}, "action": action,
                 "subject": subject, "details": details, "prev": prev}
        event["sig"] = base64.b64encode(key.sign(canonical(event))).decode()
        return canonical(event)

    lines = [line(1, GENESIS, "init", {"data_dir": "/var/lib/archiver"}, {"station_key": key.public.text})]
    prev = hashlib.sha256(lines[0]).hexdigest()
    starts: dict[str, list[datetime]] = {}
    officers = max(1, recordings // 1000)
    for o in range(officers):
        officer, device = f"S{station:02d}JX{o:04d}", f"S{station:02d}D{o:04d}"
        mine = starts[officer] = []
        t = BASE + timedelta(minutes=rng.randrange(600))
        for _i in range(recordings // officers):
            seq = len(lines) + 1
            sha = hashlib.sha256(f"{station}/{seq}".encode()).hexdigest()
            name = f"{device}_{officer}_{t:%Y%m%d%H%M%S}.MP4"
            mine.append(t)
            lines.append(line(seq, prev, "ingest", {"sha256": sha, "device": device}, {
                "archive_path": f"archive/{t:%Y/%m/%d}/{device}/{name}", "original_path": f"RECORD/{name}",
                "size": 600 << 20, "source": f"/media/{device}", "run": 1, "sm3": None, "flags": [],
                "officer": officer, "start": t.isoformat(), "end": (t + timedelta(minutes=10)).isoformat(),
                "duration_s": 600.0, "media_type": "video"}))
            prev = hashlib.sha256(lines[-1]).hexdigest()
            t += timedelta(minutes=10, seconds=rng.choice((0, 0, 0, 1, 2, 20, 3600 * rng.random() * 8)))
    return lines, starts


def add_cases(central: Catalog, starts: dict[str, list[datetime]], cases: int, rng: random.Random) -> float:
    """`cases` cases of two actions each, by one or two officers (often of two stations: joint actions)."""
    case_rows, action_rows, officer_rows = synthetic_cases(starts, cases, rng, "县联合〔2024〕{}号")
    with central.engine.begin() as conn:
        for table, data in ((Case, case_rows), (Action, action_rows), (ActionOfficer, officer_rows)):
            for i in range(0, len(data), 20000):
                conn.execute(insert(table), data[i:i + 20000])
    started = time.perf_counter()
    with central.session() as session:
        relink_actions(session, list(session.scalars(select(Action.id))))
        session.commit()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stations", type=int, default=20)
    parser.add_argument("--recordings", type=int, default=100_000, help="per station")
    parser.add_argument("--cases", type=int, default=100_000)
    args = parser.parse_args()
    base = Path(os.environ.get("BENCH_DIR", "/var/tmp/archiver-bench")) / "central"
    engines = str(REPO / "scripts" / "engines")
    subprocess.run([engines, "postgres", "kill", str(base / "pg")], capture_output=True)
    subprocess.run(["rm", "-rf", str(base)], check=True)
    url = subprocess.run([engines, "postgres", "start", str(base / "pg")], check=True, capture_output=True,
                         text=True).stdout.strip()
    try:
        central = Catalog(url)
        central.upgrade()
        rng = random.Random(7)
        keys = [StationKey(Ed25519PrivateKey.generate()) for _ in range(args.stations)]
        with central.session() as session:
            for i, key in enumerate(keys):
                session.add(Station(id=f"station{i:02d}", public_key=key.public.text, added_by="bench", seq=0,
                                    hash=GENESIS))
            session.commit()
        print(f"{args.stations} stations x {args.recordings:,} recordings into PostgreSQL 15 ({url.split('?')[0]})")
        making = syncing = 0.0
        events = 0
        starts: dict[str, list[datetime]] = {}
        for i, key in enumerate(keys):
            began = time.perf_counter()
            lines, mine = station_log(key, i, args.recordings, rng)
            starts.update(mine)
            making += time.perf_counter() - began
            began = time.perf_counter()
            for at in range(0, len(lines), BATCH):
                got = receive(central, f"station{i:02d}", [Delivery(line) for line in lines[at:at + BATCH]])
                assert not got.refused and got.applied == len(lines[at:at + BATCH]), got
            syncing += time.perf_counter() - began
            events += len(lines)
            print(f"  station{i:02d}: {len(lines):,} events synced; so far {events / syncing:,.0f} events/s",
                  file=sys.stderr)
        with central.reading() as session:
            held = session.scalar(select(func.count()).select_from(Recording))
            size = session.scalar(text("SELECT pg_database_size(current_database())"))
        print(f"  sync: {events:,} events in {syncing:.0f} s = {events / syncing:,.0f} events/s "
              f"({held:,} recordings, database {size / 2**30:.1f} GiB); making and signing the logs took "
              f"{making:.0f} s ({events / making:,.0f} events/s)")
        linking = add_cases(central, starts, args.cases, rng)
        print(f"  {args.cases:,} cases (2 actions each) imported in bulk, linked in {linking:.0f} s")
        data_dir = base / "centre"
        prepare_data_dir(data_dir, {0, os.geteuid()})
        ensure_station_key(data_dir)  # the centre's own key: a lookup is a custody event there too
        config = base / "centre.toml"
        config.write_text(f'[catalog]\nurl = "{url}"\n')
        env = {**os.environ, "ARCHIVER_CONFIG": str(config), "ARCHIVER_DATA_DIR": str(data_dir)}
        archiver = str(Path(sys.executable).parent / "archiver")
        began = time.perf_counter()
        done = subprocess.run([archiver, "cases", "check", "--all"], env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - began
        last = (done.stdout.strip().splitlines() or [done.stderr.strip()])[-1]
        print(f"  cases check --all over {args.cases:,} cases centrally: {seconds:.1f} s (exit {done.returncode}: "
              f"{last})")
        central.close()
    finally:
        subprocess.run([engines, "postgres", "stop", str(base / "pg")], capture_output=True)


if __name__ == "__main__":
    main()
