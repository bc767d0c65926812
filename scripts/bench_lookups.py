"""`scripts/bench lookups`: lookups through the station service, side by side with `python3 -c pass` and
the direct command; and a docked recorder's ingest with and without 20 clients at once.

A real daemon (run as root) serves a real socket; the clients are a throwaway user in the legal role,
started with that user's uid and groups (no runuser in the measured time). Run as root.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from archiver.dock.simulate import RecorderSpec, make_recorder

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv" / "bin"
ARCHIVER = str(VENV / "archiver")
CASE = "后叶罚〔2022〕12号"
BIG = "TA00999_JX0227_20230101090000.MP4"
CASES = ("case_no,title,stage,officers,start,end,recording_required\n"
         f"{CASE},占道经营,调查取证,JX0227,2022-11-03T09:36:21,2022-11-03T09:36:45,是\n")


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench lookups")
    parser.add_argument("--runs", type=int, default=30, help="runs of each command (default 30)")
    parser.add_argument("--clients", type=int, default=20, help="clients at once during the ingest (default 20)")
    parser.add_argument("--rounds", type=int, default=2, help="ingests under each load (default 2; 0: lookups only)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run scripts/bench lookups as root: it adds a throwaway user and starts a daemon")
    base = Path(os.environ.get("BENCH_DIR", "/var/tmp/archiver-bench")) / "lookups"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    base.chmod(0o755)
    tag = str(os.getpid() % 100000)
    user, group = f"arcv-bench-{tag}", f"arcv-bench-legal-{tag}"
    subprocess.run(["groupadd", group], check=True)
    subprocess.run(["useradd", "-M", "-N", "-G", group, "-s", "/usr/sbin/nologin", user], check=True)
    daemon = None
    try:
        config, data = _station(base, group)
        daemon = _daemon(base, config, data)
        as_user = _as(user, base)
        direct = [ARCHIVER, "--config", str(config), "--data-dir", str(data)]
        commands = {
            "python3 -c pass (the same interpreter)": (as_user, [str(VENV / "python3"), "-c", "pass"]),
            "cases show, through the service": (as_user, [ARCHIVER, "cases", "show", CASE]),
            "recordings list, through the service": (as_user, [ARCHIVER, "recordings", "list"]),
            "cases show, direct (root, no service)": ({}, [*direct, "cases", "show", CASE]),
            "recordings list, direct (root, no service)": ({}, [*direct, "recordings", "list"]),
        }
        env = {"PATH": os.environ["PATH"], "ARCHIVER_CONFIG": str(config), "LANG": "C.UTF-8"}
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):  # interleaved: the machine's mood falls on every command alike
            for name, (who, argv) in commands.items():
                start = time.perf_counter()
                subprocess.run(argv, stdout=subprocess.DEVNULL, check=True, env=env, **who)
                times[name].append(time.perf_counter() - start)
        baseline = statistics.median(times["python3 -c pass (the same interpreter)"])
        figures: dict[str, object] = {"lookups": {}}
        print(f"{'command':48} {'median':>9} {'p90':>9} {'vs pass':>8}")
        for name, values in times.items():
            med, p90 = statistics.median(values), sorted(values)[int(len(values) * 0.9) - 1]
            figures["lookups"][name] = {"median_ms": round(med * 1000, 1), "p90_ms": round(p90 * 1000, 1),
                                        "ratio_to_pass": round(med / baseline, 2)}
            print(f"{name:48} {med * 1000:7.1f} ms {p90 * 1000:7.1f} ms {med / baseline:7.2f}x")
        loads = {
            "alone": None,
            f"{args.clients - 1} loops of python3 -c pass (the clients' own start-up, no service)":
                lambda stop: _clients(args.clients - 1, who_env(as_user, env), stop, [str(VENV / "python3"), "-c",
                                                                                      "pass"], 0, retrieval=False),
            "one client retrieving 512 MiB (its copy shares the disk)":
                lambda stop: _clients(1, who_env(as_user, env), stop, LOOKUP, 0),
            f"{args.clients} clients at once, each a lookup a second":
                lambda stop: _clients(args.clients, who_env(as_user, env), stop, LOOKUP, 1.0, retrieval=False),
            f"{args.clients} clients at once, each a lookup a second, one retrieving 512 MiB":
                lambda stop: _clients(args.clients, who_env(as_user, env), stop, LOOKUP, 1.0),
            f"{args.clients} clients at once, each looking up back to back, one retrieving 512 MiB":
                lambda stop: _clients(args.clients, who_env(as_user, env), stop, LOOKUP, 0),
        }
        if not args.rounds:
            loads = {}
        ingest: dict[str, list[float]] = {name: [] for name in loads}
        serial = 800
        for _ in range(args.rounds):
            for name, load in loads.items():
                serial += 1
                ingest[name].append(_docked_ingest(base, data, f"TA00{serial}", load))
        quiet = statistics.median(ingest["alone"]) if ingest else 0.0
        figures["ingest"] = {}
        if ingest:
            print(f"\na docked recorder's ingest (median of {args.rounds}), its time against the ingest alone:")
        for name, values in ingest.items():
            med = statistics.median(values)
            figures["ingest"][name] = {"seconds": [round(v, 2) for v in values], "ratio": round(med / quiet, 2)}
            print(f"  {name:88} {med:6.2f} s {med / quiet:5.2f}x")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False))
        return 0
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
        subprocess.run(["userdel", user], check=False)
        subprocess.run(["groupdel", group], check=False)


def _as(user: str, base: Path) -> dict[str, object]:
    """How to start a process as `user` (uid, groups, a home folder of theirs to work in)."""
    entry = pwd.getpwnam(user)
    groups = [g.gr_gid for g in grp.getgrall() if user in g.gr_mem]
    home = base / "home"
    home.mkdir(exist_ok=True)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": groups, "cwd": home}


def _station(base: Path, group: str) -> tuple[Path, Path]:
    config, data = base / "archiver.toml", base / "data"
    config.write_text(f'[service]\nsocket = "{base}/run/archiver.sock"\n[dock]\nmount_roots = []\n'
                      f'inboxes = ["{base}/inbox"]\nsettle_seconds = 0.2\n[access]\ngroups = {{ legal = "{group}" }}\n')
    config.chmod(0o644)
    make_recorder(base / "card", RecorderSpec())
    with (base / "card" / BIG).open("wb") as fh:  # what the large retrieval fetches
        for _ in range(512):
            fh.write(os.urandom(1 << 20))
    (base / "cases.csv").write_text(CASES)
    for argv in (["ingest", base / "card"], ["cases", "import", base / "cases.csv"]):
        subprocess.run([ARCHIVER, "--config", config, "--data-dir", data, *argv], check=True,
                       stdout=subprocess.DEVNULL)
    (base / "inbox").mkdir()
    return config, data


def _daemon(base: Path, config: Path, data: Path) -> subprocess.Popen:
    log = (base / "daemon.log").open("wb")
    proc = subprocess.Popen([ARCHIVER, "--config", str(config), "--data-dir", str(data), "daemon"],
                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    end = time.monotonic() + 30
    while b"daemon ready" not in (base / "daemon.log").read_bytes():
        if time.monotonic() > end or proc.poll() is not None:
            sys.exit((base / "daemon.log").read_text())
        time.sleep(0.05)
    return proc


def _count(data: Path, serial: str) -> int:
    import sqlite3

    db = sqlite3.connect(data / "catalog.db")
    try:
        # sightings, not recordings: a photo byte-identical to one archived earlier is archived once
        return db.execute("SELECT count(DISTINCT original_path) FROM sightings WHERE original_path LIKE ?",
                          (f"%{serial}%",)).fetchone()[0]
    finally:
        db.close()


def _docked_ingest(base: Path, data: Path, serial: str, load) -> float:
    """Seconds from a recorder's files appearing in the inbox to all of them catalogued."""
    spec = RecorderSpec(serial=serial, segments=12, segment_seconds=10, bitrate="20M", noise=True,
                        start=RecorderSpec.start.replace(year=2000 + int(serial[-2:])))
    staged = base / f"staged-{serial}"
    make_recorder(staged, spec)
    want = spec.segments + spec.audio + spec.photos
    stop = threading.Event()
    workers = load(stop) if load else []
    try:
        time.sleep(1 if load else 0)
        start = time.perf_counter()
        staged.rename(base / "inbox" / serial)
        while _count(data, serial) < want:
            time.sleep(0.02)
        return time.perf_counter() - start
    finally:
        stop.set()
        for worker in workers:
            worker.join()


LOOKUP = [ARCHIVER, "cases", "show", CASE]


def who_env(who: dict, env: dict) -> dict:
    return {**who, "env": env}


def _clients(n: int, who: dict, stop: threading.Event, argv: list[str], pause: float,
             retrieval: bool = True) -> list[threading.Thread]:
    """n clients at once: each runs `argv` again and again (`pause` seconds apart); with `retrieval`, one of
    them retrieves the large recording instead."""
    def loop() -> None:
        while not stop.is_set():
            subprocess.run(argv, stdout=subprocess.DEVNULL, check=True, **who)
            stop.wait(pause)

    def retrieve() -> None:
        rows = json.loads(subprocess.run([ARCHIVER, "recordings", "list", "--json"], capture_output=True, check=True,
                                         **who).stdout)
        big = next(r["id"] for r in rows if r["original_path"].endswith(BIG))
        subprocess.run([ARCHIVER, "recordings", "get", str(big), f"retrieved-{time.monotonic_ns()}", "--reason",
                        "bench"], stdout=subprocess.DEVNULL, check=True, **who)

    threads = [threading.Thread(target=loop) for _ in range(n - retrieval)]
    threads += [threading.Thread(target=retrieve)] if retrieval else []
    for thread in threads:
        thread.start()
    return threads


if __name__ == "__main__":
    sys.exit(main())
