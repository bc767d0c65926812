"""The ingest pipeline on a simulated recorder: archive, catalog, manifests, idempotence."""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from conftest import archive_problems, files_state, padded_recording, tree_state
from daemon_util import wait_for

from archiver.archive.copying import CHUNK, DEEP
from archiver.archive.store import Archive, SourceStat
from archiver.archive.workspace import open_workspace
from archiver.config import load_config
from archiver.ingest.pipeline import ingest

DAY = Path("archive/2022/11/03")


def test_ingest_archives_every_recording_verified_and_catalogued(cli, recorder: Path, data_dir: Path):
    before = tree_state(recorder)
    result = cli("ingest", recorder, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ingested"] == 6
    assert report["already_archived"] == 0
    assert report["failed"] == []
    assert report["files_seen"] == 8
    assert report["device_serial"] == "TA00716"
    assert {n["path"] for n in report["not_recordings"]} == {"LOG/DEVICE.LOG", "SYSTEM/CONFIG.INI"}
    assert report["bytes_copied"] == sum(
        p.stat().st_size for p in recorder.rglob("*") if p.suffix in (".MP4", ".WAV", ".JPG"))

    # The recorder is untouched: same entries, bytes, sizes, mtimes and modes.
    assert tree_state(recorder) == before
    # Archived bytes equal the recorder's, files are read-only, manifests check with sha256sum.
    for src in recorder.rglob("*.MP4"):
        copy = data_dir / DAY / "TA00716" / src.name
        assert copy.read_bytes() == src.read_bytes()
        assert copy.stat().st_mode & 0o777 == 0o440  # read-only, nothing for strangers
    assert archive_problems(data_dir) == []
    check = subprocess.run(["sha256sum", "-c", "manifest-sha256.txt"], cwd=data_dir / DAY,
                           capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == 6

    rows = {r["original_path"]: r for r in json.loads(cli("recordings", "list", "--json").stdout)}
    video = rows["RECORD/TA00716_JX0227_20221103093621.MP4"]
    assert video["media_type"] == "video"
    assert video["start"] == "2022-11-03T09:36:21+08:00"
    assert video["end"] == "2022-11-03T09:36:25+08:00"
    assert abs(video["duration_s"] - 4.0) < 0.1
    assert video["officer_no"] == "JX0227" and video["flags"] == []
    assert video["archive_path"] == "archive/2022/11/03/TA00716/TA00716_JX0227_20221103093621.MP4"
    assert rows["AUDIO/TA00716_JX0227_20221103093628.WAV"]["media_type"] == "audio"
    photo = rows["PHOTO/TA00716_JX0227_20221103093626.JPG"]
    assert photo["media_type"] == "photo" and photo["start"] == photo["end"] and photo["duration_s"] is None


def test_second_ingest_copies_nothing_and_same_content_elsewhere_is_the_same_evidence(
        cli, recorder: Path, data_dir: Path, tmp_path: Path):
    assert cli("ingest", recorder).exit_code == 0
    archived = files_state(data_dir / "archive")

    again = json.loads(cli("ingest", recorder, "--json").stdout)
    assert (again["ingested"], again["already_archived"], again["bytes_copied"]) == (0, 6, 0)
    assert files_state(data_dir / "archive") == archived

    # The same bytes under another name, on another "device" folder: recognised, not archived twice.
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy2(recorder / "RECORD/TA00716_JX0227_20221103093621.MP4", other / "renamed by hand.mp4")
    third = json.loads(cli("ingest", other, "--json").stdout)
    assert (third["ingested"], third["already_archived"]) == (0, 1)
    assert files_state(data_dir / "archive") == archived
    db = sqlite3.connect(data_dir / "catalog.db")
    (rec_id,) = db.execute("select recording_id from sightings where original_path='renamed by hand.mp4'").fetchone()
    shown = json.loads(cli("recordings", "show", str(rec_id), "--json").stdout)
    assert {s["original_path"] for s in shown["sightings"]} == {
        "RECORD/TA00716_JX0227_20221103093621.MP4", "renamed by hand.mp4"}
    assert db.execute("select count(*) from recordings").fetchone() == (6,)
    assert db.execute("select status, ingested, already_archived from ingest_runs order by id").fetchall() == [
        ("ok", 6, 0), ("ok", 0, 6), ("ok", 0, 1)]


def test_names_that_do_not_parse_are_archived_flagged_and_filled_from_options(cli, card: Path, tmp_path: Path,
                                                                              data_dir: Path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy2(card / "RECORD/TA00716_JX0227_20221103093625.MP4", inbox / "VID_0001.MP4")
    shutil.copy2(card / "AUDIO/TA00716_JX0227_20221103093628.WAV", inbox / "99999_99999_20221103100000.WAV")
    result = cli("ingest", inbox, "--device", "TB00001", "--officer", "JX9999", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["ingested"], report["flagged"]) == (2, 1)
    rows = {r["original_path"]: r for r in json.loads(cli("recordings", "list", "--json").stdout)}
    unparsed = rows["VID_0001.MP4"]
    assert unparsed["flags"] == ["name_unparsed"]
    assert (unparsed["device_serial"], unparsed["officer_no"]) == ("TB00001", "JX9999")
    # no time in the name: the start comes from the media's own creation time
    assert unparsed["start"] == "2022-11-03T09:36:25+08:00"
    placeholder = rows["99999_99999_20221103100000.WAV"]
    assert placeholder["flags"] == []
    assert (placeholder["device_serial"], placeholder["officer_no"]) == ("TB00001", "JX9999")
    assert placeholder["start"] == "2022-11-03T10:00:00+08:00"
    assert placeholder["archive_path"] == "archive/2022/11/03/TB00001/99999_99999_20221103100000.WAV"


def test_same_name_different_content_keeps_both(cli, card: Path, tmp_path: Path, data_dir: Path):
    name = "TA00716_JX0227_20221103093621.MP4"
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, src in ((first, "RECORD/TA00716_JX0227_20221103093621.MP4"),
                        (second, "RECORD/TA00716_JX0227_20221103093625.MP4")):
        folder.mkdir()
        shutil.copy2(card / src, folder / name)
    assert cli("ingest", first).exit_code == 0
    assert cli("ingest", second).exit_code == 0
    files = sorted(p.name for p in (data_dir / DAY / "TA00716").iterdir())
    assert len(files) == 2 and name in files
    assert archive_problems(data_dir) == []


def test_unknown_device_reingest_recognises_content(cli, card: Path, tmp_path: Path, data_dir: Path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy2(card / "PHOTO/TA00716_JX0227_20221103093626.JPG", inbox / "IMG0001.JPG")
    assert json.loads(cli("ingest", inbox, "--json").stdout)["ingested"] == 1
    again = json.loads(cli("ingest", inbox, "--json").stdout)
    assert (again["ingested"], again["already_archived"]) == (0, 1)
    assert archive_problems(data_dir) == []
    assert list((data_dir / "archive").rglob("unknown/IMG0001.JPG"))


def test_sm3_is_kept_beside_sha256_when_configured(cli, recorder: Path, data_dir: Path, tmp_path: Path):
    config = tmp_path / "sm3.toml"
    config.write_text('hashes = ["sha256", "sm3"]\n')
    assert cli("ingest", recorder, config=config).exit_code == 0
    rec = json.loads(cli("recordings", "show", "1", "--json").stdout)
    from cryptography.hazmat.primitives import hashes

    h = hashes.Hash(hashes.SM3())
    h.update((data_dir / rec["archive_path"]).read_bytes())
    assert rec["sm3"] == h.finalize().hex()
    assert (data_dir / DAY / "manifest-sm3.txt").read_text().count("\n") == 6


def test_library_call_matches_cli(recorder: Path, data_dir: Path):
    """The daemon calls the library directly: the same pipeline, the same result."""
    cfg = load_config(None, data_dir, system_file=Path("/nonexistent"))
    ws = open_workspace(cfg, upgrade=True)
    try:
        report = ingest(ws, recorder)  # default options, as the CLI's
    finally:
        ws.close()
    assert (report.ingested, report.exit_code) == (6, 0)
    assert not [p for p in os.listdir(data_dir) if p.startswith(".tmp-")]


def test_files_archived_but_not_catalogued_are_adopted_not_duplicated(cli, recorder: Path, data_dir: Path):
    """A run that died after placing files but before cataloguing them: the next run finishes the job."""
    assert cli("ingest", recorder).exit_code == 0
    def contents():
        return {rel: state[:3] for rel, state in files_state(data_dir / "archive").items()}

    archived = contents()
    for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
        (data_dir / name).unlink(missing_ok=True)
    result = json.loads(cli("ingest", recorder, "--json").stdout)
    assert (result["ingested"], result["failed"]) == (6, [])
    assert result["bytes_copied"] > 0  # read again to prove the bytes, not trusted by name
    assert contents() == archived  # no second copy, no alternate names
    assert archive_problems(data_dir) == []


def test_big_recordings_take_the_direct_path_or_fall_back_on_a_filesystem_without_it(cli, tmp_path: Path, tmpfs):
    """Files of 32 MiB and more are written O_DIRECT and each chunk read back as it is written: on ext4 and tmpfs
    (direct, with a tail that is no block multiple written through the page cache) and on ramfs (which refuses
    O_DIRECT: page-cache writes, read back whole once copied); every copy byte-exact and verified."""
    rng = random.Random(7)
    card = tmp_path / "card" / "RECORD"
    card.mkdir(parents=True)
    sizes = [DEEP * 2 + 12345, DEEP, DEEP - 1, 3 * CHUNK + 1]
    for i, size in enumerate(sizes):
        (card / f"TA00716_JX0227_202211031{i}0000.MP4").write_bytes(rng.randbytes(size))
    for data in (tmp_path / "data", tmpfs("ram", "512m") / "data", tmpfs("ramfs", "", "ramfs") / "data"):
        done = cli("ingest", card.parent, "--json", data=data)
        assert done.exit_code == 0, done.output
        assert json.loads(done.stdout)["ingested"] == len(sizes)
        for path in card.iterdir():
            archived = next((data / "archive").rglob(path.name))
            assert archived.read_bytes() == path.read_bytes()
        assert cli("verify", data=data).exit_code == 0


def test_a_big_copy_is_proved_chunk_by_chunk_where_the_disk_allows_and_left_to_a_read_back_where_not(tmp_path: Path,
                                                                                                  tmpfs):
    """copy_in(read_back=True) compares each chunk read back past the page cache with the bytes it hashed: on
    ext4 it hands back the digests as read back (no second pass needed); on ramfs, which takes no O_DIRECT, it
    hands back none, so the caller reads the copy back whole."""
    source = tmp_path / "big.MP4"
    source.write_bytes(random.Random(3).randbytes(DEEP + 3 * CHUNK + 777))  # an unaligned tail
    st = source.stat()
    for data, proved in ((tmp_path / "data", True), (tmpfs("ram", "", "ramfs") / "data", False)):
        folder = data / "archive" / "day"
        folder.mkdir(parents=True)
        copied = Archive(data).copy_in(source, folder, "big.MP4", ("sha256", "sm3"),
                                       SourceStat(st.st_size, st.st_mtime_ns), read_back=True)
        try:
            assert copied.size == st.st_size
            assert copied.read_back == (copied.digests if proved else None)
            assert (folder / copied.file.temp).read_bytes() == source.read_bytes()
        finally:
            copied.close()
        assert list(folder.iterdir()) == []  # the temp copy goes with it


def test_an_ingest_walks_the_archive_for_temp_files_only_when_a_killed_writer_left_its_mark(cli, recorder: Path,
                                                                                            data_dir: Path):
    """Every archive writer marks the data dir while it works. The next ingest walks the archive (seconds, on
    years of footage) only when a mark's process is gone; the daemon walks it once when it starts."""
    assert cli("ingest", recorder).exit_code == 0
    archive = data_dir / "archive"
    assert not list(data_dir.glob(".tmp-*"))  # the run took its mark away
    gone = subprocess.Popen(["true"])
    gone.wait()
    day = next(p.parent for p in archive.rglob("*.MP4"))
    leftover = day / f".tmp-{gone.pid}-0badc0de-TA00716_JX0227_20221103093000.MP4"
    leftover.write_bytes(b"half a copy")
    assert cli("ingest", recorder).exit_code == 0
    assert leftover.exists()  # no mark: no walk
    found = json.loads(cli("verify", "--json").stdout)
    assert [p["detail"] for p in found["problems"]] == ["a temp file left by an interrupted write"]

    mark = data_dir / f".tmp-{gone.pid}-0badc0de-writing"
    mark.write_bytes(b"")
    assert cli("ingest", recorder).exit_code == 0
    assert not leftover.exists() and not mark.exists()
    assert archive_problems(data_dir) == []

    leftover.write_bytes(b"half a copy")  # and the daemon walks at its start, mark or not
    mark.write_bytes(b"")
    assert cli("daemon", "--once").exit_code == 0
    assert not leftover.exists() and not mark.exists()


def test_an_empty_card_is_answered_from_its_scan_without_loading_the_station(cli, recorder: Path, tmp_path: Path,
                                                                             data_dir: Path):
    """Nothing on the card, nothing to record: the catalog, the custody log and SQLAlchemy are not even loaded
    (that is most of a cold start). A card with anything on it, even a file that is not a recording, is a run."""
    import sys

    assert cli("ingest", recorder).exit_code == 0
    def runs_recorded() -> int:
        return sqlite3.connect(data_dir / "catalog.db").execute("select count(*) from ingest_runs").fetchone()[0]

    runs = runs_recorded()
    custody = (data_dir / "custody.jsonl").read_bytes()
    empty = tmp_path / "empty-card"
    (empty / "DCIM").mkdir(parents=True)  # folders, but no file
    env = {**os.environ, "ARCHIVER_DATA_DIR": str(data_dir), "ARCHIVER_CONFIG": str(tmp_path / "empty.toml")}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "archiver", "ingest", str(empty), "--json"],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]
    report = json.loads(done.stdout)
    assert (report["files_seen"], report["ingested"], report["failed"]) == (0, 0, [])
    loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "archiver.ingest.scan" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("sqlalchemy", "cryptography")
                or m.startswith(("archiver.catalog", "archiver.ledger", "archiver.ingest.pipeline"))}
    assert runs_recorded() == runs
    assert (data_dir / "custody.jsonl").read_bytes() == custody

    (empty / "DCIM" / "notes.txt").write_text("not a recording")
    again = cli("ingest", empty, "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["files_seen"] == 1
    assert runs_recorded() == runs + 1


def test_the_read_ahead_reads_only_regular_files_in_order_within_its_budget_and_writes_nothing(tmp_path: Path):
    """What reads the card while the command loads: never through a symlink, never a FIFO (it would hang), never
    past its budget, stopped when asked, and the card left exactly as it was."""
    from archiver.ingest.readahead import ReadAhead

    card = tmp_path / "card"
    card.mkdir()
    outside = tmp_path / "outside.bin"
    outside.write_bytes(os.urandom(3 << 20))
    sizes = {"A.MP4": 2 << 20, "B.MP4": (1 << 20) + 17, "C.MP4": 5 << 20}
    for name, size in sizes.items():
        (card / name).write_bytes(os.urandom(size))
    (card / "LINK.MP4").symlink_to(outside)
    os.mkfifo(card / "PIPE.MP4")
    before = tree_state(card)
    order = [card / n for n in ("PIPE.MP4", "A.MP4", "LINK.MP4", "B.MP4", "C.MP4")]

    whole = ReadAhead(order, budget=64 << 20).start()
    whole._thread.join(10)
    assert not whole._thread.is_alive() and whole.read == sum(sizes.values())  # the FIFO and the link skipped

    some = ReadAhead(order, budget=3 << 20).start()  # the budget ends it part-way through B
    some._thread.join(10)
    assert not some._thread.is_alive() and (3 << 20) <= some.read < (3 << 20) + (1 << 20)

    stopped = ReadAhead(order, budget=64 << 20)
    stopped._stopping.set()
    stopped.start().stop()
    assert stopped.read == 0
    assert tree_state(card) == before


def test_a_big_recording_is_probed_on_its_copy_while_the_copy_is_placed(cli, card: Path, tmp_path: Path,
                                                                        data_dir: Path):
    """So a card's last file does not wait for its probe after its copy: a recording the copy proved as it went is
    probed on the copy (never on the recorder: access times) through a descriptor of its own, which it closes;
    small ones, photos and copies not proved yet are probed when read back."""
    from concurrent.futures import ThreadPoolExecutor

    from archiver.ingest import media
    from archiver.ingest.proof import probe_copy_early

    small = card / "RECORD" / "TA00716_JX0227_20221103093621.MP4"
    big = padded_recording(small, tmp_path / "big" / "RECORD" / "TA00716_JX0227_20221103100000.MP4")
    folder = tmp_path / "archive" / "day"
    folder.mkdir(parents=True)

    def copy(path: Path, name: str):
        st = path.stat()
        return Archive(tmp_path).copy_in(path, folder, name, ("sha256",), SourceStat(st.st_size, st.st_mtime_ns),
                                         sync=False, read_back=st.st_size >= DEEP)  # as the pipeline copies

    descriptors = len(os.listdir("/proc/self/fd"))
    copies = [copy(big, big.name), copy(small, small.name), copy(big, "TA00716_JX0227_20221103100000.JPG")]
    try:
        with ThreadPoolExecutor(1) as pool:
            early = [probe_copy_early(c, name, pool) for c, name in zip(
                copies, (big.name, small.name, "TA00716_JX0227_20221103100000.JPG"), strict=True)]
            assert early[0] is not None and early[1:] == [None, None]
            assert early[0].result().duration_s == media.probe(small).duration_s
    finally:
        for c in copies:
            c.close()
    assert len(os.listdir("/proc/self/fd")) == descriptors and list(folder.iterdir()) == []

    done = cli("ingest", big.parent.parent, "--json")
    assert done.exit_code == 0 and json.loads(done.stdout)["ingested"] == 1
    (duration, kind), = sqlite3.connect(data_dir / "catalog.db").execute(
        "select duration_s, media_type from recordings").fetchall()
    assert (duration, kind) == (media.probe(small).duration_s, "video")


def _temp_files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "archive").rglob(".tmp-*")]


def test_the_copy_starts_before_the_catalog_is_open_and_a_card_docked_again_waits_for_it(recorder: Path,
                                                                                        data_dir: Path):
    """A one-shot ingest copies while the catalog, the custody log and SQLAlchemy load: every recording is in its
    temp file before the catalog is opened, and none is placed or catalogued until it is. A card docked again is
    not read again: its files' names are taken, so the copy waits for the catalog to say they are archived."""
    from archiver.archive.datadir import open_archive
    from archiver.ingest.pipeline import start

    cfg = load_config(None, data_dir, system_file=Path("/nonexistent"))
    open_workspace(cfg, upgrade=True).close()  # a station made beforehand
    before = tree_state(recorder)

    def books_once_copied():
        wait_for(lambda: len(_temp_files(data_dir)) == 6, 30, "every recording copied before the catalog opened")
        assert not [p for p in (data_dir / "archive").rglob("*.MP4") if not p.name.startswith(".tmp-")]
        assert sqlite3.connect(data_dir / "catalog.db").execute("select count(*) from ingest_runs").fetchone()[0] == 0
        return open_workspace(cfg, upgrade=True)

    report = start(cfg, open_archive(cfg), recorder).finish(books_once_copied)
    assert (report.ingested, report.failed, report.pending) == (6, [], [])
    assert _temp_files(data_dir) == [] and archive_problems(data_dir) == []

    def books_after_a_while():
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            assert _temp_files(data_dir) == [], "a file archived before was copied again"
            time.sleep(0.01)
        return open_workspace(cfg, upgrade=True)

    again = start(cfg, open_archive(cfg), recorder).finish(books_after_a_while)
    assert (again.ingested, again.already_archived, again.bytes_copied) == (0, 6, 0)
    assert tree_state(recorder) == before


def test_when_the_catalog_cannot_be_opened_the_copy_under_way_stops_and_nothing_is_left(recorder: Path,
                                                                                       data_dir: Path):
    """The catalog fails to open while a big file is copying (a data dir someone else can change, a catalog disk
    gone): the copy stops within a chunk or two, not at the end of the file; the error is raised; the archive
    holds no temp file, nothing was catalogued, the card is unchanged; and the next run archives it all."""
    import threading

    from archiver.archive.datadir import open_archive
    from archiver.errors import DataDirError
    from archiver.ingest.options import IngestOptions, NoProgress
    from archiver.ingest.pipeline import start

    big = recorder / "RECORD" / "TA00716_JX0227_20221103100000.MP4"
    with big.open("wb") as fh:
        fh.truncate(512 << 20)  # read as fast as memory allows: only an interrupted copy ends early
    before = tree_state(recorder)
    cfg = load_config(None, data_dir, system_file=Path("/nonexistent"))
    open_workspace(cfg, upgrade=True).close()

    class Copying(NoProgress):
        def __init__(self) -> None:
            self.bytes, self.moving = 0, threading.Event()

        def advance(self, nbytes: int) -> None:
            self.bytes += nbytes
            if self.bytes >= 8 << 20:
                self.moving.set()

    copying = Copying()

    def failing_books():
        copying.moving.wait(30)
        raise DataDirError("the data dir can be changed by another user")

    run = start(cfg, open_archive(cfg), recorder, IngestOptions(progress=copying))
    with pytest.raises(DataDirError, match="another user"):
        run.finish(failing_books)
    assert copying.bytes < big.stat().st_size // 2, "the copy went on to the end of the file"
    assert not [p for p in (data_dir / "archive").rglob("*") if p.is_file()]
    assert sqlite3.connect(data_dir / "catalog.db").execute("select count(*) from recordings").fetchone()[0] == 0
    assert tree_state(recorder) == before

    ws = open_workspace(cfg, upgrade=True)
    try:
        report = ingest(ws, recorder)
    finally:
        ws.close()
    assert (report.ingested, report.pending) == (7, [])
    assert archive_problems(data_dir) == []


def test_what_the_copy_needs_loads_without_the_catalog():
    """What a one-shot ingest loads before its copy starts: no SQLAlchemy, no cryptography, no catalog models."""
    import sys

    code = ("import sys, archiver.operations.station, archiver.ingest.pipeline, archiver.archive.datadir, "
            "archiver.ingest.readahead, archiver.ingest.clearing; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'cryptography') "
            "or m.startswith(('archiver.catalog', 'archiver.ledger', 'archiver.ingest.record'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_run_hands_the_gil_back_within_a_tenth_of_a_millisecond(recorder: Path, data_dir: Path):
    """A run's threads pass each chunk of a copy between them several times; at the interpreter's default switch
    interval (5 ms) each pass waited that long whenever another thread ran Python (the catalog loading as the
    copy starts). A run sets it to 0.1 ms before its copy starts, and it stays so (the daemon's next run wants
    it too); a process that set a shorter one keeps its own."""
    import sys

    from archiver.archive.datadir import open_archive
    from archiver.ingest.pipeline import start

    cfg = load_config(None, data_dir, system_file=Path("/nonexistent"))
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        seen = []

        def books():
            seen.append(sys.getswitchinterval())
            return open_workspace(cfg, upgrade=True)

        report = start(cfg, open_archive(cfg), recorder).finish(books)
        assert report.ingested == 6 and seen == [pytest.approx(1e-4)]
        assert sys.getswitchinterval() == pytest.approx(1e-4)

        sys.setswitchinterval(5e-5)
        start(cfg, open_archive(cfg), recorder).finish(lambda: open_workspace(cfg, upgrade=True))
        assert sys.getswitchinterval() == pytest.approx(5e-5)
    finally:
        sys.setswitchinterval(before)


def test_a_source_the_page_cache_holds_is_read_in_the_copying_thread_and_the_rest_by_the_read_ahead(tmp_path: Path):
    """What the cache holds is read without a helper thread (handing each chunk between threads cost more than
    the read); from the first chunk it lacks, the read-ahead thread reads on. Either way every byte comes once, in
    order, in whole chunks (the direct writes need them block-aligned)."""
    from archiver.archive.copying import _ReadAhead

    path = tmp_path / "source.bin"
    data = os.urandom(64 * CHUNK + 123)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # clean pages, so they can be dropped

        def read_all(reader: _ReadAhead) -> tuple[bytes, list[bool], list[int]]:
            got, threaded, sizes = bytearray(), [], []
            with reader:
                for buf, n in reader.held():
                    threaded.append(reader._thread is not None)
                    sizes.append(n)
                    got += buf[:n]
                    reader.release(buf)
            return bytes(got), threaded, sizes

        os.pread(fd, len(data), 0)  # all of it in the cache
        got, threaded, sizes = read_all(_ReadAhead(fd, cached_first=True))
        assert got == data and not any(threaded)
        assert sizes == [CHUNK] * 64 + [123]

        os.posix_fadvise(fd, 32 * CHUNK, 0, os.POSIX_FADV_DONTNEED)  # the second half only on the disk
        got, threaded, sizes = read_all(_ReadAhead(fd, cached_first=True))
        assert got == data and sizes == [CHUNK] * 64 + [123]
        assert not any(threaded[:16]) and threaded[-1], threaded

        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # none of it cached: the thread from the start
        got, threaded, _sizes = read_all(_ReadAhead(fd, cached_first=True))
        assert got == data and all(threaded)
    finally:
        os.close(fd)


def test_before_the_catalog_is_open_a_file_that_would_crowd_the_disk_waits_for_it(recorder: Path, tmpfs):
    """Opening the catalog may write (a migration, the run's row, a new catalog and key): until it is open, a file
    is copied only if the archive disk keeps 64 MiB after it. The small recordings go at once; the big one waits
    for the catalog, then goes."""
    from archiver.archive.datadir import open_archive
    from archiver.ingest.pipeline import start

    disk = tmpfs("tight", "112m")
    data_dir = disk / "data"
    cfg = load_config(None, data_dir, system_file=Path("/nonexistent"))
    open_workspace(cfg, upgrade=True).close()
    big = recorder / "RECORD" / "TA00716_JX0227_20221103100000.MP4"
    big.write_bytes(os.urandom(56 << 20))  # sorted after the others; leaves less than 64 MiB of 112

    def books_once_the_small_ones_are_copied():
        wait_for(lambda: len(_temp_files(data_dir)) == 6, 30, "the small recordings copied")
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            assert len(_temp_files(data_dir)) == 6, "the big recording was copied before the catalog was open"
            time.sleep(0.01)
        return open_workspace(cfg, upgrade=True)

    report = start(cfg, open_archive(cfg), recorder).finish(books_once_the_small_ones_are_copied)
    assert (report.ingested, report.failed, report.pending) == (7, [], [])
    assert (data_dir / "archive/2022/11/03/TA00716" / big.name).read_bytes() == big.read_bytes()
    assert archive_problems(data_dir) == []
