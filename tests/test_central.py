"""Many stations, one county, on a real PostgreSQL server started here: stations sync their signed custody
logs to the central catalog; a joint case is checked across stations; an offline station catches up; a
centre killed mid-sync loses nothing; forged, missing and rewritten events are refused and reported."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
from pathlib import Path

import ffmpeg
import pytest
from central_util import (
    CentreProcess,
    centre_config,
    extend_log,
    log_lines,
    other_key,
    registered,
    signed_line,
    station_config,
    station_key,
)
from daemon_util import DaemonProcess, wait_for
from pg_util import new_database, postgres_server
from sqlalchemy import func, select

from archiver.catalog import Catalog, InboxLine, Recording, Sighting, Station, StationEvent, StationRefusal
from archiver.central.receive import Delivery, receive
from archiver.dock.simulate import RecorderSpec, make_recorder

CASE = "县联合〔2022〕7号"
# Two officers of a joint action: JX0227 of the township (houye) films the investigation, JX0300 of the
# county department (xzj) the service of the decision; each recorder docks at its own station.
HOUYE = RecorderSpec(serial="TA00716", officer="JX0227", segments=3, segment_seconds=4, audio=0, photos=0,
                     device_files=False)
XZJ = RecorderSpec(serial="TB00002", officer="JX0300", start=HOUYE.start.replace(second=40), segments=3,
                   segment_seconds=4, audio=0, photos=0, device_files=False)
CASE_FILE = ("case_no,title,stage,officers,start,end,recording_required\n"
             f"{CASE},联合执法,调查取证,JX0227,2022-11-03T09:36:21,2022-11-03T09:36:33,是\n"
             f"{CASE},联合执法,送达,JX0300,2022-11-03T09:36:40,2022-11-03T09:36:52,是\n")


@pytest.fixture(scope="module")
def postgres():
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def cards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    made = {}
    for name, spec in (("houye", HOUYE), ("xzj", XZJ)):
        made[name] = tmp_path_factory.mktemp(name)
        make_recorder(made[name], spec)
    return made


@pytest.fixture
def county(cli, tmp_path: Path):
    """A centre on a fresh database, its own process running, and stations registered there, each with its own
    login; `run(who, *args)` runs `archiver` as one of them."""
    centres: list[CentreProcess] = []

    def make(url: str, names: list[str]) -> dict:
        configs = {"centre": centre_config(tmp_path, url)}
        assert cli("init", config=configs["centre"], data=tmp_path / "centre").exit_code == 0
        logins = {}
        for name in names:
            configs[name] = station_config(tmp_path, name)
            assert cli("init", config=configs[name], data=tmp_path / name).exit_code == 0
            key = cli("keys", "show", config=configs[name], data=tmp_path / name).stdout.strip()
            added = cli("stations", "add", name, "--key", key, config=configs["centre"], data=tmp_path / "centre")
            assert added.exit_code == 0, added.output
            logins[name] = registered(added.stdout)
            station_config(tmp_path, name, *logins[name])
        centres.append(CentreProcess(configs["centre"], tmp_path / "centre"))

        def run(who: str, *args: str):
            return cli(*args, config=configs[who], data=tmp_path / who)
        run.logins, run.centre = logins, centres[-1]
        return run
    yield make
    for centre in centres:
        if centre.proc.poll() is None:
            assert centre.stop() == 0, centre.log()


def as_json(result) -> dict:
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def compliant(run, who: str) -> list[bool]:
    (case,) = as_json(run(who, "cases", "check", CASE, "--json"))
    return [a["gaps"] == [] for a in case["actions"]]


def test_a_joint_case_is_whole_only_at_the_centre(county, postgres, cards, tmp_path: Path):
    run = county(new_database(postgres), ["houye", "xzj"])
    case_file = tmp_path / "joint.csv"
    case_file.write_text(CASE_FILE)
    for name in ("houye", "xzj"):
        assert run(name, "ingest", cards[name]).exit_code == 0
        assert run(name, "cases", "import", case_file).exit_code == 0
    # Each station alone sees its own officer's half of the action.
    assert compliant(run, "houye") == [True, False]
    assert compliant(run, "xzj") == [False, True]

    for name in ("houye", "xzj"):
        synced = as_json(run(name, "sync", "--json"))
        assert synced["refused"] == [] and synced["behind"] == 0 and synced["applied"] == synced["head"]
    assert run("centre", "cases", "import", case_file).exit_code == 0
    assert compliant(run, "centre") == [True, True]
    (case,) = as_json(run("centre", "cases", "check", CASE, "--json"))
    assert case["compliant"] is True
    listed = as_json(run("centre", "recordings", "list", "--json"))
    assert sorted({r["officer_no"] for r in listed}) == ["JX0227", "JX0300"] and len(listed) == 6
    shown = as_json(run("centre", "recordings", "show", listed[0]["sha256"][:12], "--json"))
    assert shown["archive_path"].split(":")[0] in ("houye", "xzj")

    stations = {s["station"]: s for s in as_json(run("centre", "stations", "list", "--json"))}
    assert {k: (v["recordings"], v["refusals"]) for k, v in stations.items()} == {"houye": (3, 0), "xzj": (3, 0)}
    checked = as_json(run("centre", "stations", "check", "--json"))
    assert checked["problems"] == 0 and all(s["events"] > 0 for s in checked["stations"])

    html = tmp_path / "joint.html"
    assert run("centre", "cases", "report", CASE, "--html", html).exit_code == 0
    assert "houye:archive/" in html.read_text() and "xzj:archive/" in html.read_text()
    year = as_json(run("centre", "report", "year", "2022", "--json"))
    assert (year["recordings"], year["recorders"]) == (6, 2)
    # Station tools that would make an empty SQLite catalog beside the centre's PostgreSQL refuse instead.
    for command in (("backup", "run"), ("rebuild-catalog",)):
        refused = run("centre", *command)
        assert refused.exit_code == 2 and "postgresql+psycopg://postgres@/" in refused.stderr, refused.stderr
    assert not (tmp_path / "centre" / "catalog.db").exists()
    verified = run("centre", "verify", "--central")
    assert verified.exit_code == 0 and "2 station(s)" in verified.stdout and "0 problem(s)" in verified.stdout

    # The centre's recordings are the stations' own, fact for fact, each with its signed ingest event.
    local = {r["sha256"]: r for r in as_json(run("houye", "recordings", "list", "--json"))}
    for row in listed:
        if row["sha256"] in local:
            assert {k: row[k] for k in ("officer_no", "device_serial", "start", "end", "size", "media_type")} == \
                   {k: local[row["sha256"]][k] for k in ("officer_no", "device_serial", "start", "end", "size",
                                                          "media_type")}


def _held(catalog: Catalog) -> int:
    with catalog.reading() as session:
        return session.scalar(select(Station.seq).where(Station.id == "houye"))


def _counts(url: str) -> dict[str, int]:
    catalog = Catalog(url)
    try:
        with catalog.reading() as session:
            return {model.__tablename__: session.scalar(select(func.count()).select_from(model))
                    for model in (Recording, Sighting, StationEvent, StationRefusal)}
    finally:
        catalog.close()


def test_an_offline_station_catches_up_and_a_killed_centre_loses_nothing(county, cards, tmp_path: Path):
    with postgres_server() as server:  # its own server: this test stops and kills it
        url = new_database(server)
        run = county(url, ["houye"])
        data = tmp_path / "houye"
        assert run("houye", "ingest", cards["houye"]).exit_code == 0
        first = as_json(run("houye", "sync", "--json"))
        assert first["behind"] == 0 and first["applied"] > 0

        server.stop()  # the centre goes away; the station goes on docking
        card = tmp_path / "later"
        make_recorder(card, RecorderSpec(serial="TC00003", officer="JX0411", segments=2, audio=1, photos=0,
                                         device_files=False))
        assert run("houye", "ingest", card).exit_code == 0
        failed = run("houye", "sync")
        assert failed.exit_code == 3 and "cannot reach the central catalog" in failed.stderr
        assert failed.stderr.count("\n") == 1 and "password" not in failed.stderr
        lag = as_json(run("houye", "status", "--json"))["central"]
        assert lag["events_behind"] >= 3 and lag["recordings_behind"] == 3 and lag["oldest_behind"]
        assert "cannot reach" in lag["error"]
        assert "not yet central" in run("houye", "status").stdout

        # Thousands of events handed in while the centre's process is down; that process then killed (SIGKILL)
        # in the middle of applying them, and started again.
        lines = extend_log(data, 6000)
        server.start()
        assert run.centre.stop() == 0
        station_config(tmp_path, "houye", *run.logins["houye"], wait_s=0.5)
        handed = as_json(run("houye", "sync", "--json"))
        assert handed["handed_in"] >= 6000 and handed["central_seq"] == first["head"] and handed["refused"] == []
        centre_config_path, centre_data = tmp_path / "centre.toml", tmp_path / "centre"
        centre = CentreProcess(centre_config_path, centre_data)
        catalog = Catalog(url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with catalog.reading() as session:
                held = session.scalar(select(Station.seq).where(Station.id == "houye"))
            if held > first["head"] + 500:
                break
            time.sleep(0.02)
        centre.kill()
        with catalog.reading() as session:
            held = session.scalar(select(Station.seq).where(Station.id == "houye"))
            waiting = session.scalar(select(func.count()).select_from(InboxLine))
        assert held < len(lines) and waiting > 0, "the centre finished before it was killed: kill sooner"
        centre = CentreProcess(centre_config_path, centre_data)  # takes what waited, from its own head
        try:
            wait_for(lambda: _held(catalog) == len(lines), 60, "the centre caught up after its kill", step=0.1)
        finally:
            assert centre.stop() == 0, centre.log()
        with catalog.reading() as session:
            assert session.scalar(select(func.count()).select_from(InboxLine)) == 0
        catalog.close()
        caught = as_json(run("houye", "sync", "--json"))
        assert caught["refused"] == [] and caught["central_seq"] == caught["head"] == len(lines)
        counts = _counts(url)
        assert counts == {"recordings": 6, "sightings": 6, "station_events": len(lines), "station_refusals": 0}
        lag = as_json(run("houye", "status", "--json"))["central"]
        assert (lag["events_behind"], lag["recordings_behind"], lag["error"]) == (0, 0, None)

        # The same events delivered again change nothing.
        again = receive(Catalog(url), "houye", [Delivery(line) for line in lines[:1000]])
        assert (again.applied, again.duplicates, again.refused) == (0, 1000, [])
        assert as_json(run("houye", "sync", "--json"))["applied"] == 0
        assert _counts(url) == counts
        assert as_json(run("centre", "stations", "check", "--json"))["problems"] == 0


def test_forged_missing_and_rewritten_events_are_refused_and_reported(county, postgres, cards, tmp_path: Path):
    url = new_database(postgres)
    run = county(url, ["houye"])
    data = tmp_path / "houye"
    assert run("houye", "ingest", cards["houye"]).exit_code == 0
    assert as_json(run("houye", "sync", "--json"))["behind"] == 0
    lines = log_lines(data)
    head, central = len(lines), Catalog(url)
    before = _counts(url)

    forged = signed_line(other_key(), head + 1, lines[-1], action="purge")  # the right place, another key
    gap = signed_line(station_key(data), head + 2, lines[-1])  # head + 1 never delivered
    fork = signed_line(station_key(data), head - 1, lines[-3])  # another line where the centre holds one
    # Signed by the station's own key, but nothing a recording row can hold: refused, not a failed insert.
    nonsense = signed_line(station_key(data), head + 1, lines[-1], action="ingest", size="big")
    for line, kind in ((forged, "signature"), (gap, "gap"), (fork, "fork"), (b"{not json", "malformed"),
                       (nonsense, "malformed")):
        got = receive(central, "houye", [Delivery(line)])
        assert [r["kind"] for r in got.refused] == [kind] and got.applied == 0 and got.seq == head
    # A refused event stops the delivery: what follows it is not applied either.
    got = receive(central, "houye", [Delivery(forged), Delivery(signed_line(station_key(data), head + 2, forged))])
    assert got.applied == 0 and len(got.refused) == 1
    assert _counts(url) == {**before, "station_refusals": 5}  # the forged line again is the same report

    # A station whose log was rewritten after it synced: the sync is refused, exit 1, and nothing applied.
    extend_log(data, 3, keep=head - 2)
    refused = run("houye", "sync")
    assert refused.exit_code == 1 and f"REFUSED seq {head} (fork)" in refused.stdout
    checked = run("centre", "stations", "check")
    assert checked.exit_code == 1
    kinds = [p["kind"] for p in as_json(run("centre", "stations", "check", "--json"))["stations"][0]["problems"]]
    assert sorted(kinds) == ["fork", "fork", "gap", "malformed", "malformed", "signature"]
    assert "(signature)" in checked.stdout and "(gap)" in checked.stdout and "(fork)" in checked.stdout
    with central.reading() as session:
        assert session.scalar(select(Station.seq).where(Station.id == "houye")) == head
    central.close()

    # A log cut shorter than what the centre holds is reported too (the centre is never asked to go back).
    extend_log(data, 0, keep=2)
    cut = run("houye", "sync")
    assert cut.exit_code == 1 and "REFUSED seq 2 (truncated)" in cut.stdout


def test_registration_and_configuration_errors_are_plain(county, postgres, cli, tmp_path: Path):
    url = new_database(postgres)
    run = county(url, ["houye"])
    other = other_key().public.text
    taken = run("centre", "stations", "add", "houye", "--key", other)
    assert taken.exit_code == 2 and "registered already with another key" in taken.stderr
    assert run("centre", "stations", "add", "bad/id", "--key", other).exit_code == 2
    assert run("centre", "stations", "add", "x", "--key", "ed25519:nope").exit_code == 2
    # A station the centre does not know, and one that claims another station's name.
    (tmp_path / "stray.toml").write_text(f'[station]\nid = "stray"\n[central]\nurl = "{url}"\n')
    assert cli("init", config=tmp_path / "stray.toml", data=tmp_path / "stray").exit_code == 0
    stray = cli("sync", config=tmp_path / "stray.toml", data=tmp_path / "stray")
    assert stray.exit_code == 2 and "archiver stations add stray --key ed25519:" in stray.stderr
    # An impostor with houye's login but a key of its own: its code hands its lines in like any station's, and
    # the centre, not the impostor, turns them away and keeps the refusal on record.
    login, centre_key = run.logins["houye"]
    (tmp_path / "impostor.toml").write_text(f'[station]\nid = "houye"\n[central]\nurl = "{login}"\n'
                                            f'key = "{centre_key}"\nwait_s = 20\n')
    assert cli("init", config=tmp_path / "impostor.toml", data=tmp_path / "imp").exit_code == 0
    impostor = cli("sync", config=tmp_path / "impostor.toml", data=tmp_path / "imp")
    assert impostor.exit_code == 1 and "REFUSED seq 1 (signature)" in impostor.stdout, impostor.output
    checked = run("centre", "stations", "check")
    assert checked.exit_code == 1 and "(signature)" in checked.stdout
    assert as_json(run("centre", "stations", "list", "--json"))[0]["events"] == 0  # nothing of it applied
    (tmp_path / "nameless.toml").write_text(f'[central]\nurl = "{url}"\n')
    nameless = cli("status", config=tmp_path / "nameless.toml")
    assert nameless.exit_code == 2 and "'station.id' is not" in nameless.stderr
    assert cli("sync").exit_code == 2  # no [central] url at all


def test_the_daemon_syncs_as_it_docks_and_catches_up_after_an_outage(county, cards, cli, tmp_path: Path):
    with postgres_server() as server:
        url = new_database(server)
        run = county(url, ["houye"])
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        login, centre_key = run.logins["houye"]
        daemon = DaemonProcess(tmp_path, tmp_path / "houye", [], [inbox],
                               extra=f'[station]\nid = "houye"\n[central]\nurl = "{login}"\nkey = "{centre_key}"\n'
                                     'interval_s = 0.5\nmax_backoff_s = 2\nwait_s = 2\n')
        try:
            def central_recordings() -> int:
                return len(as_json(run("centre", "recordings", "list", "--json")))

            def lag() -> dict:
                return as_json(run("houye", "status", "--json"))["central"]

            shutil.copytree(cards["houye"], inbox / "first")
            wait_for(lambda: central_recordings() == 3, 60, "the first card at the centre", step=0.3)
            # the station notes how far the centre is once its receipts are in, a moment after the centre applied
            wait_for(lambda: lag()["events_behind"] == 0, 30, "the first sync noted", step=0.3)
            server.stop()
            later = tmp_path / "later"
            make_recorder(later, RecorderSpec(serial="TC00003", officer="JX0411", segments=2, audio=1, photos=0,
                                              device_files=False))
            shutil.copytree(later, inbox / "later")
            wait_for(lambda: "central sync failed" in daemon.log(), 60, "a failed sync logged", step=0.2)
            wait_for(lambda: lag()["recordings_behind"] == 3, 60, "the station's lag", step=0.3)
            server.start()
            wait_for(lambda: central_recordings() == 6, 60, "the centre caught up", step=0.3)
            wait_for(lambda: lag()["events_behind"] == 0, 30, "the station's lag cleared", step=0.3)
            assert lag()["error"] is None
        finally:
            assert daemon.stop() == 0, daemon.log()
        assert "retry_in=" in daemon.log()


def test_verify_central_reports_what_a_database_writer_changed(county, postgres, cards, tmp_path: Path):
    url = new_database(postgres)
    run = county(url, ["houye"])
    assert run("houye", "ingest", cards["houye"]).exit_code == 0
    assert run("houye", "sync").exit_code == 0
    central = Catalog(url)
    with central.session() as session:  # someone with write access to the central database, not a sync
        first, second = session.scalars(select(Recording).order_by(Recording.id)).all()[:2]
        second.officer_no = "JX9999"
        session.add(Recording(sha256="f" * 64, size=1, media_type="video", original_path="x.MP4",
                              archive_path="houye:archive/x.MP4", verified_at=first.verified_at, station="houye"))
        event = session.get(StationEvent, ("houye", 2))
        event.line = event.line.replace('"flags":[', '"flags":["forged",')
        session.commit()
    central.close()
    result = run("centre", "verify", "--central", "--json")
    assert result.exit_code == 1
    kinds = sorted((p["kind"], p["seq"]) for p in json.loads(result.stdout)["problems"])
    # the forged line no longer vouches for its recording: that one is unsigned now, beside the planted one
    assert kinds == [("changed", 2), ("changed", 3), ("signature", 2), ("unsigned", None), ("unsigned", None)]


def test_a_start_given_by_hand_at_a_station_reaches_the_centre(county, postgres, tmp_path: Path):
    """A 录音笔's file without a time, given its start at its station: the centre takes it from the signed event,
    links it, and `verify --central` finds the recording as its events state it."""
    run = county(new_database(postgres), ["houye"])
    voice = tmp_path / "vr"
    voice.mkdir()
    tone = ffmpeg.input("sine=frequency=440:sample_rate=16000", f="lavfi", t=8)
    ffmpeg.output(tone, str(voice / "录音001.MP3"), ac=1, map_metadata=-1).overwrite_output().run(quiet=True)
    assert run("houye", "ingest", voice, "--device", "VR01", "--officer", "JX0300").exit_code == 0
    assert run("houye", "sync").exit_code == 0
    (before,) = as_json(run("centre", "recordings", "list", "--json"))
    assert before["start"] is None
    assert run("houye", "recordings", "set-time", "1", "2022-11-03 09:36:40", "--reason", "笔录").exit_code == 0
    assert run("houye", "sync").exit_code == 0
    (after,) = as_json(run("centre", "recordings", "list", "--json"))
    assert (after["start"], after["end"][:19], after["flags"]) == ("2022-11-03T09:36:40+08:00", "2022-11-03T09:36:48",
                                                                   ["name_unparsed", "time_set"])  # MP3: 8.1 s
    case_file = tmp_path / "c.csv"
    case_file.write_text(CASE_FILE)
    assert run("centre", "cases", "import", case_file).exit_code == 0
    assert compliant(run, "centre")[1] is False  # 09:36:40-48 of 09:36:40-52: covered, with a gap at its end
    (case,) = as_json(run("centre", "cases", "check", CASE, "--json"))
    assert case["actions"][1]["covered_s"] == pytest.approx(8, abs=0.2)
    verified = run("centre", "verify", "--central")
    assert verified.exit_code == 0 and "0 problem(s)" in verified.stdout, verified.stdout


def test_a_station_login_can_only_hand_in_its_own_lines(county, postgres, cards, tmp_path: Path):
    """The database itself, not the station's code, stops a station login from touching the county's catalog:
    every UPDATE and DELETE, any read of a table, and a line for another station are refused by PostgreSQL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError

    from archiver.catalog.models import Base

    url = new_database(postgres)
    run = county(url, ["houye", "xzj"])
    for name in ("houye", "xzj"):
        assert run(name, "ingest", cards[name]).exit_code == 0
        assert as_json(run(name, "sync", "--json"))["behind"] == 0
    engine = create_engine(run.logins["houye"][0])
    before = _counts(url)

    def refused(statement: str, **params) -> str:
        with engine.connect() as conn, pytest.raises(DBAPIError) as caught:
            conn.execute(text(statement), params)
            conn.commit()
        return str(caught.value.orig)

    tables = sorted(Base.metadata.tables) + ["alembic_version"]
    for table in tables:
        assert "permission denied" in refused(f"UPDATE {table} SET {_a_column(table)} = {_a_column(table)}")
        assert "permission denied" in refused(f"DELETE FROM {table}")
    for table in set(tables) - {"alembic_version"}:
        assert "permission denied" in refused(f"SELECT * FROM {table}")
    line = log_lines(tmp_path / "xzj")[-1].decode()
    assert "permission denied" in refused(
        "INSERT INTO station_inbox (station, hash, line, at) VALUES ('xzj', :hash, :line, now())",
        hash=hashlib.sha256(line.encode()).hexdigest(), line=line)
    assert "permission denied" in refused("UPDATE recordings SET duration_s = 0 WHERE station = 'xzj'")
    with engine.connect() as conn:  # what it may see: its own row, nothing of xzj's
        assert [r.id for r in conn.execute(text("SELECT id FROM station_self"))] == ["houye"]
        assert {r.seq for r in conn.execute(text("SELECT seq FROM station_own_receipts"))} <= {
            _held_of(url, "houye")}
        # A line of xzj's handed in by houye's login lands in houye's inbox, where the centre refuses it.
        conn.execute(text("SELECT archiver_hand_in(CAST(:batch AS jsonb))"),
                     {"batch": json.dumps([{"line": line, "facts": None}])})
        conn.commit()
    engine.dispose()
    wait_for(lambda: _counts(url)["station_refusals"] == 1, 30, "the foreign line refused", step=0.1)
    assert {k: v for k, v in _counts(url).items() if k != "station_refusals"} == \
        {k: v for k, v in before.items() if k != "station_refusals"}
    checked = as_json(run("centre", "stations", "check", "--json"))
    (problem,) = [p for s in checked["stations"] for p in s["problems"]]
    assert problem["kind"] in ("fork", "signature") and checked["problems"] == 1


def _a_column(table: str) -> str:
    from archiver.catalog.models import Base

    return "version_num" if table == "alembic_version" else next(iter(Base.metadata.tables[table].columns)).name


def _held_of(url: str, station: str) -> int:
    catalog = Catalog(url)
    try:
        with catalog.reading() as session:
            return session.scalar(select(Station.seq).where(Station.id == station))
    finally:
        catalog.close()


def test_verify_central_names_every_column_a_database_writer_changed(county, postgres, cards, tmp_path: Path):
    """Station A's rights used the old way (a writer of the shared tables): B's video durations set to zero and
    a photo marked purged. `verify --central` compares every column its events state and names each edit."""
    url = new_database(postgres)
    run = county(url, ["houye"])
    assert run("houye", "ingest", cards["houye"]).exit_code == 0
    assert run("houye", "sync").exit_code == 0
    assert run("centre", "verify", "--central").exit_code == 0
    central = Catalog(url)
    with central.session() as session:
        first, second, third = session.scalars(select(Recording).order_by(Recording.id)).all()[:3]
        first.duration_s, second.purged_at, third.retention_class = 0.0, first.verified_at, "invalid"
        edited = {first.sha256: "duration_s", second.sha256: "purged_at", third.sha256: "retention_class"}
        session.commit()
    central.close()
    result = run("centre", "verify", "--central", "--json")
    assert result.exit_code == 1
    problems = json.loads(result.stdout)["problems"]
    found = {sha: column for sha, column in edited.items()
             if any(p["kind"] == "changed" and sha in p["detail"] and f"column {column}:" in p["detail"]
                    for p in problems)}
    assert found == edited and len(problems) == 3, problems
    (classed,) = [p for p in problems if "retention_class" in p["detail"]]
    assert classed["found"] == "invalid" and classed["expected"] not in ("invalid", None)  # as signed, as held
    assert classed["station"] and isinstance(classed["seq"], int) and classed["path"] is None


def test_a_log_rewritten_after_a_sync_is_caught_at_home_by_the_centres_receipt(county, postgres, cards,
                                                                             tmp_path: Path):
    """The station keeps the centre's signed receipt of its head. Someone at the station rewrites the log after a
    sync, signs the new lines with the station's own key and sets the catalog's head to match: the station's
    own `verify` still finds it, through the receipt."""
    url = new_database(postgres)
    run = county(url, ["houye"])
    data = tmp_path / "houye"
    assert run("houye", "ingest", cards["houye"]).exit_code == 0
    synced = as_json(run("houye", "sync", "--json"))
    assert synced["receipt"] == synced["head"] and run("houye", "verify").exit_code == 0
    lines = extend_log(data, 3, keep=synced["head"] - 2)  # the last two lines replaced, then more
    last = lines[-1]
    db = sqlite3.connect(data / "catalog.db")
    db.execute("UPDATE custody_head SET seq = ?, hash = ?", (len(lines), hashlib.sha256(last).hexdigest()))
    db.commit()
    db.close()
    caught = run("houye", "verify")
    assert caught.exit_code == 1 and "the centre's receipt" in caught.stdout, caught.output
    # A receipt that is not the centre's (the key in [central] key does not verify it) is reported too.
    db = sqlite3.connect(data / "catalog.db")
    db.execute("UPDATE receipts SET receipt = replace(receipt, '\"time\":\"', '\"time\":\"1')")
    db.commit()
    db.close()
    assert "does not verify with central.key" in run("houye", "verify").stdout
