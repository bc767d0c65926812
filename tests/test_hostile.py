"""Hostile recorders: odd names, symlinks, loops, nested mounts, broken media, files that change."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import archive_problems, mount, tree_state, umount

MP4 = "RECORD/TA00716_JX0227_20221103093621.MP4"


def test_hostile_names_are_archived_and_checkable(cli, card: Path, tmp_path: Path, data_dir: Path):
    rec = tmp_path / "rec"
    rec.mkdir()
    names = ["with space.MP4", "执法记录 后叶罚〔2022〕12号.MP4", "-rf --leading-dash.MP4", "new\nline.MP4",
             "back\\slash.WAV", ".hidden.JPG"]
    sources = [MP4, "RECORD/TA00716_JX0227_20221103093625.MP4", "RECORD/TA00716_JX0227_20221103093629.MP4",
               "RECORD/TA00716_JX0227_20221103093621.MP4", "AUDIO/TA00716_JX0227_20221103093628.WAV",
               "PHOTO/TA00716_JX0227_20221103093626.JPG"]
    for i, (name, src) in enumerate(zip(names, sources, strict=True)):
        data = (card / src).read_bytes()
        # make each file distinct evidence (a trailing byte is ignored by the demuxers)
        (rec / name).write_bytes(data + bytes([i]))
    before = tree_state(rec)
    result = cli("ingest", rec, "--device", "TB00002", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ingested"] == len(names)
    rows = json.loads(cli("recordings", "list", "--json").stdout)
    assert sorted(r["original_path"] for r in rows) == sorted(names)
    by_name = {r["original_path"]: r for r in rows}
    assert by_name["new\nline.MP4"]["archive_path"].endswith("/new_line.MP4")
    assert by_name[".hidden.JPG"]["archive_path"].endswith("/_.hidden.JPG")
    assert by_name["执法记录 后叶罚〔2022〕12号.MP4"]["archive_path"].endswith("/执法记录 后叶罚〔2022〕12号.MP4")
    for name in names:
        assert (data_dir / by_name[name]["archive_path"]).read_bytes() == (rec / name).read_bytes()
    assert tree_state(rec) == before
    assert archive_problems(data_dir) == []  # includes `sha256sum -c` on the manifests


def test_symlinks_are_not_followed_and_nothing_escapes(cli, recorder: Path, tmp_path: Path, data_dir: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.MP4").write_bytes(b"not on the recorder")
    os.symlink(outside / "secret.MP4", recorder / "RECORD" / "link.MP4")
    os.symlink(outside, recorder / "RECORD" / "linkdir")
    os.symlink("/etc/passwd", recorder / "passwd.MP4")
    os.symlink(recorder, recorder / "RECORD" / "loop")  # a symlink directory loop
    before = tree_state(recorder)
    report = json.loads(cli("ingest", recorder, "--json").stdout)
    assert report["ingested"] == 6
    skipped = {n["path"]: n["reason"] for n in report["not_recordings"]}
    for rel in ("RECORD/link.MP4", "RECORD/linkdir", "passwd.MP4", "RECORD/loop"):
        assert "symlink" in skipped[rel]
    rows = json.loads(cli("recordings", "list", "--json").stdout)
    assert all("link" not in r["original_path"] and "passwd" not in r["original_path"] for r in rows)
    assert b"not on the recorder" not in b"".join(p.read_bytes() for p in (data_dir / "archive").rglob("*.MP4"))
    assert tree_state(recorder) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")
def test_bind_mount_loop_and_nested_filesystem_are_not_entered(cli, recorder: Path, tmpfs, data_dir: Path):
    loop = recorder / "RECORD" / "again"
    loop.mkdir()
    mount("--bind", str(recorder), str(loop))  # the recorder contains itself
    try:
        nested = tmpfs("recorder/RECORD/usbstick", "4m")
        (nested / "foreign.MP4").write_bytes(b"another filesystem")
        report = json.loads(cli("ingest", recorder, "--json").stdout)
    finally:
        umount(loop)
    assert report["ingested"] == 6, report
    skipped = {n["path"]: n["reason"] for n in report["not_recordings"]}
    assert "loop" in skipped["RECORD/again"]
    assert "another filesystem" in skipped["RECORD/usbstick"]
    assert archive_problems(data_dir) == []


def test_truncated_and_empty_media_are_archived_byte_exact_and_flagged(cli, card: Path, tmp_path: Path,
                                                                       data_dir: Path):
    rec = tmp_path / "rec"
    (rec / "RECORD").mkdir(parents=True)
    full = (card / MP4).read_bytes()
    (rec / "RECORD/TA00716_JX0227_20221103100000.MP4").write_bytes(full[: len(full) // 3])
    (rec / "RECORD/TA00716_JX0227_20221103100500.MP4").write_bytes(b"")
    (rec / "RECORD/TA00716_JX0227_20221103101000.TXT").write_bytes(b"a note, not media")
    result = cli("ingest", rec, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["ingested"], report["flagged"]) == (3, 2)
    rows = {r["original_path"]: r for r in json.loads(cli("recordings", "list", "--json").stdout)}
    truncated = rows["RECORD/TA00716_JX0227_20221103100000.MP4"]
    assert truncated["flags"] == ["unreadable_media"] and truncated["media_type"] == "video"
    assert truncated["size"] == len(full) // 3
    empty = rows["RECORD/TA00716_JX0227_20221103100500.MP4"]
    assert empty["flags"] == ["unreadable_media"] and empty["size"] == 0
    assert empty["sha256"] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    note = rows["RECORD/TA00716_JX0227_20221103101000.TXT"]
    assert note["media_type"] == "other" and note["flags"] == []
    assert archive_problems(data_dir) == []


def test_a_file_growing_while_read_is_not_recorded_and_is_reported(cli, card: Path, tmp_path: Path,
                                                                   data_dir: Path):
    rec = tmp_path / "rec"
    (rec / "RECORD").mkdir(parents=True)
    shutil.copy2(card / MP4, rec / MP4)
    growing = rec / "RECORD/TA00716_JX0227_20221103110000.MP4"
    growing.write_bytes(os.urandom(64 << 20))
    # A separate process keeps appending, as a recorder still writing its segment would.
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "f = open(sys.argv[1], 'ab', buffering=0)\n"
        "end = time.time() + 60\n"
        "while time.time() < end: f.write(b'x' * 4096)\n"), str(growing)])
    try:
        time.sleep(0.3)
        result = cli("ingest", rec, "--json")
    finally:
        writer.kill()
        writer.wait()
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["ingested"] == 1
    assert [f["path"] for f in report["failed"]] == ["RECORD/TA00716_JX0227_20221103110000.MP4"]
    assert "changed" in report["failed"][0]["error"]
    rows = json.loads(cli("recordings", "list", "--json").stdout)
    assert [r["original_path"] for r in rows] == [MP4]
    assert archive_problems(data_dir) == []

    # Once the recorder is done writing, the next run finishes the job.
    again = json.loads(cli("ingest", rec, "--json").stdout)
    assert (again["ingested"], again["already_archived"], again["failed"]) == (1, 1, [])


def test_a_fifo_on_the_recorder_does_not_hang_the_ingest(cli, recorder: Path, data_dir: Path):
    os.mkfifo(recorder / "RECORD" / "pipe.MP4")
    report = json.loads(cli("ingest", recorder, "--json").stdout)
    assert report["ingested"] == 6
    assert {"path": "RECORD/pipe.MP4", "reason": "not a regular file"} in report["not_recordings"]




def test_content_decides_the_type_and_a_wrong_extension_is_flagged(cli, card: Path, tmp_path: Path):
    rec = tmp_path / "rec"
    rec.mkdir()
    shutil.copy2(card / "PHOTO/TA00716_JX0227_20221103093626.JPG", rec / "TA00716_JX0227_20221103093626.MP4")
    shutil.copy2(card / "AUDIO/TA00716_JX0227_20221103093628.WAV", rec / "TA00716_JX0227_20221103093628.DAT2")
    assert cli("ingest", rec).exit_code == 0
    rows = {r["original_path"]: r for r in json.loads(cli("recordings", "list", "--json").stdout)}
    photo = rows["TA00716_JX0227_20221103093626.MP4"]
    assert (photo["media_type"], photo["flags"]) == ("photo", ["extension_mismatch"])
    audio = rows["TA00716_JX0227_20221103093628.DAT2"]  # an unknown extension: content decides, no flag
    assert (audio["media_type"], audio["flags"]) == ("audio", [])
