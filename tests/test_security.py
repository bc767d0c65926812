"""Evidence against hostile hands: a malicious backup target, a substituted object, deleted evidence
and a cut custody trail, a tampered data dir, a planted export staging folder, and (with real
throwaway users) who can read what. Each test is an attack as someone would try it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import unicodedata
from pathlib import Path

import pytest
from conftest import archive_problems

from archiver.archive.workspace import open_workspace
from archiver.backup.targets import on_every_target
from archiver.config import load_config
from archiver.dock.simulate import RecorderSpec, make_recorder
from archiver.ingest.options import IngestOptions
from archiver.ingest.pipeline import ingest
from archiver.ledger.keys import load_station_key, sign_record

DAY = "archive/2022/11/03"


def _rows(db: Path, sql: str, *args) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute(sql, args).fetchall()
        con.commit()
        return rows
    finally:
        con.close()


def _station_key(cli) -> str:
    return cli("keys", "show").stdout.strip()


def _everything_under(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")}


# -- 1. a malicious backup target --------------------------------------------------------------
@pytest.fixture
def forged(backed, cli, tmp_path: Path):
    """The real station backed up to t1; then an attacker who holds only the recipients' public keys
    runs a station of their own against the same target, so t1 also holds a newer snapshot, signed
    by the attacker's key, of a fake station."""
    run = backed["run"]
    assert run("backup", "run").exit_code == 0
    evil_dir, evil_card = tmp_path / "evil", tmp_path / "evil-card"
    evil_card.mkdir()
    for i in range(2):
        (evil_card / f"TB00009_JX0999_2023010110000{i}.MP4").write_bytes(os.urandom(4096))
    evil_config = tmp_path / "evil.toml"
    evil_config.write_text(backed["config"].read_text())
    assert cli("ingest", evil_card, data=evil_dir, config=evil_config).exit_code == 0
    assert cli("backup", "run", data=evil_dir, config=evil_config).exit_code == 0
    return {**backed, "evil_dir": evil_dir, "evil_config": evil_config}


def _rewrite_snapshot_catalog(target: Path, evil_dir: Path, recipients: list[str], paths: list[str]) -> None:
    """The attacker swaps their snapshot's catalog for one naming paths outside any data dir, and signs
    the descriptor again with their own key (they cannot sign with the station's)."""
    stamp = sorted(p.name for p in (target / "snapshots").iterdir())[-1]
    folder = target / "snapshots" / stamp
    catalog = evil_dir.parent / "evil-catalog.db"
    catalog.write_bytes((evil_dir / "catalog.db").read_bytes())
    for rec_id, path in enumerate(paths, 1):
        _rows(catalog, "UPDATE recordings SET archive_path = ? WHERE id = ?", path, rec_id)
    subprocess.run(["age", *sum((["-r", r] for r in recipients), []), "-o", str(folder / "catalog.age"),
                    str(catalog)], check=True)
    descriptor = json.loads((folder / "snapshot.json").read_text())
    data = (folder / "catalog.age").read_bytes()
    descriptor["parts"]["catalog"].update(plain_sha256=hashlib.sha256(catalog.read_bytes()).hexdigest(),
                                          ciphertext_sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    key = load_station_key(evil_dir, {os.geteuid()})
    (folder / "snapshot.json").write_text(json.dumps(sign_record(key, descriptor)))


def test_a_forged_snapshot_is_never_restored_and_nothing_lands_outside_dest(forged, cli, tmp_path: Path):
    run, target = forged["run"], forged["targets"][0]
    real_key = _station_key(cli)
    # backup verify (no key needed) reports the attacker's lines on the target
    checked = run("backup", "verify", "--json")
    kinds = {p["kind"] for p in json.loads(checked.stdout)["problems"]}
    assert checked.exit_code == 1 and {"backup_manifest_signature", "backup_unknown"} <= kinds

    # pinned to the real key, the newer fake station is passed over: the real one comes back
    station = tmp_path / "restored"
    restored = run("backup", "restore", "--identity", forged["office"], "--target", target, "--all",
                   "--station-key", real_key, station)
    assert restored.exit_code == 0, restored.output
    assert (station / "keys" / "station.pub").read_text().strip() == real_key
    assert cli("verify", data=station).exit_code == 0
    ours = {r["sha256"] for r in json.loads(cli("recordings", "list", "--json").stdout)}
    assert {r["sha256"] for r in json.loads(cli("recordings", "list", "--json", data=station).stdout)} == ours

    # a symlink planted on the way inside DEST: refused and named, nothing written through it
    planted = tmp_path / "planted"
    (planted / "archive").parent.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (planted / "archive").symlink_to(elsewhere)
    through = run("backup", "restore", "--identity", forged["office"], "--target", target, "1", planted)
    assert through.exit_code == 3 and f"{planted / 'archive'} is a symlink" in through.stderr
    assert list(elsewhere.iterdir()) == []

    # without a pinned key: refused
    refused = run("backup", "restore", "--identity", forged["office"], "--target", target, "--all",
                  tmp_path / "unpinned")
    assert refused.exit_code == 2 and "--station-key" in refused.stderr and not (tmp_path / "unpinned").exists()

    # a target holding only the fake station's snapshots restores nothing
    only_fake = tmp_path / "t3"
    only_fake.mkdir()
    config = tmp_path / "t3.toml"
    config.write_text(forged["evil_config"].read_text().replace(str(forged["targets"][0]), str(only_fake)))
    assert cli("backup", "run", data=forged["evil_dir"], config=config).exit_code == 0
    none = run("backup", "restore", "--identity", forged["office"], "--target", only_fake, "--all",
               "--station-key", real_key, tmp_path / "nothing")
    assert none.exit_code == 2 and "holds no snapshot signed by the station key" in none.stderr
    assert not (tmp_path / "nothing").exists()


def test_path_tricks_in_a_trusted_target_write_nothing_outside_dest(forged, cli, tmp_path: Path):
    target = forged["targets"][0]
    victim = tmp_path / "victim"
    _rewrite_snapshot_catalog(target, forged["evil_dir"], forged["recipients"], ["../../pwned", str(victim)])
    before = _everything_under(tmp_path)
    dest = tmp_path / "deep" / "dest"
    result = forged["run"]("backup", "restore", "--identity", forged["office"], "--target", target, "--all",
                           "--trust-target", dest)
    assert result.exit_code == 2 and "not a path in the archive; nothing restored" in result.stderr
    after = _everything_under(tmp_path)
    assert not dest.exists() and not victim.exists() and not (tmp_path / "pwned").exists()
    assert {p for p in after - before if "/.dest.restore-" not in p} == {str(tmp_path / "deep")}


# -- 2. a substituted object --------------------------------------------------------------------
def test_a_substituted_object_is_reported_with_and_without_a_key_and_frees_no_card(backed, cli, recorder: Path,
                                                                                  data_dir: Path, tmp_path: Path):
    run, target = backed["run"], backed["targets"][0]
    assert run("backup", "run").exit_code == 0
    rec = json.loads(cli("recordings", "show", "1", "--json").stdout)
    name = f"objects/{rec['sha256'][:2]}/{rec['sha256']}.age"
    other = tmp_path / "other.bin"
    other.write_bytes(os.urandom(rec["size"]))
    subprocess.run(["age", "-r", backed["recipients"][0], "-r", backed["recipients"][1], "-o", str(target / name),
                    str(other)], check=True)
    data = (target / name).read_bytes()
    lines = []
    for line in (target / "backup-manifest.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry["object"] == name:  # the attacker makes the manifest agree with the new object
            entry.update(size=len(data), ciphertext_sha256=hashlib.sha256(data).hexdigest(),
                         plain_sha256=hashlib.sha256(other.read_bytes()).hexdigest())
        lines.append(json.dumps(entry, sort_keys=True))
    (target / "backup-manifest.jsonl").write_text("\n".join(lines) + "\n")

    for args in ((), ("--identity", str(backed["office"]))):
        result = run("backup", "verify", "--json", *args)
        problems = {(p["kind"], p["path"]) for p in json.loads(result.stdout)["problems"]}
        assert result.exit_code == 1
        assert ("backup_mismatch", str(target / name)) in problems
        assert ("backup_manifest_signature", str(target / "backup-manifest.jsonl")) in problems

    # restoring it is refused: it is not the object the station wrote, and nothing lands in DEST
    out = tmp_path / "out"
    refused = run("backup", "restore", "--identity", backed["office"], "--target", target, "1", out)
    assert refused.exit_code == 2 and "is not the object the station wrote" in refused.stderr
    assert [p for p in out.rglob("*") if p.is_file()] == []

    # docking the card again with clear_after = "backed_up": the substituted recording stays on the card
    cfg = load_config(backed["config"], data_dir)
    ws = open_workspace(cfg, upgrade=False)
    try:
        report = ingest(ws, recorder, IngestOptions(
            clear=True,
            clear_when=lambda r: None if on_every_target(ws, r.id) else "not on every backup target"))
    finally:
        ws.close()
    assert report.cleared == 5
    left = sorted(str(p.relative_to(recorder)) for p in recorder.rglob("*") if p.is_file())
    assert rec["original_path"] in left and len(left) == 3  # it, and the two device files


# -- 3. deleted evidence and a cut custody trail ------------------------------------------------
def test_deleted_evidence_is_reported_as_an_orphan_ingest_event(cli, recorder: Path, data_dir: Path):
    assert cli("ingest", recorder).exit_code == 0
    rec = json.loads(cli("recordings", "show", "2", "--json").stdout)
    (data_dir / rec["archive_path"]).unlink()
    manifest = data_dir / DAY / "manifest-sha256.txt"
    manifest.chmod(0o640)
    manifest.write_text("".join(line + "\n" for line in manifest.read_text().splitlines() if rec["sha256"] not in line))
    db = data_dir / "catalog.db"
    for table in ("sightings", "action_links", "case_links", "backup_objects"):
        _rows(db, f"DELETE FROM {table} WHERE recording_id = ?", rec["id"])
    _rows(db, "DELETE FROM recordings WHERE id = ?", rec["id"])
    result = cli("verify", "--json")
    problems = json.loads(result.stdout)["problems"]
    assert result.exit_code == 1
    assert [p["kind"] for p in problems] == ["custody_orphan_event"] and rec["sha256"] in problems[0]["detail"]


def test_a_cut_custody_tail_is_caught_by_the_target_anchor_and_a_written_down_head(backed, cli, data_dir: Path):
    run = backed["run"]
    assert run("backup", "run").exit_code == 0
    written_down = json.loads(cli("status", "--json").stdout)["custody_head"]
    log = data_dir / "custody.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    kept = lines[:-4]
    log.write_bytes(b"".join(kept))
    last = kept[-1].rstrip(b"\n")
    _rows(data_dir / "catalog.db", "UPDATE custody_head SET seq = ?, hash = ?", json.loads(last)["seq"],
          hashlib.sha256(last).hexdigest())

    anchored = run("verify", "--json")
    truncated = [p for p in json.loads(anchored.stdout)["problems"] if p["kind"] == "custody_truncated"]
    assert anchored.exit_code == 1 and len(truncated) == 2  # one per target
    assert all("backup target" in p["detail"] for p in truncated)
    head = f"{written_down['seq']}:{written_down['hash']}"
    by_hand = cli("verify", "--json", "--head", head)  # no targets configured: the auditor's note catches it
    assert by_hand.exit_code == 1
    assert [p["kind"] for p in json.loads(by_hand.stdout)["problems"]] == ["custody_truncated"]
    assert cli("verify", "--head", "12:nothex").exit_code == 2


# -- 4. a tampered data dir, as root ------------------------------------------------------------
@pytest.fixture
def intruder():
    """A throwaway local user."""
    if os.geteuid() != 0:
        pytest.skip("needs root to add users")
    name = f"arcv-in-{os.getpid() % 100000}"
    subprocess.run(["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", name], check=True)
    yield name
    subprocess.run(["userdel", name], check=False)


def test_planted_symlinks_in_the_data_dir_are_refused(cli, recorder: Path, data_dir: Path, tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert cli("init").exit_code == 0
    (data_dir / DAY).mkdir(parents=True)
    (data_dir / DAY / "TA00716").symlink_to(elsewhere)
    result = cli("ingest", recorder)
    assert result.exit_code == 3 and "Traceback" not in result.output
    *pending, error = result.stderr.splitlines()  # the files not attempted, then the one error line
    assert pending == ["PENDING (archive): 6 file(s) not attempted; run the ingest again"]
    assert error.startswith(f"Error: {data_dir / DAY / 'TA00716'} is a symlink")
    assert list(elsewhere.iterdir()) == []

    fresh = tmp_path / "fresh"
    fresh.mkdir(mode=0o750)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (fresh / "custody.jsonl").symlink_to(victim)
    planted = cli("init", data=fresh)
    assert planted.exit_code == 3 and "custody.jsonl is a symlink" in planted.stderr
    assert victim.read_text() == "precious\n"


def test_planted_keys_loose_configs_and_loose_data_dirs_are_refused(cli, recorder: Path, data_dir: Path,
                                                                   tmp_path: Path, intruder: str, keys):
    assert cli("ingest", recorder).exit_code == 0
    key = data_dir / "keys" / "station.key"
    original = key.read_bytes()
    key.unlink()
    key.write_bytes(original)
    os.chown(key, int(subprocess.run(["id", "-u", intruder], capture_output=True, text=True).stdout), -1)
    key.chmod(0o644)
    planted = cli("recordings", "list")
    assert planted.exit_code == 2 and f"belongs to {intruder}" in planted.stderr
    os.chown(key, 0, -1)
    loose = cli("recordings", "list")
    assert loose.exit_code == 2 and "has mode 0644" in loose.stderr and "chmod 600" in loose.stderr
    key.chmod(0o600)
    assert cli("recordings", "list").exit_code == 0

    config = tmp_path / "loose.toml"
    config.write_text(f"[backup]\ntargets = [{str(tmp_path / 'theirs')!r}]\nrecipients = {keys['recipients']!r}\n")
    config.chmod(0o666)
    obeyed = cli("backup", "run", config=config)
    assert obeyed.exit_code == 2 and "config file" in obeyed.stderr and "has mode 0666" in obeyed.stderr
    assert not (tmp_path / "theirs").exists()

    data_dir.chmod(0o770)
    assert "has mode 0770" in cli("status").stderr
    data_dir.chmod(0o750)
    identity = Path(keys["office"])
    identity.chmod(0o644)
    config.chmod(0o640)
    exposed = cli("backup", "verify", "--identity", identity, config=config)
    assert exposed.exit_code == 2 and "identity file" in exposed.stderr


# -- 5. the export staging folder ---------------------------------------------------------------
CASES = ("case_no,title,stage,officers,start,end,recording_required\n"
         "后叶罚〔2022〕12号,占道经营,调查取证,JX0227,2022-11-03T09:36:21,2022-11-03T09:36:45,是\n")


def test_a_planted_staging_folder_or_link_never_reaches_the_bag(cli, recorder: Path, tmp_path: Path):
    assert cli("ingest", recorder).exit_code == 0
    cases = tmp_path / "cases.csv"
    cases.write_text(CASES)
    assert cli("cases", "import", cases).exit_code == 0
    shared = tmp_path / "shared"
    shared.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("theirs")
    (shared / ".bag.partial").symlink_to(victim)
    forged_dir = shared / ".bag2.partial"
    forged_dir.mkdir()
    (forged_dir / "forged.MP4").write_bytes(b"forged")
    for name in ("bag", "bag2"):
        result = cli("export", "后叶罚〔2022〕12号", shared / name)
        assert result.exit_code == 0, result.output
        assert cli("verify-export", shared / name).exit_code == 0
        assert not list((shared / name).rglob("forged.MP4")) and not list((shared / name).rglob("keep.txt"))
    assert [p.name for p in victim.iterdir()] == ["keep.txt"] and (forged_dir / "forged.MP4").exists()
    (shared / "linked").symlink_to(victim)
    refused = cli("export", "后叶罚〔2022〕12号", shared / "linked")
    assert refused.exit_code == 2 and "not a new or empty folder" in refused.stderr


# -- 6. who can read what -----------------------------------------------------------------------
@pytest.fixture
def people():
    """A stranger, and a member of a reader group: real local users."""
    if os.geteuid() != 0:
        pytest.skip("needs root to add users")
    tag = os.getpid() % 100000
    group, stranger, reader = f"arcv-rd-{tag}", f"arcv-st-{tag}", f"arcv-rm-{tag}"
    subprocess.run(["groupadd", group], check=True)
    subprocess.run(["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", stranger], check=True)
    subprocess.run(["useradd", "-M", "-N", "-G", group, "-s", "/usr/sbin/nologin", reader], check=True)
    yield {"group": group, "stranger": stranger, "reader": reader}
    for user in (stranger, reader):
        subprocess.run(["userdel", user], check=False)
    subprocess.run(["groupdel", group], check=False)


def _can_read(user: str, path: Path) -> bool:
    probe = ["ls", str(path)] if path.is_dir() else ["head", "-c1", str(path)]
    return subprocess.run(["runuser", "-u", user, "--", *probe], capture_output=True).returncode == 0


@pytest.fixture
def open_base():
    """A folder every local user can pass through, as /var/lib is (pytest's own are root's alone)."""
    base = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="archiver-test-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_strangers_read_nothing_and_the_reader_group_reads_the_evidence(cli, recorder: Path, people, keys,
                                                                       open_base: Path):
    base = open_base
    data, target, export = base / "data", base / "target", base / "export"
    target.mkdir()
    target.chmod(0o755)  # the backup disk's mount point: the admin's, open as mount points are
    config = base / "archiver.toml"
    config.write_text(f'[access]\nreader_group = "{people["group"]}"\n[backup]\ntargets = ["{target}"]\n'
                      f"recipients = {keys['recipients']!r}\n")
    old = os.umask(0o022)
    try:
        assert cli("ingest", recorder, data=data, config=config).exit_code == 0
        cases = base / "cases.csv"
        cases.write_text(CASES)
        assert cli("cases", "import", cases, data=data, config=config).exit_code == 0
        assert cli("export", "后叶罚〔2022〕12号", export, data=data, config=config).exit_code == 0
        assert cli("backup", "run", data=data, config=config).exit_code == 0
    finally:
        os.umask(old)
    made = [data, export, *data.rglob("*"), *export.rglob("*"), *target.rglob("*")]
    assert len(made) > 40
    assert [str(p) for p in made if _can_read(people["stranger"], p)] == []
    assert [str(p) for p in made if not p.is_dir() and p.stat().st_mode & 0o004] == []
    evidence = [p for p in made if p.is_file() and p.suffix in (".MP4", ".WAV", ".JPG", ".age", ".txt", ".jsonl")]
    evidence += [data / "catalog.db", data / DAY]
    assert [str(p) for p in evidence if not _can_read(people["reader"], p)] == []
    assert not _can_read(people["reader"], data / "keys" / "station.key")


def test_init_makes_a_data_dir_of_an_older_version_private(cli, recorder: Path, people, open_base: Path):
    data = open_base / "data"
    config = open_base / "archiver.toml"
    config.write_text(f'[access]\nreader_group = "{people["group"]}"\n')
    assert cli("ingest", recorder, data=data, config=config).exit_code == 0
    for path in [data, *data.rglob("*")]:  # what an older version left: readable by all, root's group
        os.chown(path, -1, 0)
        path.chmod(0o755 if path.is_dir() else 0o444 if "archive" in path.parts else 0o644)
    key = data / "keys" / "station.key"
    key.chmod(0o600)
    assert _can_read(people["stranger"], data / DAY / "manifest-sha256.txt")
    result = cli("init", data=data, config=config)
    assert result.exit_code == 0 and "private" in result.output, result.output
    made = [data, *data.rglob("*")]
    assert [str(p) for p in made if _can_read(people["stranger"], p)] == []
    footage = [p for p in made if p.suffix in (".MP4", ".WAV", ".JPG")]
    assert len(footage) == 6 and all(p.stat().st_mode & 0o777 == 0o440 for p in footage)
    assert [str(p) for p in footage if not _can_read(people["reader"], p)] == []
    assert key.stat().st_mode & 0o777 == 0o600
    again = cli("init", data=data, config=config)
    assert again.exit_code == 0 and "private" not in again.output
    assert cli("verify", data=data, config=config).exit_code == 0


# -- 7. hostile inputs ---------------------------------------------------------------------------
def test_a_name_that_is_not_utf8_is_archived_escaped_with_its_bytes_kept(cli, recorder: Path, data_dir: Path):
    raw = b"RECORD/\xff\xfeTA00716.MP4"
    with open(os.fsencode(recorder) + b"/" + raw, "wb") as fh:
        fh.write(b"bytes from a device writing GBK names" + os.urandom(64))
    result = cli("ingest", recorder, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ingested"] == 7 and report["failed"] == []
    rows = json.loads(cli("recordings", "list", "--json").stdout)
    odd = next(r for r in rows if r["original_path"] == "RECORD/\\xff\\xfeTA00716.MP4")
    shown = json.loads(cli("recordings", "show", str(odd["id"]), "--json").stdout)
    assert base64.b64decode(shown["original_path_b64"]) == raw
    assert archive_problems(data_dir) == []  # includes sha256sum -c of the manifests


def test_long_chinese_names_restore_and_normalisation_twins_export(backed, cli, recorder: Path, tmp_path: Path):
    long_name = "执法" * 41 + "abc.MP4"
    assert len(long_name.encode()) == 253
    (recorder / "RECORD" / long_name).write_bytes(os.urandom(2048))
    for i, form in enumerate(("NFC", "NFD")):
        (recorder / "RECORD" / unicodedata.normalize(form, "é.MP4")).write_bytes(os.urandom(1024) + bytes([i]))
    assert cli("ingest", recorder, "--device", "TA00716").exit_code == 0
    run = backed["run"]
    assert run("backup", "run").exit_code == 0
    rows = json.loads(cli("recordings", "list", "--json").stdout)
    by_name = {r["original_path"]: r for r in rows}
    one = tmp_path / "one"
    restored = run("backup", "restore", "--identity", backed["office"], str(by_name[f"RECORD/{long_name}"]["id"]),
                   one)
    assert restored.exit_code == 0, restored.output
    station = tmp_path / "station"
    whole = run("backup", "restore", "--identity", backed["office"], "--all", "--station-key", _station_key(cli),
                station)
    assert whole.exit_code == 0, whole.output
    assert cli("verify", data=station).exit_code == 0

    cases = tmp_path / "cases.csv"
    cases.write_text(CASES)
    assert cli("cases", "import", cases).exit_code == 0
    twins = [str(r["id"]) for name, r in by_name.items() if name.endswith(".MP4") and "é" in
             unicodedata.normalize("NFC", name)]
    assert len(twins) == 2
    assert cli("cases", "link", "后叶罚〔2022〕12号", *twins).exit_code == 0
    bag = tmp_path / "bag"
    assert cli("export", "后叶罚〔2022〕12号", bag).exit_code == 0
    check = subprocess.run([str(Path(os.sys.executable).parent / "bagit.py"), "--validate", str(bag)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("name,content,expected", [
    ("big.csv", CASES.splitlines()[0] + "\n后叶罚1," + "x" * (200 << 10) + ",调查取证,JX0227,"
     "2022-11-03T09:36:21,2022-11-03T09:36:45,是\n", "line 2: not readable as CSV"),
    ("deep.json", "[" * 200_000 + "]" * 200_000, "nested too deeply"),
    ("nul.csv", CASES.replace("后叶罚〔2022〕12号", "后叶罚\x00〔2022〕12号"), "case_no holds a control character"),
    ("ctl.csv", CASES.replace("后叶罚〔2022〕12号", "后叶罚\x07〔2022〕12号"), "case_no holds a control character"),
    ("object.json", json.dumps([{"case_no": {"x": 1}, "title": "t", "actions": [
        {"stage": "s", "officers": ["JX0227"], "start": "2022-11-03T09:36:21", "end": "2022-11-03T09:36:45",
         "recording_required": True}]}]), "case_no must be text, not dict"),
])
def test_hostile_case_files_are_one_line_exit_2_and_import_nothing(cli, tmp_path: Path, data_dir: Path, name, content,
                                                                   expected):
    path = tmp_path / name
    path.write_text(content)
    result = cli("cases", "import", path)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: ") and expected in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
    assert not data_dir.exists()  # refused before anything was opened: nothing imported


def test_a_torn_target_manifest_line_is_named_not_a_traceback(backed, tmp_path: Path):
    """A torn last line (an append killed mid-write) is named by verify; the next append sets it aside beside the
    manifest (kept, and named there), so that every line of the manifest is whole again."""
    run, target = backed["run"], backed["targets"][0]
    assert run("backup", "run").exit_code == 0
    with (target / "backup-manifest.jsonl").open("ab") as fh:
        fh.write(b'{"object": "objects/ab/torn')  # a torn append, no newline
    again = run("backup", "run")  # nothing new to list: the manifest is not touched
    assert again.exit_code == 0 and "Traceback" not in again.output
    result = run("backup", "verify", "--json")
    problems = json.loads(result.stdout)["problems"]
    assert result.exit_code == 1 and [p["kind"] for p in problems] == ["backup_manifest"]
    assert "not a JSON line" in problems[0]["detail"]

    make_recorder(tmp_path / "more", RecorderSpec(serial="TA00888", officer="JX0888", segments=1, audio=0, photos=0,
                                                  device_files=False))
    assert run("ingest", tmp_path / "more").exit_code == 0
    assert run("backup", "run").exit_code == 0  # its first append sets the torn line aside
    problems = json.loads(run("backup", "verify", "--json").stdout)["problems"]
    (aside,) = target.glob("backup-manifest.jsonl.torn-*")
    assert aside.read_bytes() == b'{"object": "objects/ab/torn'
    assert [(p["kind"], p["path"]) for p in problems] == [("backup_manifest", str(aside))]
    assert "torn last line, set aside" in problems[0]["detail"]
    assert all(line.startswith(b"{") and line.endswith(b"}")
               for line in (target / "backup-manifest.jsonl").read_bytes().splitlines())


def test_an_unexpected_exception_is_one_line_exit_70_with_the_traceback_kept(cli, recorder: Path, monkeypatch):
    assert cli("ingest", recorder).exit_code == 0

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("archiver.audit.verify.verify", broken)
    result = cli("verify")
    assert result.exit_code == 70 and "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: internal error (ZeroDivisionError: a bug): this is a bug; the traceback is in ")
    saved = Path(line.split("the traceback is in ")[1].split(";")[0])
    assert "ZeroDivisionError" in saved.read_text() and saved.stat().st_mode & 0o077 == 0
    saved.unlink()
    verbose = cli("-v", "verify")
    assert verbose.exit_code == 70 and "Traceback" in verbose.stderr
    Path(verbose.stderr.split("the traceback is in ")[1].split(";")[0]).unlink()
