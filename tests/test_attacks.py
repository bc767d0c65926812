"""The station service as attackers try it: real throwaway users, a real daemon and socket, and the attacker's
own client speaking the protocol (tests/attacker.py, standard library only). Each test is one attack that
worked against the service that replayed command lines: a clerk archiving the station's private key through
a removed folder's descriptor, an auditor walking the data dir with `..` as an output name, one user holding
every request slot, a log filled by refusals and long texts, descriptors sent unasked until docking stopped,
a small spreadsheet declaring a huge sheet, a NUL byte that wrote crash files."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import threading
import time
import zipfile
from pathlib import Path

import pytest
from daemon_util import catalog_rows, wait_for
from station_util import CASE_A, Station, serve_station

from archiver.dock.simulate import RecorderSpec, make_recorder

ATTACKER = Path(__file__).with_name("attacker.py")
WINDOW = 3  # seconds: this station writes a person's refusals as one custody event per WINDOW


@pytest.fixture(scope="module")
def station(card: Path):
    yield from serve_station(card, f"refusals_every_s = {WINDOW}\n")


def attack(st: Station, who: str, mode: str, *args: object, timeout: float = 120) -> dict:
    """The attacker's client, run by `who` in their home."""
    assert st.daemon is not None
    script = st.home(who) / "attacker.py"
    if not script.exists():
        shutil.copy(ATTACKER, script)
        shutil.chown(script, st.users[who])
    done = subprocess.run(["runuser", "-u", st.users[who], "--", "/usr/bin/python3", str(script), mode,
                           str(st.base / "run" / "archiver.sock"), *map(str, args)],
                          capture_output=True, text=True, cwd=st.home(who), timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _last(result: dict) -> dict:
    return result["frames"][-1]


def _key_archived(st: Station) -> bool:
    import hashlib

    digest = hashlib.sha256((st.data / "keys" / "station.key").read_bytes()).hexdigest()
    return bool(catalog_rows(st.data, f"SELECT id FROM recordings WHERE sha256 = '{digest}'")) or \
        digest in (st.data / "custody.jsonl").read_text()


def _daemon_fds(st: Station) -> int:
    assert st.daemon is not None
    return len(os.listdir(f"/proc/{st.daemon.proc.pid}/fd"))


# -- the caller's files stay the caller's ------------------------------------------------------------
def test_a_removed_folders_descriptor_and_a_planted_symlink_never_reach_the_station_key(station: Station):
    before = len(station.events())
    gone = station.home("clerk") / "card"
    gone.mkdir()
    shutil.chown(gone, station.users["clerk"])
    result = attack(station, "clerk", "deleted-folder", gone, station.data / "keys")
    error = _last(result)
    assert error["kind"] == "E" and error["data"]["code"] == 2
    assert "was not handed in as a regular file open for reading" in error["data"]["message"]
    assert not _key_archived(station)
    assert [e["action"] for e in station.events()[before:]] == []  # nothing ingested, nothing refused


def test_an_o_path_descriptor_of_a_folder_the_user_cannot_list_is_refused(station: Station):
    closed = station.base / "closed"
    closed.mkdir(mode=0o711)  # others may pass through, not list
    (closed / "inside").write_bytes(b"root's")
    result = attack(station, "clerk", "o-path", closed)
    assert _last(result)["data"]["code"] == 2 and "regular file" in _last(result)["data"]["message"]
    result = attack(station, "clerk", "o-path", closed / "inside")  # O_PATH of a file: not open for reading
    assert _last(result)["data"]["code"] == 2 and "regular file" in _last(result)["data"]["message"]
    assert not _key_archived(station)


@pytest.mark.parametrize("name", ["..", ".", "../../keys/station.key", "/etc/passwd", "a//b", "", "x/../../y"])
def test_hostile_names_for_a_file_handed_in_are_refused(station: Station, name: str):
    mine = station.home("clerk") / "mine.txt"
    mine.write_text("mine")
    shutil.chown(mine, station.users["clerk"])
    result = attack(station, "clerk", "name", mine, name)
    assert _last(result)["kind"] == "E" and _last(result)["data"]["code"] == 2, result
    assert "refusing the file name" in _last(result)["data"]["message"]


def test_dot_dot_as_an_output_folder_writes_the_persons_files_as_them_and_hands_over_nothing_else(station):
    home = station.home("auditor")
    (home / "sub").mkdir()
    shutil.chown(home / "sub", station.users["auditor"])
    done = station.run("auditor", "report", "year", "2022", "--csv", "sub/..", "--html", "sub/../r.html",
                       check_output=True)
    assert "Enforcement recording in 2022" in done.stdout
    written = sorted(p.name for p in home.iterdir())
    assert "summary.csv" in written and "r.html" in written
    assert not {"station.key", "catalog.db", "custody.jsonl", "archive", "keys"} & set(written)
    assert all(p.stat().st_uid == int(_uid(station, "auditor")) for p in home.glob("*.csv"))
    # the operation takes no folder at all: a name smuggled in as an argument is refused outright
    smuggled = attack(station, "auditor", "call", "report year", json.dumps({"year": 2022, "csv_dir": ".."}))
    assert _last(smuggled)["kind"] == "E" and "not one this operation takes" in _last(smuggled)["data"]["message"]


def test_names_handed_back_are_checked_before_anything_is_written(tmp_path: Path):
    """The client's side: a name with `..` from a service (or anything posing as one) writes nothing."""
    from archiver.cli.files import receive_into, receive_tree
    from archiver.errors import ArchiverError
    from archiver.service.client import Received

    source = tmp_path / "source"
    source.write_bytes(b"x")
    for name in ("../escaped", "/abs", "a/../../b", "."):
        fd = os.open(source, os.O_RDONLY)
        try:
            with pytest.raises(ArchiverError, match="refusing the file name"):
                list(receive_into(tmp_path / "into", [Received(name, fd, None, 1)]))
            with pytest.raises(ArchiverError, match="refusing the file name"):
                receive_tree(tmp_path / "tree", [Received(name, fd, None, 1)])
        finally:
            os.close(fd)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source"]
    from archiver.fs import relative_name

    assert relative_name("a/b.csv") == "a/b.csv" and relative_name("b.csv", inside=False) == "b.csv"
    with pytest.raises(ArchiverError, match="refusing the file name"):  # a report's tables: plain names alone
        relative_name("a/b.csv", inside=False)


def _uid(st: Station, who: str) -> str:
    return subprocess.run(["id", "-u", st.users[who]], capture_output=True, text=True, check=True).stdout.strip()


# -- bounded, whatever a client does -----------------------------------------------------------------
def test_sixty_four_slow_connections_of_one_user_leave_an_officers_lookup_answering(station: Station):
    result: dict = {}
    slow = threading.Thread(target=lambda: result.update(attack(station, "stranger", "slow", 64, 14)))
    slow.start()
    try:
        time.sleep(3)  # the slow connections are open and trickling
        started = time.monotonic()
        lookup = station.run("officer", "recordings", "list", "--json", check_output=True)
        took = time.monotonic() - started
        assert json.loads(lookup.stdout) and took < 10
    finally:
        slow.join(60)
    # 24 at once per person: the rest turned away at once; those 24 dropped when their 10 s were up
    assert result["closed"] == 64 and result["latest"] < 13.5, result
    assert "request dropped" in station.daemon.log() and "too slow" in station.daemon.log()


def test_a_thousand_refusals_and_a_long_text_barely_grow_the_custody_log(station: Station):
    time.sleep(WINDOW)  # a new window for the stranger
    before = (station.data / "custody.jsonl").stat().st_size
    events = len(station.events())
    started = time.monotonic()
    knocked = attack(station, "stranger", "refused", 1000, "status")
    elapsed = time.monotonic() - started
    refused = knocked["codes"].pop("E4")  # refused; or turned away (E3) while 24 of theirs were still open
    assert refused > 500 and set(knocked["codes"]) <= {"E3"}
    new = station.events()[events:]
    assert 1 <= len(new) <= elapsed / WINDOW + 2 and all(e["action"] == "denied" for e in new)
    time.sleep(WINDOW)
    attack(station, "stranger", "refused", 1, "status")  # the next window's first carries the count
    counted = [e for e in station.events()[events:] if e["action"] == "denied"]
    assert sum(e["details"]["count"] for e in counted) == refused + 1
    long_text = "后叶" * 15000  # 30,000 characters
    searched = station.run("legal", "cases", "search", long_text)
    assert searched.returncode == 2
    assert searched.stderr == "Error: a search text of 30000 characters: give at most 1000\n"
    got = station.run("legal", "recordings", "get", "1", "long-reason", "--reason", long_text)
    assert got.returncode == 0, got.stderr
    (retrieval,) = [e for e in station.events()[events:] if e["action"] == "retrieve"]
    assert retrieval["details"]["reason"] == long_text[:500] + "…[29500 more]"
    grown = (station.data / "custody.jsonl").stat().st_size - before
    assert grown < 20_000, grown


def test_descriptors_sent_unasked_are_closed_and_a_card_still_docks(station: Station):
    before = _daemon_fds(station)
    done = attack(station, "legal", "extra-fds", 150, timeout=300)
    assert done["handed_back"] == 150
    wait_for(lambda: _daemon_fds(station) <= before + 4, 10, f"the daemon's descriptors back to {before} + 4")
    shift = station.base / "fd-shift"
    make_recorder(shift, RecorderSpec(serial="TA00888", officer="JX0888", segments=2,
                                      start=RecorderSpec.start.replace(year=2024)))
    shift.rename(station.inbox / "fd-shift")
    count = "SELECT count(*) FROM sightings WHERE original_path LIKE '%TA00888%'"
    wait_for(lambda: catalog_rows(station.data, count)[0][0] >= 2, 120, "the card docked after the attack")
    assert "Too many open files" not in station.daemon.log()


def _huge_sheet(path: Path) -> None:
    """A workbook of a few KB that declares A1:XFD1048576 and writes its last row a million rows down."""
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["case_no", "title", "stage", "officers", "start", "end", "recording_required"])
    plain = path.with_suffix(".plain.xlsx")
    book.save(plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = data.decode()
                text = text.replace('<dimension ref="A1:G1" />', '<dimension ref="A1:XFD1048576" />')
                text = text.replace("</sheetData>", '<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t>'
                                                    "</is></c></row></sheetData>")
                data = text.encode()
            out.writestr(item, data)
    plain.unlink()


def test_a_small_sheet_that_declares_a_huge_one_is_refused_in_seconds(station: Station):
    sheet = station.home("legal") / "huge.xlsx"
    _huge_sheet(sheet)
    shutil.chown(sheet, station.users["legal"])
    assert sheet.stat().st_size < 10_000
    started = time.monotonic()
    done = station.run("legal", "cases", "import", "huge.xlsx", timeout=90)
    assert time.monotonic() - started < 60
    assert done.returncode == 2 and "more than 100000 rows" in done.stderr and done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert not [line for line in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
                .splitlines() if "archiver.cases.sheet" in line]


def test_a_nul_byte_is_bad_input_with_no_crash_file_and_no_traceback(station: Station):
    crashes = set(glob.glob("/tmp/archiver-crash-*"))
    for op, args in (("cases search", {"text": "a\u0000b"}), ("recordings show", {"ref": "1\u0000"}),
                     ("cases check", {"case_nos": [CASE_A, "\u0000"]})):
        result = attack(station, "auditor", "call", op, json.dumps(args))
        error = _last(result)
        assert error["kind"] == "E" and error["data"]["code"] == 2, result
        assert "Traceback" not in error["data"]["message"] and "\n" not in error["data"]["message"]
    verbose = station.run("auditor", "-v", "recordings", "show", "no-such")
    assert verbose.returncode == 2 and "Traceback" not in verbose.stderr
    assert set(glob.glob("/tmp/archiver-crash-*")) == crashes
    assert "Traceback" not in station.daemon.log()
