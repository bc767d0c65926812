"""Fault injection: kills at random moments, a locked catalog, hostile recorder content.

Every scenario ends the same way: one more ordinary run, then every recording is archived exactly
once and byte-exact, nothing partial is left anywhere, and `archiver verify` is clean.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import archive_problems, mount, tree_state, umount
from runner import ARCHIVER, archiver

from archiver.dock.simulate import RecorderSpec, make_photo

SEED = int(os.environ.get("FAULT_SEED", "20261126"))


def _env(data_dir: Path, config: Path) -> dict[str, str]:
    return {**os.environ, "ARCHIVER_DATA_DIR": str(data_dir), "ARCHIVER_CONFIG": str(config)}


def _kill_at_random(cmd: list[str], env: dict[str, str], times: int, longest: float, rng: random.Random) -> int:
    """Start `cmd` `times` times and SIGKILL it after a random delay; returns how many runs were cut short."""
    killed = 0
    for _ in range(times):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, longest))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
    return killed


@pytest.fixture
def big_recorder(card: Path, tmp_path: Path) -> Path:
    rec = tmp_path / "big"
    shutil.copytree(card, rec)
    rng = random.Random(SEED)
    for i in range(4):
        (rec / "RECORD" / f"TA00716_JX0227_2022110312{i:02d}00.MP4").write_bytes(rng.randbytes(40 << 20))
    return rec


def test_ingest_killed_at_20_random_moments_then_one_full_run(big_recorder: Path, tmp_path: Path, data_dir: Path):
    config = tmp_path / "c.toml"
    config.write_text("")
    env = _env(data_dir, config)
    before = tree_state(big_recorder)
    rng = random.Random(SEED)
    killed = _kill_at_random([ARCHIVER, "ingest", str(big_recorder)], env, 20, 1.0, rng)
    assert killed >= 5, f"only {killed} of 20 runs were cut short (seed {SEED})"
    final = archiver("ingest", str(big_recorder), "--json", env=env)
    assert final.returncode == 0, final.stderr
    assert archive_problems(data_dir) == []
    rows = sqlite3.connect(data_dir / "catalog.db").execute("select original_path from recordings").fetchall()
    assert sorted(r[0] for r in rows) == sorted(str(p.relative_to(big_recorder)) for p in big_recorder.rglob("*")
                                                if p.suffix in (".MP4", ".WAV", ".JPG"))
    archived = [p for p in (data_dir / "archive").rglob("*") if p.is_file() and not p.name.startswith("manifest-")]
    assert len(archived) == len(rows)  # exactly once
    check = archiver("verify", "--json", env=env)
    assert check.returncode == 0, check.stdout
    assert tree_state(big_recorder) == before


def test_backup_killed_at_random_moments_then_one_full_run(big_recorder: Path, tmp_path: Path, data_dir: Path):
    keys = tmp_path / "id.txt"
    subprocess.run(["age-keygen", "-o", str(keys)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(keys)], check=True, capture_output=True, text=True).stdout
    target = tmp_path / "target"
    target.mkdir()
    config = tmp_path / "c.toml"
    config.write_text(f"[backup]\ntargets = [{str(target)!r}]\nrecipients = [{recipient.strip()!r}]\n")
    env = _env(data_dir, config)
    assert archiver("ingest", str(big_recorder), env=env).returncode == 0
    rng = random.Random(SEED + 1)
    # 20 tries: a run that is not cut short finishes the backup, and the runs after it have little left to cut
    # (10 tries cut 4 short once in CI)
    killed = _kill_at_random([ARCHIVER, "backup", "run"], env, 20, 1.5, rng)
    assert killed >= 5, f"only {killed} of 20 runs were cut short (seed {SEED + 1})"
    assert archiver("backup", "run", env=env).returncode == 0
    manifest = [json.loads(line) for line in (target / "backup-manifest.jsonl").read_text().splitlines()]
    objects = [e["plain_sha256"] for e in manifest if e["kind"] == "recording"]
    assert len(objects) == len(set(objects)) == 10
    assert not list(target.rglob(".tmp-*"))
    drill = archiver("backup", "verify", "--identity", str(keys), env=env)
    assert drill.returncode == 0, drill.stdout
    assert archiver("verify", env=env).returncode == 0


def test_a_catalog_held_by_another_process_is_waited_for(cli, recorder: Path, data_dir: Path):
    assert cli("init").exit_code == 0
    holder = sqlite3.connect(data_dir / "catalog.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(3.0, lambda: holder.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    try:
        result = cli("ingest", recorder, "--json")
    finally:
        release.join()
        holder.close()
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started >= 2.5  # it waited, then finished: nothing lost
    assert json.loads(result.stdout)["ingested"] == 6
    assert archive_problems(data_dir) == []


def test_hostile_card_many_tiny_files_deep_nesting_odd_names(card: Path, tmp_path: Path, tmpfs):
    rec = tmp_path / "hostile"
    rec.mkdir()
    tiny = rec / "DCIM" / "TINY"
    tiny.mkdir(parents=True)
    for i in range(10_000):
        (tiny / f"N{i:05d}.bin0").write_bytes(i.to_bytes(4, "big"))
    deep = rec
    for level in range(50):
        deep = deep / f"d{level}"
    deep.mkdir(parents=True)
    shutil.copy2(card / "RECORD/TA00716_JX0227_20221103093621.MP4", deep / "TA00716_JX0227_20221103093621.MP4")
    (rec / "ctl\x01\x1b[31m\x7fname.MP4").write_bytes(b"\x00" * 10)
    (rec / "TA00716_JX0227_20221103100000.MP4").write_bytes(b"")  # a 0-byte "video"
    os.symlink(rec, rec / "DCIM" / "loop")
    os.symlink("/", rec / "root")
    data_dir = tmpfs("data", "512m")  # fsync is free here: the test measures the pipeline, not the disk
    config = tmp_path / "c.toml"
    config.write_text("")
    env = _env(data_dir, config)
    before = tree_state(rec)
    started = time.monotonic()
    result = subprocess.run([ARCHIVER, "ingest", str(rec), "--json"], env=env, capture_output=True, text=True,
                            timeout=900)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["ingested"] == 10_003
    print(f"\n10,003 files (10,000 tiny) ingested in {took:.1f} s")
    rows = dict(sqlite3.connect(data_dir / "catalog.db").execute("select original_path, archive_path from recordings"))
    assert "/".join(f"d{i}" for i in range(50)) + "/TA00716_JX0227_20221103093621.MP4" in rows
    assert rows["ctl\x01\x1b[31m\x7fname.MP4"].endswith("/ctl__[31m_name.MP4")
    assert {s["path"] for s in report["not_recordings"]} == {"DCIM/loop", "root"}
    assert archive_problems(data_dir) == []
    assert tree_state(rec) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_a_file_over_4_gib_is_archived_with_flat_memory(tmp_path: Path):
    image = tmp_path / "card.img"
    subprocess.run(["truncate", "-s", "6G", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", str(image)], check=True)
    target = tmp_path / "card"
    target.mkdir()
    mount("-o", "loop", str(image), str(target))
    try:
        huge = target / "TA00716_JX0227_20221103140000.MP4"
        with huge.open("wb") as fh:  # sparse: 4.5 GiB of which only the ends are written
            fh.write(b"\x00\x00\x00\x18ftypmp42")
            fh.seek((4 << 30) + (512 << 20))
            fh.write(b"end of a long recording")
        data_dir = tmp_path / "data"
        config = tmp_path / "c.toml"
        config.write_text("")
        started = time.monotonic()
        # GNU time, a small process of its own, reports the peak: a child forked or spawned (CLONE_VM)
        # from this test process would count the test process's memory in its own peak
        done = subprocess.run(["/usr/bin/time", "-f", "%M", ARCHIVER, "ingest", str(target)],
                              env=_env(data_dir, config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, timeout=900)
        took = time.monotonic() - started
        assert done.returncode == 0, done.stderr[-2000:]
        peak_mib = int(done.stderr.strip().splitlines()[-1]) / 1024
        (row,) = sqlite3.connect(data_dir / "catalog.db").execute("select size, flags from recordings").fetchall()
        assert row[0] == huge.stat().st_size > 4 << 30
        archived = next((data_dir / "archive").rglob("*.MP4"))
        with archived.open("rb") as fh:
            fh.seek(-23, os.SEEK_END)
            assert fh.read() == b"end of a long recording"
        print(f"\n4.5 GiB file ingested in {took:.1f} s; peak RSS {peak_mib:.0f} MiB")
        assert peak_mib < 150
        archived.unlink()  # 4.5 GiB of /tmp back
    finally:
        umount(target)


def test_a_lost_catalog_is_rebuilt_from_the_custody_log_archive_and_manifests(cli, recorder: Path,
                                                                              data_dir: Path):
    assert cli("ingest", recorder).exit_code == 0
    fields = ("sha256", "start", "end", "officer_no", "device_serial", "media_type", "archive_path",
              "original_path", "size", "flags", "duration_s")

    def listing():
        rows = json.loads(cli("recordings", "list", "--json").stdout)
        return sorted(tuple(json.dumps(r[f]) for f in fields) for r in rows)

    before = listing()
    refused = cli("rebuild-catalog")
    assert refused.exit_code == 2 and "move it aside first" in refused.stderr
    for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
        (data_dir / name).unlink(missing_ok=True)
    result = cli("rebuild-catalog")
    assert result.exit_code == 0, result.output
    assert "catalog rebuilt with 6 recording(s)" in result.stdout
    assert listing() == before
    assert cli("verify").exit_code == 0
    assert archive_problems(data_dir) == []


def _stages_in_flight(data_dir: Path) -> tuple[int, int, int]:
    """(temp copies, placed files not catalogued yet, catalogued recordings) in a data dir an ingest writes."""
    archive = data_dir / "archive"
    temps, placed = 0, set()
    for path in archive.rglob("*") if archive.is_dir() else ():
        if path.name.startswith(".tmp-"):
            temps += 1
        elif path.is_file() and not path.name.startswith("manifest-"):
            placed.add(path.relative_to(data_dir).as_posix())
    try:
        db = sqlite3.connect(f"file:{data_dir / 'catalog.db'}?mode=ro", uri=True, timeout=1)
        catalogued = {r[0] for r in db.execute("select archive_path from recordings")}
        db.close()
    except sqlite3.Error:
        return temps, 0, 0
    return temps, len(placed - catalogued), len(catalogued)


def test_the_pipeline_killed_with_files_in_every_stage_loses_nothing(tmp_path: Path, data_dir: Path):
    """SIGKILL while one file is being copied, others are placed and being proved or waiting for their batch, and
    others are catalogued; the next run finishes the job with every recording archived exactly once."""
    rec = tmp_path / "rec"
    rng = random.Random(SEED + 2)
    for i in range(24):
        folder = rec / "RECORD"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"TA00716_JX0227_20221103{10 + i // 60:02d}{i % 60:02d}00.MP4").write_bytes(rng.randbytes(6 << 20))
    (rec / "PHOTO").mkdir()
    spec = RecorderSpec(size="64x48")
    make_photo(tmp_path / "seed.jpg", spec, spec.start, 0)
    photo = (tmp_path / "seed.jpg").read_bytes()
    for i in range(300):  # real photos, each with its own tail after the end-of-image marker
        (rec / "PHOTO" / f"TA00716_JX0227_2022110311{i // 60:02d}{i % 60:02d}.JPG").write_bytes(
            photo + rng.randbytes(3000))
    config = tmp_path / "c.toml"
    config.write_text("")
    env = _env(data_dir, config)
    before = tree_state(rec)
    caught = None
    for _attempt in range(5):
        proc = subprocess.Popen([ARCHIVER, "ingest", str(rec)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        while proc.poll() is None:
            state = _stages_in_flight(data_dir)
            if all(state):
                proc.send_signal(signal.SIGKILL)
                caught = state
                break
            time.sleep(0.002)
        proc.wait()
        if caught:
            break
    assert caught, "never saw a copy, a placed file and a catalogued one at the same time"
    assert list(data_dir.glob(".tmp-*-writing")), "the killed run left its mark"
    final = archiver("ingest", str(rec), "--json", env=env)
    assert final.returncode == 0, final.stderr
    report = json.loads(final.stdout)
    assert report["failed"] == [] and report["pending"] == []
    assert archive_problems(data_dir) == []
    rows = sqlite3.connect(data_dir / "catalog.db").execute("select original_path from recordings").fetchall()
    assert sorted(r[0] for r in rows) == sorted(str(p.relative_to(rec)) for p in rec.rglob("*") if p.is_file())
    archived = [p for p in (data_dir / "archive").rglob("*") if p.is_file() and not p.name.startswith("manifest-")]
    assert len(archived) == len(rows) == 324  # exactly once, and no temp file left
    assert not list(data_dir.glob(".tmp-*"))  # nor the killed run's mark
    runs = sqlite3.connect(data_dir / "catalog.db").execute("select status from ingest_runs order by id").fetchall()
    assert runs[-1] == ("ok",) and "interrupted" in {r[0] for r in runs} and ("running",) not in runs
    check = archiver("verify", "--json", env=env)
    assert check.returncode == 0, check.stdout
    assert tree_state(rec) == before
