"""The station service, with real throwaway users (useradd), a real daemon and a real Unix socket:
who may do what, officers' own footage, the custody actor, retrieval, output identical to a direct
run, many clients while a recorder docks, and clients that misbehave."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import archive_problems
from daemon_util import ARCHIVER, catalog_rows, wait_for
from station_util import BIG, CASE_A, CASE_B, CASE_WRONG, CASES, Station, serve_station

from archiver.dock.simulate import RecorderSpec, make_recorder
from archiver.operations.access import MATRIX, ROLES, WEB_ONLY


@pytest.fixture(scope="module")
def station(card: Path):
    yield from serve_station(card)


def _ids(result: subprocess.CompletedProcess) -> dict[str, int]:
    return {r["original_path"].rsplit("/", 1)[-1]: r["id"] for r in json.loads(result.stdout)}


# -- 1. every role: what the matrix allows runs, anything else is refused ----------------------------
def _command_lines(st: Station, who: str) -> dict[str, list[object]]:
    """A harmless command line for every command of the matrix, run in `who`'s home folder."""
    home = st.home(who)
    cases = home / "cases.csv"
    cases.write_text(CASES)
    shutil.chown(cases, st.users[who])
    people = home / "people.csv"
    people.write_text("姓名,执法证号,记录仪编号\n王建国,JX0227,TA00716\n")
    shutil.chown(people, st.users[who])
    return {
        "init": ["init"], "ingest": ["ingest", st.base / "cards" / "one"], "daemon": ["daemon"],
        "devices add": ["devices", "add", "TA00716", "--label", "REC0716", "--officer", "JX0227"],
        "devices list": ["devices", "list"],
        "recordings list": ["recordings", "list", "--json"], "recordings show": ["recordings", "show", "1"],
        "recordings get": ["recordings", "get", "1", "got", "--reason", "复核"],
        "cases import": ["cases", "import", "cases.csv"], "cases link": ["cases", "link", CASE_A, "1"],
        "cases unlink": ["cases", "unlink", CASE_B, "1"], "cases list": ["cases", "list"],
        "cases remove": ["cases", "remove", CASE_WRONG, "--reason", "导入错误"],
        "cases search": ["cases", "search", "后叶"], "cases show": ["cases", "show", CASE_A],
        "cases check": ["cases", "check", CASE_A], "cases report": ["cases", "report", CASE_A, "--html", "r.html"],
        "people import": ["people", "import", "people.csv"], "people list": ["people", "list"],
        "recordings set-time": ["recordings", "set-time", "1", "2022-11-03 10:00", "--reason", "复核"],
        "verify": ["verify"], "verify-export": ["verify-export", "bag"], "status": ["status"],
        "export": ["export", CASE_A, "bag"], "keys show": ["keys", "show"], "custody show": ["custody", "show"],
        "backup run": ["backup", "run"], "backup status": ["backup", "status"], "backup verify": ["backup", "verify"],
        "backup restore": ["backup", "restore", "--identity", "identity.txt", "1", "restored"],
        "rebuild-catalog": ["rebuild-catalog"], "access show": ["access", "show"],
        "access check": ["access", "check", st.users["legal"]],
        "recordings classify": ["recordings", "classify", "1", "major", "--reason", "复核"],
        "hold add": ["hold", "add", "1", "--reason", "复核"],
        "hold remove": ["hold", "remove", "1", "--reason", "复核"],
        "hold list": ["hold", "list"], "retention plan": ["retention", "plan"],
        "retention requests": ["retention", "requests"], "retention purge": ["retention", "purge", "999999"],
        "retention approve": ["retention", "approve", "999999"],
        "report year": ["report", "year", "2022"], "report period": ["report", "period", "--since", "2022-11-01",
                                                                     "--until", "2022-12-01"],
        "sync": ["sync"], "central": ["central"], "web": ["web"],
        "stations add": ["stations", "add", f"s-{who}", "--key", "ed25519:" + "A" * 43 + "="],
        "stations list": ["stations", "list"], "stations check": ["stations", "check"],
    }


# What an allowed command may still answer without having been refused (it ran, and said why not).
_RAN_BUT_SAID_NO = {"rebuild-catalog": "exists: move it aside", "daemon": "the daemon is running already",
                    "retention purge": "no purge request 999999", "retention approve": "no purge request 999999",
                    "sync": "no central catalog configured",
                    "recordings set-time": "is read from its file name",
                    "central": "runs under its own unit", "web": "runs as its own process"}


@pytest.mark.parametrize("role", ROLES)
def test_each_role_runs_every_command_the_matrix_allows_and_is_refused_the_rest(station: Station, role: str):
    lines = _command_lines(station, role)
    assert set(lines) == set(MATRIX) - WEB_ONLY, "every command of the matrix has a command line here"
    first, last = ["backup run", "export"], ["verify-export", "backup restore"]
    order = first + sorted(set(MATRIX) - WEB_ONLY - {*first, *last}) + last
    before = len(station.events())
    ran, refused = [], []
    for command in order:
        result = station.run(role, *lines[command])
        allowed = role in MATRIX[command]
        if allowed and command in _RAN_BUT_SAID_NO:
            assert _RAN_BUT_SAID_NO[command] in result.stderr, (command, result.stderr)
            refused += [command] if result.returncode == 4 else []
        elif allowed:
            assert result.returncode in (0, 1), (command, result.stderr)
            assert "Error:" not in result.stderr, (command, result.stderr)
            ran.append(command)
        else:
            user = station.users[role]
            assert result.returncode == 4, (command, result.returncode, result.stderr)
            assert result.stderr.startswith(f"Error: {user} may not run '{command}': it needs the role "), result.stderr
            assert result.stdout == "" and result.stderr.count("\n") == 1
            refused.append(command)
    assert ran and refused
    # A person's refusals are one custody event a minute: the first now, the rest counted into the next one.
    denied = [e for e in station.events()[before:] if e["action"] == "denied"]
    assert [(e["subject"]["command"], e["details"]["count"]) for e in denied] == [(refused[0], 1)]
    assert {e["actor"]["user"] for e in denied} == {station.users[role]}
    if "recordings get" in ran:
        got = station.home(role) / "got"
        (name,) = os.listdir(got)
        assert hashlib.sha256((got / name).read_bytes()).hexdigest() == \
            json.loads(station.root("recordings", "show", "1", "--json").stdout)["sha256"]
    if "export" in ran:
        assert station.root("verify-export", station.home(role) / "bag").returncode == 0
        assert (station.home(role) / "bag").stat().st_uid == int(_uid(station.users[role]))


def _uid(user: str) -> str:
    return subprocess.run(["id", "-u", user], capture_output=True, text=True, check=True).stdout.strip()


def test_a_user_in_no_role_is_refused_everything_with_a_denied_event(station: Station):
    before = len(station.events())
    user = station.users["stranger"]
    for args in (["recordings", "list"], ["status"], ["cases", "show", CASE_A], ["access", "show"],
                 ["cases", "import", "absent.csv"], ["verify-export", "absent-bag"]):  # refused before a file is opened
        result = station.run("stranger", *args)
        assert result.returncode == 4 and result.stdout == ""
        assert result.stderr == (f"Error: {user} holds no archiver role: an administrator adds them to one (usermod "
                                 f"-aG {station.groups['clerk']} {user}; see 'archiver access show')\n")
    (denied,) = station.events()[before:]  # one a minute, however many
    assert denied["action"] == "denied" and denied["subject"] == {"command": "recordings list"}
    assert denied["actor"]["user"] == user and denied["actor"]["role"] is None
    helped = station.run("stranger", "--help")  # the command line's own help is no operation: nothing to refuse
    assert helped.returncode == 0 and "Usage: archiver" in helped.stdout


def test_each_person_is_answered_in_their_own_language(station: Station):
    """The daemon speaks English; a person whose locale is Chinese gets Chinese through it, refusals
    included, while the custody log keeps one language and --json stays English."""
    before = len(station.events())
    user, zh = station.users["officer2"], "zh_CN.UTF-8"  # refused nothing yet: the refusal is logged at once
    refused = station.run("officer2", "status", lang=zh)
    assert refused.returncode == 4 and refused.stderr.startswith(f"错误：{user} 不能运行 'status'：需要角色 ")
    (denied,) = station.events()[before:]
    assert denied["details"]["reason"].startswith(f"{user} may not run 'status': it needs the role")
    chinese = station.run("clerk", "recordings", "list", lang=zh, check_output=True).stdout
    english = station.run("clerk", "recordings", "list", check_output=True).stdout
    assert "原始路径" in chinese and "个记录文件" in chinese and "Original path" in english
    assert station.run("clerk", "--help", lang=zh).stdout.startswith("用法: archiver [OPTIONS] COMMAND")
    assert station.run("clerk", "recordings", "list", "--json", lang=zh, check_output=True).stdout == \
        station.run("clerk", "recordings", "list", "--json", check_output=True).stdout


# -- 2. an officer's own -----------------------------------------------------------------------------
def test_an_officer_sees_their_own_recordings_and_cases_and_no_one_elses(station: Station):
    mine = json.loads(station.run("officer", "recordings", "list", "--json", check_output=True).stdout)
    everyone = json.loads(station.root("recordings", "list", "--json").stdout)
    assert {r["officer_no"] for r in everyone} == {"JX0227", "JX0555"}
    assert mine == [r for r in everyone if r["officer_no"] == "JX0227"]
    theirs = next(r for r in everyone if r["officer_no"] == "JX0555")
    # Someone else's recording or case is answered exactly as one that does not exist.
    for other, missing in ((theirs["id"], 999999), (theirs["sha256"][:12], "0123456789ab")):
        hidden, absent = station.run("officer", "recordings", "show", other), \
            station.run("officer", "recordings", "show", missing)
        assert (hidden.returncode, hidden.stdout) == (absent.returncode, absent.stdout) == (2, "")
        assert hidden.stderr.replace(str(other), "REF") == absent.stderr.replace(str(missing), "REF")
    hidden, absent = station.run("officer", "cases", "show", CASE_B), station.run("officer", "cases", "show", "无此案")
    assert (hidden.returncode, hidden.stdout) == (absent.returncode, absent.stdout) == (2, "")
    assert hidden.stderr.replace(CASE_B, "N") == absent.stderr.replace("无此案", "N")
    assert station.run("officer", "recordings", "list", "--case", CASE_B).stderr == \
        station.run("officer", "recordings", "list", "--case", "无此案").stderr.replace("无此案", CASE_B)
    assert station.run("officer", "recordings", "list", "--officer", "JX0555").returncode == 4
    own = station.run("officer", "recordings", "show", mine[0]["id"], "--json", check_output=True)
    assert json.loads(own.stdout)["sha256"] == mine[0]["sha256"]
    cases = json.loads(station.run("officer", "cases", "list", "--json", check_output=True).stdout)
    assert [c["case_no"] for c in cases] == [CASE_A]
    assert station.run("officer", "cases", "show", CASE_A).returncode == 0
    assert [c["case_no"] for c in json.loads(station.run("officer2", "cases", "search", "后叶", "--json").stdout)] \
        == [CASE_B]
    assert station.run("officer", "recordings", "get", mine[0]["id"], "x", "--reason", "r").returncode == 4


# -- 3. who did it -----------------------------------------------------------------------------------
def test_the_custody_actor_is_the_real_user_and_the_log_still_verifies(station: Station):
    before = len(station.events())
    legal, auditor = station.users["legal"], station.users["auditor"]
    home = station.home("legal")
    (home / "cases.csv").write_text(CASES)
    shutil.chown(home / "cases.csv", legal)
    station.run("legal", "cases", "import", "cases.csv", check_output=True)
    station.run("legal", "cases", "link", CASE_B, "2", check_output=True)
    station.run("legal", "cases", "show", CASE_A, check_output=True)
    station.run("legal", "recordings", "get", "2", "actor-test", "--reason", "行政复议 调阅", check_output=True)
    station.run("auditor", "export", CASE_B, "actor-bag", check_output=True)
    new = station.events()[before:]
    by_action = {e["action"]: e for e in new}
    for action, user, role in (("case_import", legal, "legal"), ("link", legal, "legal"),
                               ("lookup", legal, "legal"), ("retrieve", legal, "legal"),
                               ("export", auditor, "auditor")):
        assert by_action[action]["actor"] == {"user": user, "uid": int(_uid(user)), "role": role}, action
    retrieval = by_action["retrieve"]
    assert retrieval["details"]["reason"] == "行政复议 调阅"
    assert retrieval["details"]["dest"].startswith(str(home / "actor-test") + "/")
    assert by_action["export"]["details"]["dest"] == str(station.home("auditor") / "actor-bag")
    link_by = catalog_rows(station.data, "SELECT by FROM case_links WHERE recording_id = 2 AND kind = 'linked'")
    assert link_by == [(legal,)]
    trail = json.loads(station.run("auditor", "custody", "show", "--user", legal, "--action", "retrieve",
                                   "--json").stdout)
    assert retrieval in trail and {(e["action"], e["actor"]["user"]) for e in trail} == {("retrieve", legal)}
    verified = station.root("verify", "--json")
    assert verified.returncode == 0 and json.loads(verified.stdout)["problems"] == []


# -- 4. retrieval ------------------------------------------------------------------------------------
def test_retrieval_is_byte_identical_needs_a_reason_and_strangers_get_nothing(station: Station):
    rows = {r["id"]: r for r in json.loads(station.root("recordings", "list", "--json").stdout)}
    big = next(r for r in rows.values() if r["original_path"].endswith(BIG))
    home = station.home("auditor")
    no_reason = station.run("auditor", "recordings", "get", big["id"], "nothing")
    assert no_reason.returncode == 2 and "Missing option '--reason'" in no_reason.stderr
    assert not (home / "nothing").exists()
    blank = station.run("auditor", "recordings", "get", big["id"], "nothing", "--reason", "  ")
    assert blank.returncode == 2 and not (home / "nothing").exists()
    done = station.run("auditor", "recordings", "get", big["id"], "--case", CASE_A, "case-files", "--reason", "x")
    assert done.returncode == 2  # refs or --case, not both
    done = station.run("auditor", "recordings", "get", "--case", CASE_A, "case-files", "--reason", "案件复核",
                       check_output=True)
    case_ids = json.loads(station.root("recordings", "list", "--case", CASE_A, "--json").stdout)
    assert sorted(os.listdir(home / "case-files")) == sorted(r["original_path"].rsplit("/", 1)[-1]
                                                             for r in case_ids)
    station.run("auditor", "recordings", "get", big["id"], "files", "--reason", "复核", check_output=True)
    copy = home / "files" / BIG
    archived = station.data / big["archive_path"]
    assert copy.read_bytes() == archived.read_bytes()
    assert copy.stat().st_uid == int(_uid(station.users["auditor"]))
    assert f"sha256 {big['sha256']} checked" in station.run("auditor", "recordings", "get", big["id"], "files",
                                                            "--reason", "again").stdout  # identical: kept
    copy.chmod(0o640)
    with copy.open("r+b") as fh:
        fh.write(b"X")
    clash = station.run("auditor", "recordings", "get", big["id"], "files", "--reason", "again")
    assert clash.returncode == 3 and "already exists with other content" in clash.stderr
    with archived.open("r+b") as fh:  # a flipped bit in the archive: the copy is refused, nothing is kept
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 1]))
    try:
        rotten = station.run("auditor", "recordings", "get", big["id"], "rotten", "--reason", "复核")
    finally:
        with archived.open("r+b") as fh:
            fh.seek(1000)
            fh.write(byte)
    assert rotten.returncode == 2 and f"the copy of {BIG} does not match the catalog" in rotten.stderr
    assert os.listdir(home / "rotten") == []
    for who in ("stranger", "clerk", "officer"):
        user = station.users[who]
        cat = subprocess.run(["runuser", "-u", user, "--", "cat", str(archived)], capture_output=True)
        assert cat.returncode != 0 and cat.stdout == b""
        assert station.run(who, "recordings", "get", big["id"], "stolen", "--reason", "x").returncode == 4
        assert not (station.home(who) / "stolen").exists()


def test_the_service_never_reads_or_writes_a_path_for_someone_who_could_not(station: Station):
    secret = station.base / "secret-cases.csv"
    secret.write_text(CASES)
    secret.chmod(0o600)  # root's alone
    result = station.run("legal", "cases", "import", secret)  # the person's own process cannot open it
    assert result.returncode == 2 and f"File '{secret}' is not readable." in result.stderr
    closed = station.base / "closed"
    shutil.copytree(station.base / "cards" / "one", closed)
    (closed / "RECORD").chmod(0o700)
    result = station.run("clerk", "ingest", closed)
    assert result.returncode == 2 and "is not readable by" in result.stderr
    report = station.run("legal", "cases", "report", CASE_A, "--html", station.base / "planted.html")
    assert report.returncode != 0 and not (station.base / "planted.html").exists()
    export = station.run("auditor", "export", CASE_A, station.base / "planted-bag")
    assert export.returncode != 0 and not (station.base / "planted-bag").exists()
    for flag in (["--data-dir", station.base / "elsewhere"], ["--config", secret]):
        result = station.run("auditor", *flag, "status")
        assert "not talking" not in result.stderr and result.returncode != 0
    assert not (station.base / "elsewhere").exists()
    assert not list(station.data.glob(".service-*"))


# -- 5. the same answer as a direct run --------------------------------------------------------------
@pytest.mark.parametrize("args", [["recordings", "list", "--json"], ["recordings", "list"], ["cases", "show", CASE_A],
                                  ["cases", "show", CASE_A, "--json"], ["cases", "check", CASE_A, CASE_B],
                                  ["recordings", "show", "999999"], ["cases", "show", "no such case"],
                                  ["cases", "frobnicate"], ["recordings", "list", "--since", "yesterday"]])
def test_answers_through_the_service_are_those_of_a_direct_run(station: Station, args: list[str]):
    served = station.run("auditor", *args)
    direct = station.root(*args)
    assert (served.returncode, served.stdout, served.stderr) == (direct.returncode, direct.stdout, direct.stderr)


# -- 6. load and misbehaving clients -----------------------------------------------------------------
def test_twenty_clients_and_a_large_retrieval_while_a_recorder_docks(station: Station):
    expected = {
        ("legal", "cases", "show", CASE_A, "--json"): station.root("cases", "show", CASE_A, "--json").stdout,
        ("auditor", "recordings", "list", "--case", CASE_A, "--json"):
            station.root("recordings", "list", "--case", CASE_A, "--json").stdout,
    }
    big = next(r for r in json.loads(station.root("recordings", "list", "--json").stdout)
               if r["original_path"].endswith(BIG))
    shift = station.base / "shift"
    make_recorder(shift, RecorderSpec(serial="TA00777", officer="JX0777", segments=6,
                                      start=RecorderSpec.start.replace(year=2023)))
    # Seen and archived (its photos and audio are byte-identical to the first card's: archived once)
    count = "SELECT count(DISTINCT original_path) FROM sightings WHERE original_path LIKE '%TA00777%'"
    failures: list[str] = []
    answers = [0]
    stop = threading.Event()

    def lookups(n: int) -> None:
        (who, *args), want = list(expected.items())[n % 2]
        while not stop.is_set():
            got = station.run(who, *args)
            if got.returncode != 0 or got.stdout != want:
                failures.append(f"{args}: {got.returncode} {got.stderr}")
            answers[0] += 1

    def retrieval() -> None:
        got = station.run("legal", "recordings", "get", big["id"], f"load-{time.monotonic_ns()}", "--reason", "load")
        if got.returncode != 0 or f"sha256 {big['sha256']} checked" not in got.stdout:
            failures.append(f"retrieval: {got.stderr}")

    threads = [threading.Thread(target=lookups, args=(n,)) for n in range(19)] + [threading.Thread(target=retrieval)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: answers[0] >= 20, 60, "the clients' first answers")
        shift.rename(station.inbox / "shift")  # docked while the clients run
        wait_for(lambda: catalog_rows(station.data, count)[0][0] == 6 + 1 + 2, 180,  # segments, audio, photos
                 "the docked recorder's ingest", step=0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
    assert failures == []
    assert answers[0] >= 19
    assert "FAILED" not in station.daemon.log() and "files pending" not in station.daemon.log()


def _raw(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    sock.settimeout(15)
    return sock


def _dropped(sock: socket.socket, data: bytes) -> bool:
    """Send `data`; True when the service hangs up without a word (end of stream, or a reset)."""
    try:
        sock.sendall(data)
        return sock.recv(100) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        sock.close()


def test_garbage_oversized_requests_and_killed_clients_leave_the_service_running(station: Station):
    path = station.base / "run" / "archiver.sock"
    assert _dropped(_raw(path), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 10)
    assert _dropped(_raw(path), struct.pack(">Ic", 100 * 1024 * 1024, b"Q") + b"{" * 65536)
    assert _dropped(_raw(path), struct.pack(">Ic", 4, b"Q") + b"\xff\xfe\x00\x01")
    assert _dropped(_raw(path), struct.pack(">Ic", 2, b"Q") + b"[]")
    half = _raw(path)
    half.sendall(struct.pack(">Ic", 50, b"Q") + b'{"argv": [')
    half.close()
    # A client killed while the answer streams: a large table, the reader gone after the first bytes.
    client = subprocess.Popen(["runuser", "-u", station.users["auditor"], "--", "env", "-i",
                               f"ARCHIVER_CONFIG={station.daemon.config}", ARCHIVER, "custody", "show"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=station.home("auditor"),
                              start_new_session=True)
    client.stdout.read(10)
    os.killpg(client.pid, signal.SIGKILL)
    client.wait()
    # A slow client, silent after connecting, is dropped once its time is up (and holds nothing meanwhile).
    silent = _raw(path)
    still = station.run("clerk", "status", "--json", check_output=True)
    assert json.loads(still.stdout)["recordings"] > 0
    silent.close()
    log = station.daemon.log()
    assert log.count("service: request dropped") >= 3
    assert station.daemon.proc.poll() is None


def test_a_socket_served_by_someone_else_is_not_trusted(station: Station, tmp_path: Path):
    """A user who plants a socket where a client looks (a config pointing elsewhere) gets nothing from it."""
    impostor, victim = station.users["stranger"], station.users["legal"]
    trap_dir = station.home("stranger") / "trap"
    trap_dir.mkdir()
    shutil.chown(trap_dir, impostor)
    trap_dir.chmod(0o755)
    station.home("stranger").chmod(0o755)
    sock_path = trap_dir / "fake.sock"
    entry = pwd.getpwnam(impostor)
    server = subprocess.Popen(["/usr/bin/python3", "-c",
                               "import socket,sys,time\ns=socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\n"
                               "import os; os.chmod(sys.argv[1],0o777)\ns.listen(1)\nc,_=s.accept()\n"
                               "print(c.recv(65536), flush=True)\ntime.sleep(5)", str(sock_path)],
                              stdout=subprocess.PIPE, text=True, user=entry.pw_uid, group=entry.pw_gid,
                              extra_groups=[])
    try:
        wait_for(sock_path.exists, 10, "the impostor's socket")
        config = station.home("legal") / "evil.toml"
        config.write_text(f'[service]\nsocket = "{sock_path}"\n')
        shutil.chown(config, victim)
        result = subprocess.run(["runuser", "-u", victim, "--", "env", "-i", f"ARCHIVER_CONFIG={config}", ARCHIVER,
                                 "recordings", "get", "1", "x", "--reason", "secret reason"],
                                capture_output=True, text=True, cwd=station.home("legal"), timeout=30)
        assert result.returncode == 3 and "neither root nor the service user: not talking to it" in result.stderr
    finally:
        server.kill()
        out = server.communicate()[0]
        station.home("stranger").chmod(0o700)
    assert "secret reason" not in out


def test_a_held_case_keeps_its_footage_against_an_admins_reimport(station: Station):
    """A legal officer holds a case; an admin re-imports the case file with another officer on it (the
    automatic links would fall to zero) and then tries to remove the case: both refused, the footage stays."""
    station.run("legal", "hold", "add", "--case", CASE_A, "--reason", "appeal pending", check_output=True)
    before = json.loads(station.root("recordings", "list", "--case", CASE_A, "--json").stdout)
    assert before
    changed = station.home("admin") / "changed.csv"
    changed.write_text(CASES.replace("JX0227", "JX9999"))
    shutil.chown(changed, station.users["admin"])
    refused = station.run("admin", "cases", "import", "changed.csv")
    assert refused.returncode == 2 and refused.stdout == "" and refused.stderr.count("\n") == 1
    assert f"Error: case {CASE_A} is held (hold " in refused.stderr and "appeal pending" in refused.stderr
    removed = station.run("admin", "cases", "remove", CASE_A, "--reason", "mistake")
    assert removed.returncode == 2 and "cannot be removed while the hold stands" in removed.stderr
    assert json.loads(station.root("recordings", "list", "--case", CASE_A, "--json").stdout) == before
    station.run("legal", "hold", "remove", "--case", CASE_A, "--reason", "appeal decided", check_output=True)


# -- 6. retention: two people, each their own (last: it purges the station's unlinked footage) ----------
def test_a_purge_takes_two_different_people_and_leaves_tombstones_that_verify(station: Station):
    """An admin requests, an admin cannot approve, the requester cannot approve their own request (root
    here, run directly), an auditor can; the purge then removes exactly what was listed."""
    plan = json.loads(station.run("auditor", "retention", "plan", "--json", check_output=True).stdout)
    due = {i["id"] for i in plan["due_now"]}
    assert due and station.run("clerk", "retention", "plan").returncode == 4  # not the clerk's to see
    assert station.run("auditor", "retention", "purge", "--request").returncode == 4  # nor the auditor's to ask
    made = json.loads(station.run("admin", "retention", "purge", "--request", "--json", check_output=True).stdout)
    assert {i["id"] for i in made["items"]} == due
    assert station.run("admin", "retention", "approve", made["id"]).returncode == 4  # not an approver's role
    early = station.run("admin", "retention", "purge", made["id"])
    assert early.returncode == 2 and "must be approved by a second person first" in early.stderr
    mine = station.root("retention", "purge", "--request", "--json")
    own = json.loads(mine.stdout)["id"]
    refused = station.root("retention", "approve", own)
    assert refused.returncode == 4 and f"root requested purge {own}" in refused.stderr
    assert station.run("auditor", "retention", "approve", made["id"], check_output=True)
    done = json.loads(station.run("admin", "retention", "purge", made["id"], "--json", check_output=True).stdout)
    assert done["purged"] == len(due) and done["skipped"] == []
    again = station.run("admin", "retention", "purge", made["id"], check_output=True)  # a request is used once
    assert f"purge request {made['id']} was carried out already ({len(due)} recording(s) purged)" in again.stdout
    listed = json.loads(station.root("recordings", "list", "--json").stdout)
    assert {r["id"] for r in listed if "purged" in r["flags"]} == due
    assert all(not (station.data / r["archive_path"]).exists() for r in listed if r["id"] in due)
    assert station.root("verify").returncode == 0
    assert archive_problems(station.data) == []
    events = station.events()
    (approval,) = [e for e in events if e["action"] == "purge_approve"]
    assert approval["actor"]["user"] == station.users["auditor"] and approval["details"]["requested_by"] == \
        station.users["admin"]
    purges = [e for e in events if e["action"] == "purge"]
    assert len(purges) == len(due) and {e["details"]["approved_by"] for e in purges} == {station.users["auditor"]}
    gone = next(r for r in listed if r["id"] in due)
    refused = station.run("legal", "recordings", "get", gone["id"], "x", "--reason", "look")
    assert refused.returncode == 2 and "was purged on" in refused.stderr
    # backed up and restored whole, the lawfully purged station still verifies: every purge proven by its log
    assert station.root("backup", "run").returncode == 0
    restored, key = station.base / "restored", station.root("keys", "show").stdout.strip()
    identity = station.base / "admin.key"
    identity.chmod(0o600)
    whole = station.root("backup", "restore", "--identity", identity, "--all", "--station-key", key, restored)
    assert whole.returncode == 0, whole.stderr
    assert station.daemon is not None
    checked = subprocess.run([ARCHIVER, "--config", str(station.daemon.config), "--data-dir", str(restored), "verify",
                              "--json"], capture_output=True, text=True)
    assert checked.returncode == 0 and json.loads(checked.stdout)["problems"] == [], checked.stdout
    (event,) = [json.loads(line) for line in (restored / "custody.jsonl").read_text().splitlines()
                if '"restore_station"' in line]
    assert event["details"]["pinned"] is True
