"""Retention on a real station: due dates by a fake clock (ARCHIVER_NOW), holds, backups and open cases
holding footage back, the two-person purge and its tombstones, a purge killed at random moments, and
the archive disk's capacity."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import archive_problems, mount
from daemon_util import DaemonProcess, wait_for
from runner import ARCHIVER, archiver

from archiver.archive.workspace import open_workspace
from archiver.config import load_config
from archiver.retention import purge as lib

SHANGHAI_DAY = "T00:00:00+08:00"


def _plan(run, when: str) -> dict:
    os.environ["ARCHIVER_NOW"] = when
    try:
        result = run("retention", "plan", "--json")
    finally:
        del os.environ["ARCHIVER_NOW"]
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_footage_becomes_due_on_its_date_and_holds_cases_and_backups_keep_it(backed, cli, tmp_path: Path):
    run = backed["run"]
    backed["config"].write_text(backed["config"].read_text() + "[linking]\nclock_tolerance_s = 0\n")
    assert run("backup", "run").exit_code == 0
    # the card's footage ends on 3 November 2022: unlinked, kept six months, due on 4 May 2023
    before = _plan(run, "2023-05-03T23:59:59+08:00")
    assert before["due_now"] == [] and len(before["upcoming"]) == 6
    assert {i["due"] for i in before["upcoming"]} == {"2023-05-04"} and {i["class"] for i in before["upcoming"]} == {
        "unlinked"}
    on_the_day = _plan(run, "2023-05-04" + SHANGHAI_DAY)
    assert len(on_the_day["due_now"]) == 6 and on_the_day["classes"]["unlinked"]["due_now"] == 6
    assert on_the_day["due_now_bytes"] == sum(i["bytes"] for i in on_the_day["due_now"]) > 0
    # a hold keeps one; a case that is still open keeps the footage of its action
    assert run("hold", "add", "1", "--reason", "appeal pending").exit_code == 0
    held = _plan(run, "2023-05-04" + SHANGHAI_DAY)
    assert [(i["id"], i["reason"]) for i in held["blocked"]] == [(1, "held")] and len(held["due_now"]) == 5
    assert json.loads(run("hold", "list", "--json").stdout)[0]["reason"] == "appeal pending"
    cases = tmp_path / "c.csv"
    cases.write_text("case_no,title,stage,officers,start,end,recording_required\n"
                     "C-1,t,调查取证,JX0227,2022-11-03T09:36:20,2022-11-03T09:36:27,true\n")
    assert run("cases", "import", cases).exit_code == 0
    linked = {r["id"] for r in json.loads(run("recordings", "list", "--case", "C-1", "--json").stdout)}
    opened = _plan(run, "2023-05-04" + SHANGHAI_DAY)
    assert 1 not in linked and 0 < len(linked) < 5
    assert not linked & {i["id"] for i in opened["due_now"] + opened["blocked"]}
    assert opened["kept"] == len(linked) and len(opened["due_now"]) == 6 - len(linked | {1})
    # closed, with a class of ten years: due ten years and a day after the closing
    cases.write_text("case_no,title,stage,officers,start,end,recording_required,保存期限,结案日期\n"
                     "C-1,t,调查取证,JX0227,2022-11-03T09:36:20,2022-11-03T09:36:27,true,case_10y,2023/6/1\n")
    assert run("cases", "import", cases).exit_code == 0
    closed = _plan(run, "2033-06-01T23:00:00+08:00")
    assert {i["id"] for i in closed["upcoming"]} == linked - {1}
    assert {i["due"] for i in closed["upcoming"]} == {"2033-06-02"}
    assert run("hold", "remove", "1", "--reason", "appeal decided").exit_code == 0
    # a third target the footage is not on yet: nothing is due until the next backup run
    config = backed["config"]
    third = tmp_path / "t3"
    third.mkdir()
    config.write_text(config.read_text().replace(f"'{backed['targets'][1]}'", f"'{backed['targets'][1]}', '{third}'"))
    waiting = _plan(run, "2023-05-04" + SHANGHAI_DAY)
    assert waiting["due_now"] == [] and {i["reason"] for i in waiting["blocked"]} == {"not_backed_up"}
    assert run("backup", "run").exit_code == 0
    assert len(_plan(run, "2023-05-04" + SHANGHAI_DAY)["due_now"]) == 6 - len(linked)
    # an unknown class in a case file is refused, nothing imported
    cases.write_text("case_no,title,stage,officers,start,end,recording_required,保存期限\n"
                     "C-2,t,s,JX0227,2022-11-03T09:36:20,2022-11-03T09:36:27,true,forever\n")
    bad = run("cases", "import", cases)
    assert bad.exit_code == 2 and "retention class(es) forever are not in retention.classes" in bad.output


def test_invalid_is_set_by_a_person_with_a_reason_and_never_on_linked_footage(backed, tmp_path: Path):
    run = backed["run"]
    assert run("recordings", "classify", "2", "invalid", "--reason", "").exit_code == 2
    assert run("recordings", "classify", "2", "nonsense", "--reason", "x").exit_code == 2
    assert run("recordings", "classify", "2", "invalid", "--reason", "pocket recording").exit_code == 0
    assert run("backup", "run").exit_code == 0
    due = _plan(run, "2022-11-11" + SHANGHAI_DAY)  # seven days after 3 November, and a day
    assert [(i["id"], i["class"]) for i in due["due_now"]] == [(2, "invalid")]
    assert run("hold", "add", "2", "--reason", "complaint").exit_code == 0
    assert run("recordings", "classify", "2", "invalid", "--reason", "again").exit_code == 2


def _station(tmp_path: Path, count: int) -> tuple[Path, Path]:
    """A data dir with `count` small recordings of 1 March 2022, unlinked, ingested and verified."""
    card = tmp_path / "card" / "RECORD"
    card.mkdir(parents=True)
    rng = random.Random(7)
    for i in range(count):
        (card / f"TX{i % 6:05d}_JX{i % 6:04d}_20220301{i // 60:02d}{i % 60:02d}00.MP4").write_bytes(
            rng.randbytes(2000 + i))
    data = tmp_path / "data"
    config = tmp_path / "archiver.toml"
    config.write_text("")
    env = {**os.environ, "ARCHIVER_CONFIG": str(config), "ARCHIVER_DATA_DIR": str(data)}
    archiver("ingest", str(tmp_path / "card"), env=env, check=True)
    return data, config


def _approved_request(data: Path, config: Path, when: str) -> int:
    """A purge of everything due, requested by root and approved by a second person (the library, acting
    as that person: the identity check is the same code the service runs)."""
    env = {**os.environ, "ARCHIVER_CONFIG": str(config), "ARCHIVER_DATA_DIR": str(data), "ARCHIVER_NOW": when}
    made = archiver("retention", "purge", "--request", "--json", env=env, check=True)
    request = json.loads(made.stdout)["id"]
    same = archiver("retention", "approve", str(request), env=env)
    assert same.returncode == 4 and "a different person (auditor or legal) must approve it" in same.stderr
    ws = open_workspace(load_config(config, data), upgrade=False)
    try:
        lib.approve(ws.acting({"user": "auditor-wang", "uid": 12345, "role": "auditor"}), request,
                    datetime.fromisoformat(when))
    finally:
        ws.close()
    return request


def test_a_purge_killed_at_ten_random_moments_then_run_once_leaves_each_recording_whole_or_a_tombstone(
        tmp_path: Path):
    data, config = _station(tmp_path, 200)
    when = "2022-09-01T23:59:59+08:00"  # ended 1 March: six months run to 1 September, nothing due yet
    env = {**os.environ, "ARCHIVER_CONFIG": str(config), "ARCHIVER_DATA_DIR": str(data), "ARCHIVER_NOW": when}
    nothing = archiver("retention", "purge", "--request", env=env)
    assert nothing.returncode == 2 and "nothing is due for purging on 2022-09-01" in nothing.stderr
    when = "2022-09-02" + SHANGHAI_DAY
    request = _approved_request(data, config, when)
    env["ARCHIVER_NOW"] = when
    rng = random.Random(13)
    for _kill in range(10):
        proc = subprocess.Popen([str(ARCHIVER), "retention", "purge", str(request)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(0.05, 1.2))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        ws = open_workspace(load_config(config, data), upgrade=False)
        try:
            for rec in _recordings(ws):
                on_disk = (data / rec.archive_path).exists()
                assert rec.purged_at is not None or on_disk, rec.id  # never gone without its tombstone
        finally:
            ws.close()
    done = archiver("retention", "purge", str(request), "--json", env=env)
    assert done.returncode == 0, done.stderr
    ws = open_workspace(load_config(config, data), upgrade=False)
    try:
        recordings = _recordings(ws)
    finally:
        ws.close()
    assert all(r.purged_at is not None and not (data / r.archive_path).exists() for r in recordings)
    assert archive_problems(data) == []  # every manifest left passes sha256sum -c
    verify = archiver("verify", "--json", env=env)
    assert verify.returncode == 0 and json.loads(verify.stdout)["problems"] == [], verify.stdout
    events = [json.loads(line) for line in (data / "custody.jsonl").read_text().splitlines()]
    purged = {e["subject"]["sha256"] for e in events if e["action"] == "purge"}
    assert purged == {r.sha256 for r in recordings}
    # at least once: a run killed after its `purge_done` line was written but before its transaction committed
    # leaves the request open, and the next run writes it again (as for every custody event; verify accepts it)
    assert [e["action"] for e in events].count("purge_done") >= 1
    assert not list((data / "archive").rglob("*.MP4"))


def _recordings(ws):
    from sqlalchemy import select

    from archiver.catalog import Recording

    with ws.catalog.session() as session:
        rows = list(session.scalars(select(Recording).order_by(Recording.id)))
        for row in rows:
            session.expunge(row)
    return rows


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_capacity_figures_the_warning_and_no_clearing_below_min_free(tmpfs, card: Path, tmp_path: Path):
    data = tmpfs("archive-disk", "48m") / "data"
    roots = tmp_path / "media"
    staging = tmpfs("card", "16m")
    shutil.copytree(card, staging, dirs_exist_ok=True)
    daemon = DaemonProcess(tmp_path, data, [roots],
                           extra='clear_after = "verified"\n[capacity]\nwarn_days = 1000000\nmin_free = "1 TiB"\n')
    try:
        (roots / "TA00716").mkdir(parents=True)
        mount("--bind", str(staging), str(roots / "TA00716"))
        wait_for(lambda: daemon.log().count("not cleared yet: the archive has less than capacity.min_free free") == 6,
                 60, "clearing refused")
        wait_for(lambda: "archive disk filling" in daemon.log(), 30, "the capacity warning")
    finally:
        assert daemon.stop() == 0
        subprocess.run(["umount", "-l", str(roots / "TA00716")], check=False)
    assert len([p for p in staging.rglob("*") if p.is_file()]) == 8  # nothing left the recorder
    assert "cleared from recorder" not in daemon.log()
    status = subprocess.run([str(ARCHIVER), "--config", str(daemon.config), "--data-dir", str(data), "status",
                             "--json"], capture_output=True, text=True, check=True)
    room = json.loads(status.stdout)["capacity"]
    st = os.statvfs(data / "archive")
    size = sum(p.stat().st_size for p in (data / "archive").rglob("*") if p.is_file() and "manifest" not in p.name)
    assert abs(room["free_bytes"] - st.f_bavail * st.f_frsize) < 1 << 20
    assert room["daily_growth_bytes"] == size // 30
    assert room["days_until_full"] == room["free_bytes"] // room["daily_growth_bytes"]
    assert room["low"] is True and room["warn_days"] == 1000000
    text = subprocess.run([str(ARCHIVER), "--config", str(daemon.config), "--data-dir", str(data), "status"],
                          capture_output=True, text=True, check=True).stdout
    assert "WARNING: fewer than capacity.warn_days = 1000000" in text


def test_a_rebuilt_catalog_keeps_the_tombstones(tmp_path: Path):
    data, config = _station(tmp_path, 12)
    when = "2022-09-02" + SHANGHAI_DAY
    request = _approved_request(data, config, when)
    env = {**os.environ, "ARCHIVER_CONFIG": str(config), "ARCHIVER_DATA_DIR": str(data), "ARCHIVER_NOW": when}
    archiver("retention", "purge", str(request), env=env, check=True)
    (data / "catalog.db").rename(tmp_path / "lost.db")
    rebuilt = archiver("rebuild-catalog", env=env)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    listed = json.loads(archiver("recordings", "list", "--json", env=env, check=True).stdout)
    assert len(listed) == 12 and all("purged" in r["flags"] for r in listed)
    verify = archiver("verify", "--json", env=env)
    assert json.loads(verify.stdout)["problems"] == []


def test_a_tombstone_without_its_purge_event_is_reported_as_deleted_evidence(tmp_path: Path):
    """Someone with the catalog in hand marks a recording purged and deletes its file: verify says so."""
    import sqlite3

    data, config = _station(tmp_path, 3)
    env = {**os.environ, "ARCHIVER_CONFIG": str(config), "ARCHIVER_DATA_DIR": str(data)}
    db = sqlite3.connect(data / "catalog.db")
    (rel,) = db.execute("select archive_path from recordings where id = 2").fetchone()
    db.execute("update recordings set purged_at = '2022-10-01 00:00:00' where id = 2")
    db.commit()
    db.close()
    path = data / rel
    path.parent.chmod(0o750)
    path.unlink()
    verify = archiver("verify", "--json", env=env)
    problems = json.loads(verify.stdout)["problems"]
    assert verify.returncode == 1
    assert any(p["kind"] == "custody_missing_event" and "marked purged, but no purge event" in p["detail"]
               for p in problems), problems


# -- the rules cannot be talked around ----------------------------------------------------------------
def _run(data: Path, config: Path, when: str, *args: str) -> subprocess.CompletedProcess:
    return archiver(*args, env={"ARCHIVER_CONFIG": str(config), "ARCHIVER_DATA_DIR": str(data), "ARCHIVER_NOW": when})


def test_a_request_is_used_once_and_what_it_skipped_needs_a_new_one(tmp_path: Path):
    """Approved and run, a request skips a recording held meanwhile; once the hold is lifted, running the same
    request again purges nothing: a new request and a second person's approval are needed."""
    data, config = _station(tmp_path, 3)
    when = "2022-09-02" + SHANGHAI_DAY
    request = _approved_request(data, config, when)
    assert _run(data, config, when, "hold", "add", "2", "--reason", "appeal pending").returncode == 0
    first = json.loads(_run(data, config, when, "retention", "purge", str(request), "--json").stdout)
    assert first["purged"] == 2 and [s["id"] for s in first["skipped"]] == [2]
    assert _run(data, config, when, "hold", "remove", "2", "--reason", "appeal withdrawn").returncode == 0
    again = _run(data, config, when, "retention", "purge", str(request))
    assert again.returncode == 0 and "was carried out already (2 recording(s) purged)" in again.stdout
    assert (data / json.loads(_run(data, config, when, "recordings", "show", "2", "--json").stdout)
            ["archive_path"]).exists()
    assert _run(data, config, when, "verify").returncode == 0
    fresh = _approved_request(data, config, when)  # the lawful way: a new request, a second person
    done = json.loads(_run(data, config, when, "retention", "purge", str(fresh), "--json").stdout)
    assert done["purged"] == 1 and _run(data, config, when, "verify").returncode == 0


def test_a_request_left_too_long_expires(tmp_path: Path):
    data, config = _station(tmp_path, 2)
    request = _approved_request(data, config, "2022-09-02" + SHANGHAI_DAY)
    late = _run(data, config, "2022-09-10" + SHANGHAI_DAY, "retention", "purge", str(request))
    assert late.returncode == 2 and f"purge request {request} was made more than 7 day(s) ago" in late.stderr
    listed = json.loads(_run(data, config, "2022-09-10" + SHANGHAI_DAY, "retention", "requests", "--json").stdout)
    assert [r["state"] for r in listed] == ["expired"]
    assert all((data / r["archive_path"]).exists() for r in json.loads(
        _run(data, config, "2022-09-10" + SHANGHAI_DAY, "recordings", "list", "--json").stdout))


def _forge(data: Path, config: Path, action: str, subject: dict, details: dict, user: str = "root") -> None:
    """What the key's holder (root, the service user) can do by hand: append a signed event."""
    ws = open_workspace(load_config(config, data), upgrade=False)
    try:
        ws.acting({"user": user, "uid": 0, "role": "root"}).custody.append(action, subject, details)
    finally:
        ws.close()


def _unapproved(data: Path, config: Path, when: str) -> list[dict]:
    result = _run(data, config, when, "verify", "--json")
    assert result.returncode == 1, result.stdout
    return [p for p in json.loads(result.stdout)["problems"] if p["kind"] == "custody_unapproved_purge"]


def test_a_signed_purge_without_two_people_behind_it_is_reported_by_verify(tmp_path: Path):
    """The key's holder signs a purge naming a request that never existed, one approved by the requester
    alone, and one for a held recording: verify names each recording, exit 1."""
    data, config = _station(tmp_path, 3)
    when = "2022-09-02" + SHANGHAI_DAY
    rows = json.loads(_run(data, config, when, "recordings", "list", "--json").stdout)
    shas = [r["sha256"] for r in rows]
    _forge(data, config, "purge", {"sha256": shas[0]}, {"request": 999, "archive_path": rows[0]["archive_path"]})
    _forge(data, config, "purge_request", {"request": 500}, {"items": [{"sha256": shas[1]}]})
    _forge(data, config, "purge_approve", {"request": 500}, {})  # by the same person
    _forge(data, config, "purge", {"sha256": shas[1]}, {"request": 500, "archive_path": rows[1]["archive_path"]})
    assert _run(data, config, when, "hold", "add", str(rows[2]["id"]), "--reason", "court order").returncode == 0
    _forge(data, config, "purge_request", {"request": 501}, {"items": [{"sha256": shas[2]}]})
    _forge(data, config, "purge_approve", {"request": 501}, {}, user="auditor-wang")
    _forge(data, config, "purge", {"sha256": shas[2]}, {"request": 501, "archive_path": rows[2]["archive_path"]})
    problems = _unapproved(data, config, when)
    details = [p["detail"] for p in problems]
    assert len(problems) == 3 and all(p["path"] == "custody.jsonl" for p in problems)
    assert shas[0] in details[0] and "no purge request 999 came before it" in details[0]
    assert shas[1] in details[1] and "purge request 500 was not approved by a second person" in details[1]
    assert shas[2] in details[2] and "was held (hold 1) at the time" in details[2]


def test_a_request_used_twice_by_a_forged_event_is_reported(tmp_path: Path):
    data, config = _station(tmp_path, 3)
    when = "2022-09-02" + SHANGHAI_DAY
    request = _approved_request(data, config, when)
    assert _run(data, config, when, "hold", "add", "3", "--reason", "appeal").returncode == 0
    _run(data, config, when, "retention", "purge", str(request))
    assert _run(data, config, when, "verify").returncode == 0  # the lawful purge verifies
    held = json.loads(_run(data, config, when, "recordings", "show", "3", "--json").stdout)
    _forge(data, config, "purge", {"sha256": held["sha256"]}, {"request": request, "archive_path": "x"})
    (problem,) = _unapproved(data, config, when)
    assert held["sha256"] in problem["detail"] and f"purge request {request} was used up at seq" in problem["detail"]


CASE = "后叶罚〔2022〕12号"
CASE_FILE = ("case_no,title,stage,officers,start,end,recording_required\n"
             f"{CASE},占道经营,调查取证,{{officer}},2022-11-03T09:36:21,2022-11-03T09:36:45,是\n")


def test_a_held_case_keeps_its_footage_whatever_is_done_to_its_links(cli, recorder: Path, tmp_path: Path):
    """A legal officer holds a case; re-importing it with another officer, unlinking a held recording or
    removing the case would take its footage out of the hold: each is refused with one line naming the hold,
    and the links stay as they were."""
    assert cli("ingest", recorder).exit_code == 0
    cases = tmp_path / "cases.csv"
    cases.write_text(CASE_FILE.format(officer="JX0227"))
    assert cli("cases", "import", cases).exit_code == 0
    linked = {r["id"] for r in json.loads(cli("recordings", "list", "--case", CASE, "--json").stdout)}
    assert len(linked) == 6
    assert cli("hold", "add", "--case", CASE, "--reason", "appeal pending").exit_code == 0
    cases.write_text(CASE_FILE.format(officer="JX9999"))  # the automatic links would fall to zero
    reimport = cli("cases", "import", cases)
    assert reimport.exit_code == 2 and reimport.stdout == ""
    assert reimport.stderr.startswith(f"Error: case {CASE} is held (hold 1: appeal pending): this would take "
                                      "recording(s) #") and reimport.stderr.count("\n") == 1
    unlink = cli("cases", "unlink", CASE, str(min(linked)))
    assert unlink.exit_code == 2 and "is held (hold 1: appeal pending)" in unlink.stderr
    remove = cli("cases", "remove", CASE, "--reason", "mistake")
    assert remove.exit_code == 2 and "it cannot be removed while the hold stands" in remove.stderr
    assert {r["id"] for r in json.loads(cli("recordings", "list", "--case", CASE, "--json").stdout)} == linked
    plan = _plan(cli, "2030-01-01" + SHANGHAI_DAY)
    assert not linked & {i["id"] for i in plan["due_now"]}
    # linking more is fine (the hold covers it too); lifted, the hold no longer pins anything
    assert cli("hold", "remove", "--case", CASE, "--reason", "appeal decided").exit_code == 0
    assert cli("cases", "import", cases).exit_code == 0
    assert cli("cases", "remove", CASE, "--reason", "imported by mistake").exit_code == 0
    assert json.loads(cli("hold", "list", "--json").stdout) == []


def test_backup_objects_dropped_without_a_proven_purge_are_reported(tmp_path: Path):
    data, config = _station(tmp_path, 2)
    when = "2022-09-02" + SHANGHAI_DAY
    rows = json.loads(_run(data, config, when, "recordings", "list", "--json").stdout)
    _forge(data, config, "backup_drop_purged", {"target": "s3://county/houye"},
           {"objects": [{"object": f"{rows[0]['sha256']}.age", "version": "v1", "plain_sha256": rows[0]["sha256"]}]})
    (problem,) = _unapproved(data, config, when)
    assert rows[0]["sha256"] in problem["detail"] and "taken off s3://county/houye" in problem["detail"]
