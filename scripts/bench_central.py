"""A county at scale on a real PostgreSQL: 20 stations x 100,000 recordings handed in at once, each through its
own database login, and applied by the centre's own process (`archiver central`: order, chain, signature, then
the facts applied and linked, a receipt signed): events applied per second and the lag from a batch handed in
to the centre holding it; then 100,000 cases imported centrally and `cases check --all` over them.

Each station's custody log is made here with its own Ed25519 key: one `init` event, then one `ingest` event
per recording, as a station writes them (facts included); officers have 1,000 ten-minute recordings each.
The server is a throwaway one (scripts/engines) under $BENCH_DIR.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_cases import synthetic_cases
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, func, insert, select, text

from archiver.cases.links import relink_actions
from archiver.catalog import Action, ActionOfficer, Case, Catalog, Receipt, Recording, Station
from archiver.central.logins import make_login
from archiver.ledger.custody import GENESIS
from archiver.ledger.keys import StationKey, canonical

REPO = Path(__file__).resolve().parent.parent
BASE = datetime(2024, 1, 1, tzinfo=UTC)
BATCH = 500


def signed(key: StationKey, seq: int, prev: str, action: str, subject: dict, details: dict) -> bytes:
    event = {"seq": seq, "time": (BASE + timedelta(seconds=seq)).isoformat(timespec="microseconds"),
             "actor": {"user": "archiver", "uid": 998, "role": "service"}, "action": action,
             "subject": subject, "details": details, "prev": prev}
    event["sig"] = base64.b64encode(key.sign(canonical(event))).decode()
    return canonical(event)


def station_log(key: StationKey, station: int, recordings: int, rng: random.Random) -> tuple[list[bytes], dict]:
    """The station's log lines, and per officer the starts of their recordings (to place cases on)."""
    def line(seq: int, prev: str, action: str, subject: dict, details: dict) -> bytes:
        return signed(key, seq, prev, action, subject, details)

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


def hand_in_all(logins: dict[str, str], logs: dict[str, list[bytes]], central: Catalog) -> tuple[float, list[float]]:
    """Every station hands its log in at once, through its own login, in batches as `archiver sync` does, while
    the centre's process applies them. (seconds until the centre holds every log, lags in seconds from a batch
    handed in to the centre holding its last event)."""
    handed: dict[str, list[tuple[int, float]]] = {station: [] for station in logins}

    def one(station: str) -> None:
        engine = create_engine(logins[station])
        lines = logs[station]
        for at in range(0, len(lines), BATCH):
            batch = [{"line": line.decode(), "facts": None} for line in lines[at:at + BATCH]]
            with engine.begin() as conn:
                conn.execute(text("SELECT archiver_hand_in(CAST(:batch AS jsonb))"), {"batch": json.dumps(batch)})
            handed[station].append((at + len(batch), time.perf_counter()))
        engine.dispose()

    started = time.perf_counter()
    threads = [threading.Thread(target=one, args=(station,)) for station in logins]
    for thread in threads:
        thread.start()
    lags: list[float] = []
    seen = dict.fromkeys(logins, 0)
    while True:
        with central.reading() as session:
            heads = dict(session.execute(select(Station.id, Station.seq)).all())
        now = time.perf_counter()
        for station, seq in heads.items():
            if seq > seen.get(station, seq):
                lags += [now - when for last, when in handed[station] if seen[station] < last <= seq]
                seen[station] = seq
        if all(heads[station] == len(logs[station]) for station in logins):
            break
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, lags


def docking(logins: dict[str, str], keys: dict[str, StationKey], logs: dict[str, list[bytes]], central: Catalog,
            cards: int = 5, card: int = 10) -> list[float]:
    """Steady work after the backlog: each station docks `cards` cards of `card` recordings, one every second,
    all stations at once, handing each card's events in as the daemon does after an ingest. The lag of each card
    from handed in to the centre holding it (seconds)."""
    lags: list[float] = []
    lock = threading.Lock()

    def one(station: str) -> None:
        engine = create_engine(logins[station])
        lines, key = logs[station], keys[station]
        for c in range(cards):
            batch = []
            for r in range(card):
                prev = hashlib.sha256(lines[-1]).hexdigest()
                sha = hashlib.sha256(f"{station}/docked/{c}/{r}".encode()).hexdigest()
                lines.append(signed(key, len(lines) + 1, prev, "ingest", {"sha256": sha, "device": "D"}, {
                    "archive_path": f"archive/docked/{sha}.MP4", "original_path": f"{sha}.MP4", "size": 1,
                    "source": "/media/D", "run": 2, "sm3": None, "flags": []}))
                batch.append({"line": lines[-1].decode(), "facts": None})
            handed = time.perf_counter()
            with engine.begin() as conn:
                conn.execute(text("SELECT archiver_hand_in(CAST(:batch AS jsonb))"), {"batch": json.dumps(batch)})
            while True:
                with central.reading() as session:
                    if session.scalar(select(Station.seq).where(Station.id == station)) >= len(lines):
                        break
                time.sleep(0.01)
            with lock:
                lags.append(time.perf_counter() - handed)
            time.sleep(max(0.0, 1.0 - (time.perf_counter() - handed)))
        engine.dispose()

    threads = [threading.Thread(target=one, args=(station,)) for station in logins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(lags)


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
    centre = None
    try:
        data_dir = base / "centre"
        config = base / "centre.toml"
        config.write_text(f'[catalog]\nurl = "{url}"\n[central]\npoll_s = 0.05\n')
        env = {**os.environ, "ARCHIVER_CONFIG": str(config), "ARCHIVER_DATA_DIR": str(data_dir)}
        archiver = str(Path(sys.executable).parent / "archiver")
        subprocess.run([archiver, "init"], env=env, check=True, capture_output=True)
        central = Catalog(url)
        rng = random.Random(7)
        keys = {f"station{i:02d}": StationKey(Ed25519PrivateKey.generate()) for i in range(args.stations)}
        logins = {}
        with central.session() as session:
            for station, key in keys.items():
                session.add(Station(id=station, public_key=key.public.text, added_by="bench", seq=0, hash=GENESIS))
                session.flush()
                logins[station] = make_login(session, station)
            session.commit()
        print(f"{args.stations} stations x {args.recordings:,} recordings into PostgreSQL 15 ({url.split('?')[0]}), "
              "each through its own login, all at once, applied by the centre's own process")
        began = time.perf_counter()
        logs: dict[str, list[bytes]] = {}
        starts: dict[str, list[datetime]] = {}
        for i, (station, key) in enumerate(keys.items()):
            logs[station], mine = station_log(key, i, args.recordings, rng)
            starts.update(mine)
        making = time.perf_counter() - began
        events = sum(len(lines) for lines in logs.values())
        log_file = (base / "centre.log").open("wb")
        centre = subprocess.Popen([archiver, "central"], env=env, stdout=log_file, stderr=log_file)
        seconds, lags = hand_in_all(logins, logs, central)
        lags.sort()
        with central.reading() as session:
            held = session.scalar(select(func.count()).select_from(Recording))
            receipts = session.scalar(select(func.count()).select_from(Receipt))
            size = session.scalar(text("SELECT pg_database_size(current_database())"))
        print(f"  sync: {events:,} events applied in {seconds:.0f} s = {events / seconds:,.0f} events/s "
              f"({held:,} recordings, {receipts:,} receipts signed, database {size / 2**30:.1f} GiB); "
              f"making and signing the logs took {making:.0f} s ({events / making:,.0f} events/s)")
        print(f"  lag from a batch handed in to the centre holding it: median {statistics.median(lags):.2f} s, "
              f"95% within {lags[int(0.95 * (len(lags) - 1))]:.2f} s, worst {lags[-1]:.2f} s "
              f"({len(lags):,} batches of {BATCH})")
        steady = docking(logins, keys, logs, central)
        print(f"  then {len(logins)} stations docking at once, a card of 10 recordings each per second: lag from "
              f"handed in to the centre holding it median {statistics.median(steady):.2f} s, 95% within "
              f"{steady[int(0.95 * (len(steady) - 1))]:.2f} s ({len(steady)} cards)")
        centre.terminate()
        centre.wait(timeout=60)
        linking = add_cases(central, starts, args.cases, rng)
        print(f"  {args.cases:,} cases (2 actions each) imported in bulk, linked in {linking:.0f} s")
        began = time.perf_counter()
        done = subprocess.run([archiver, "cases", "check", "--all"], env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - began
        last = (done.stdout.strip().splitlines() or [done.stderr.strip()])[-1]
        print(f"  cases check --all over {args.cases:,} cases centrally: {seconds:.1f} s (exit {done.returncode}: "
              f"{last})")
        central.close()
    finally:
        if centre is not None and centre.poll() is None:
            centre.kill()
        subprocess.run([engines, "postgres", "stop", str(base / "pg")], capture_output=True)


if __name__ == "__main__":
    main()
