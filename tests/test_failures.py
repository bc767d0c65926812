"""Failures of the environment: a full archive disk, missing or unusable folders, bad configuration."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import archive_problems, mount, tree_state, umount
from daemon_util import wait_for

from archiver.archive.copying import CHUNK, DEEP


def test_full_archive_disk_stops_cleanly_and_a_later_run_finishes(cli, recorder: Path, tmpfs):
    big = recorder / "ZZ"
    big.mkdir()
    for i in range(3):
        (big / f"TA00716_JX0227_2022110312000{i}.MOV").write_bytes(os.urandom(700 << 10))
    before = tree_state(recorder)
    disk = tmpfs("small", "1600k")
    data_dir = disk / "data"

    first = cli("ingest", recorder, "--json", data=data_dir)
    assert first.exit_code == 3, first.output
    assert first.stderr.count("\n") == 1
    assert first.stderr.startswith(f"Error: archive disk full: the filesystem at {disk} has no space left")
    report = json.loads(first.stdout)
    assert report["ingested"] >= 1 and report["pending"] and report["failed"] == []
    assert (report["ended"], report["error"]) == ("archive", first.stderr[len("Error: "):].strip())
    assert archive_problems(data_dir) == []  # no partial file, every catalogued file intact
    done = {r[0] for r in sqlite3.connect(data_dir / "catalog.db").execute("select sha256 from recordings")}
    assert len(done) == report["ingested"]

    mount("-o", "remount,size=64m", str(disk))
    second = cli("ingest", recorder, "--json", data=data_dir)
    assert second.exit_code == 0, second.output
    again = json.loads(second.stdout)
    assert again["ingested"] + again["already_archived"] == 9
    assert again["already_archived"] == len(done)
    assert archive_problems(data_dir) == []
    assert tree_state(recorder) == before


def test_lookups_go_on_when_the_disk_is_full(cli, recorder: Path, tmpfs):
    """Something else fills the archive disk to the last byte: the catalog still opens and every lookup still
    writes its custody event, from the reserve set aside while there was room; status says so."""
    disk = tmpfs("full", "64m")
    data_dir = disk / "data"
    assert cli("ingest", recorder, data=data_dir).exit_code == 0
    assert (data_dir / "reserve").stat().st_blocks * 512 >= 8 << 20
    with (disk / "filler").open("wb") as fh, pytest.raises(OSError):
        while True:
            fh.write(b"\0" * (1 << 20))
            fh.flush()
    assert os.statvfs(disk).f_bavail == 0
    for args in (("recordings", "list"), ("recordings", "show", "1"), ("cases", "list"), ("devices", "list"),
                 ("custody", "show"), ("verify",), ("status",)):
        done = cli(*args, data=data_dir)
        assert done.exit_code == 0, (args, done.output)
    assert "the disk filled up and its reserve for lookups is used" in done.stdout
    lookups = [json.loads(line) for line in (data_dir / "custody.jsonl").read_text().splitlines()]
    assert sum(e["action"] == "lookup" for e in lookups) >= 4 and not (data_dir / "reserve").exists()
    assert cli("verify", data=data_dir).exit_code == 0  # the log, signed line by line, intact
    (disk / "filler").unlink()
    assert cli("ingest", recorder, data=data_dir).exit_code == 0
    assert (data_dir / "reserve").exists()  # set aside again once there is room


def test_missing_source_is_one_line_exit_2(cli, tmp_path: Path):
    result = cli("ingest", tmp_path / "not-there")
    assert result.exit_code == 2
    assert result.stderr == f"Error: {tmp_path / 'not-there'} does not exist: give the folder where the recorder " \
                            "is mounted\n"


def test_data_dir_on_a_read_only_disk_is_one_line_exit_2(cli, recorder: Path, tmpfs):
    disk = tmpfs("ro", "1m")
    mount("-o", "remount,ro", str(disk))
    # the flag wins over ARCHIVER_DATA_DIR (which the cli fixture sets)
    result = cli("--data-dir", disk / "data", "ingest", recorder)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: cannot create data dir {disk / 'data'}: Read-only file system")
    assert result.stderr.count("\n") == 1


def test_data_dir_that_is_a_file_and_lookups_before_init(cli, tmp_path: Path, data_dir: Path):
    listing = cli("recordings", "list")
    assert listing.exit_code == 2
    assert listing.stderr == f"Error: data dir {data_dir} does not exist: run 'archiver init' or set --data-dir\n"
    data_dir.write_text("oops")
    result = cli("init")
    assert result.exit_code == 2
    assert result.stderr == f"Error: data dir {data_dir} exists but is not a folder: set data_dir to a folder\n"


@pytest.mark.parametrize(("toml", "message"), [
    ("colour = 'red'\n", "unknown key 'colour' in {f}"),
    ("[dock]\nsettle = 5\n", "unknown key 'dock.settle' in {f}"),
    ("timezone = 'Mars/Olympus'\n", "unknown timezone 'Mars/Olympus' in {f}"),
    ("hashes = ['md5']\n", "'hashes' in {f} must include sha256"),
    ("[dock]\nmax_parallel = 'two'\n", "'dock.max_parallel' in {f} must be a number"),
    ("data_dir = \n", "config file {f} is not valid TOML"),
])
def test_bad_config_is_one_line_naming_the_key(cli, tmp_path: Path, toml: str, message: str):
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    result = cli("recordings", "list", config=config)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: " + message.format(f=config))
    assert result.stderr.count("\n") == 1


def test_unknown_reference_and_bad_time_are_exit_2(cli, recorder: Path):
    assert cli("ingest", recorder).exit_code == 0
    for ref, text in (("999", "no recording with id or sha256 prefix 999"),
                      ("zzzz", "'zzzz' is neither a recording id nor a sha256 prefix"),
                      ("00000000", "no recording with id or sha256 prefix 00000000")):
        result = cli("recordings", "show", ref)
        assert result.exit_code == 2 and result.stderr.startswith(f"Error: {text}"), result.stderr
    bad_time = cli("recordings", "list", "--since", "yesterday")
    assert bad_time.exit_code == 2 and bad_time.stderr.startswith("Error: cannot read time 'yesterday'")


def test_a_big_recording_filling_an_ext4_archive_through_direct_writes_stops_cleanly(cli, tmp_path: Path):
    """The O_DIRECT writes of a big file (several in flight) meet ENOSPC on a real ext4 disk: one line, exit 3,
    the file's temp copy gone, what was catalogued before intact; grown, the disk takes the rest."""
    rec = tmp_path / "rec" / "RECORD"
    rec.mkdir(parents=True)
    for i, mib in enumerate((36, 36, 36)):
        (rec / f"TA00716_JX0227_2022110312{i:02d}00.MP4").write_bytes(os.urandom(mib << 20))
    image, disk = tmp_path / "archive.img", tmp_path / "archive"
    subprocess.run(["truncate", "-s", "96M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-m", "0", str(image)], check=True)
    disk.mkdir()
    mount("-o", "loop", str(image), str(disk))
    try:
        data_dir = disk / "data"
        first = cli("ingest", rec.parent, "--json", data=data_dir)
        assert first.exit_code == 3, first.output
        assert first.stderr.startswith(f"Error: archive disk full: the filesystem at {disk} has no space left")
        assert first.stderr.count("\n") == 1
        report = json.loads(first.stdout)
        assert report["ingested"] >= 1 and report["pending"] and report["failed"] == []
        assert not [p for p in data_dir.rglob(".tmp-*")]  # the copy that met the full disk is gone
        assert archive_problems(data_dir) == []

        umount(disk)  # grown offline: this container may not resize a mounted filesystem
        subprocess.run(["truncate", "-s", "256M", str(image)], check=True)
        subprocess.run(["e2fsck", "-f", "-y", str(image)], check=True, capture_output=True)
        subprocess.run(["resize2fs", str(image)], check=True, capture_output=True)
        mount("-o", "loop", str(image), str(disk))
        second = cli("ingest", rec.parent, "--json", data=data_dir)
        assert second.exit_code == 0, second.output
        again = json.loads(second.stdout)
        assert again["ingested"] + again["already_archived"] == 3
        assert archive_problems(data_dir) == []
        assert cli("verify", data=data_dir).exit_code == 0
    finally:
        umount(disk)


@pytest.fixture
def flaky_archive(tmp_path: Path):
    """A data dir whose archive folder is a FlakyDisk (flaky_fs.py) over a folder of the ext4 disk: writes land
    intact, reads at one offset can come back with a bit flipped. Yields (data dir, the disk's control file)."""
    data, backing, control = tmp_path / "data", tmp_path / "disk", tmp_path / "mood"
    (data / "archive").mkdir(parents=True, mode=0o750)
    backing.mkdir(mode=0o750)
    control.write_text("off")
    disk = subprocess.Popen([sys.executable, str(Path(__file__).parent / "flaky_fs.py"), str(backing),
                             str(data / "archive"), str(control)], stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: os.path.ismount(data / "archive") or disk.poll() is not None, 10, "the flaky disk")
        assert disk.poll() is None, disk.stderr.read()
        yield data, control
    finally:
        umount(data / "archive")
        disk.wait(10)


def test_a_disk_that_flips_a_bit_on_the_way_back_never_gets_a_bad_copy_catalogued(cli, tmp_path: Path,
                                                                                   flaky_archive):
    """A big copy is read back chunk by chunk as it is written. A read that lies once sends the copy to be read
    back whole, and that read (true this time) proves it; a disk that keeps lying fails the file: nothing
    catalogued, no copy left, the recorder untouched; once the disk is healthy the next run archives it."""
    data, mood = flaky_archive
    card = tmp_path / "card" / "RECORD"
    card.mkdir(parents=True)
    rng = random.Random(11)
    first = card / "TA00716_JX0227_20221103100000.MP4"
    first.write_bytes(rng.randbytes(DEEP + 3 * CHUNK + 777))
    lie_at = 2 * CHUNK

    mood.write_text(f"once {lie_at}")
    done = cli("ingest", card.parent, "--json", data=data)
    assert done.exit_code == 0, done.output
    assert mood.read_text() == "off"  # the disk did lie, once
    assert json.loads(done.stdout)["ingested"] == 1
    assert next((data / "archive").rglob(first.name)).read_bytes() == first.read_bytes()

    second = card / "TA00716_JX0227_20221103110000.MP4"
    second.write_bytes(rng.randbytes(DEEP + CHUNK))
    before = tree_state(card.parent)
    mood.write_text(f"always {lie_at}")
    done = cli("ingest", card.parent, "--json", data=data)
    assert done.exit_code == 1, done.output
    report = json.loads(done.stdout)
    assert (report["ingested"], report["already_archived"]) == (0, 1)
    assert [f["path"] for f in report["failed"]] == ["RECORD/" + second.name]
    assert "the archived copy read back differs from the recorder's bytes" in report["failed"][0]["error"]
    assert not list((data / "archive").rglob(second.name)) and not list((data / "archive").rglob(".tmp-*"))
    rows = sqlite3.connect(data / "catalog.db").execute("select original_path from recordings").fetchall()
    assert rows == [("RECORD/" + first.name,)]
    assert tree_state(card.parent) == before

    mood.write_text("off")
    done = cli("ingest", card.parent, "--json", data=data)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["ingested"] == 1
    assert archive_problems(data) == []
