"""Custody log, verify, status, exports: tampering of every kind is found and named."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_cases import CASE, HEADER, HOLEY, ROWS, write

from archiver.dock.simulate import make_recorder
from archiver.ledger.custody import canonical, catalog_head

BAGIT = str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "bagit.py")


@pytest.fixture
def archived(cli, recorder: Path, data_dir: Path):
    assert cli("ingest", recorder).exit_code == 0
    return data_dir


def run_verify(cli, *args):
    result = cli("verify", "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def kinds(report) -> set[tuple[str, str]]:
    return {(p["kind"], p["path"]) for p in report["problems"]}


def log_lines(data_dir: Path) -> list[bytes]:
    return (data_dir / "custody.jsonl").read_bytes().splitlines(keepends=True)


def test_clean_archive_verifies_and_status_shows_it(cli, archived: Path):
    code, report = run_verify(cli)
    assert code == 0 and report["problems"] == [] and report["checked"] == report["ok"] == 6
    status = json.loads(cli("status", "--json").stdout)
    assert (status["recordings"], status["last_verify"]["result"], status["last_verify"]["checked"]) == (6, "ok", 6)
    assert status["last_ingest"]["status"] == "ok"
    lines = log_lines(archived)
    assert status["custody_head"]["seq"] == len(lines)
    assert status["custody_head"] == status["custody_head_in_catalog"]
    assert oct((archived / "keys" / "station.key").stat().st_mode & 0o777) == "0o600"
    assert cli("keys", "show").stdout.startswith("ed25519:")


def test_flipped_deleted_and_planted_files_are_all_named_in_one_run(cli, archived: Path):
    day = archived / "archive/2022/11/03/TA00716"
    flipped, deleted = day / "TA00716_JX0227_20221103093621.MP4", day / "TA00716_JX0227_20221103093626.JPG"
    flipped.chmod(0o644)
    with flipped.open("r+b") as fh:
        fh.seek(5000)
        byte = fh.read(1)
        fh.seek(5000)
        fh.write(bytes([byte[0] ^ 0x01]))
    deleted.unlink()
    (day / "planted.MP4").write_bytes(b"not from any recorder")
    code, report = run_verify(cli)
    assert code == 1
    rel = "archive/2022/11/03/TA00716/"
    assert {("mismatch", rel + flipped.name), ("missing", rel + deleted.name),
            ("unexpected", rel + "planted.MP4")} <= kinds(report)
    assert report["checked"] == 6 and report["ok"] == 4
    (bad,) = [p for p in report["problems"] if p["kind"] == "mismatch"]  # the values themselves, not only a sentence
    shown = json.loads(cli("recordings", "list", "--json").stdout)
    catalogued = next(r["sha256"] for r in shown if r["archive_path"].endswith(flipped.name))
    assert bad["expected"] == catalogued and bad["found"] == hashlib.sha256(flipped.read_bytes()).hexdigest()
    assert bad["detail"].endswith(f"sha256 is {bad['found']}, the catalog says {catalogued}")
    assert json.loads(cli("status", "--json").stdout)["last_verify"]["result"] == "problems"
    text = cli("verify").stdout
    assert "PROBLEM mismatch" in text and "PROBLEM missing" in text and "PROBLEM unexpected" in text


def test_a_manifest_that_disagrees_is_named(cli, archived: Path):
    manifest = archived / "archive/2022/11/03/manifest-sha256.txt"
    manifest.chmod(0o644)
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(lines[1:]) + "0" * 64 + "  TA00716/ghost.MP4\n")
    code, report = run_verify(cli)
    details = [p["detail"] for p in report["problems"] if p["kind"] == "manifest"]
    assert code == 1 and len(details) == 2
    assert any("does not list" in d for d in details) and any("ghost.MP4" in d for d in details)


def _seq(line: bytes) -> int:
    return json.loads(line)["seq"]


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder", "truncate"])
def test_custody_log_tampering_names_the_sequence_number(cli, archived: Path, tamper: str):
    path = archived / "custody.jsonl"
    lines = log_lines(archived)
    assert len(lines) >= 7
    k = 3  # the third line, a signed ingest event
    if tamper == "edit":
        lines[k - 1] = lines[k - 1].replace(b'"size":', b'"size":1')
        expected = {("custody_signature", k), ("custody_chain", k + 1)}
    elif tamper == "delete":
        del lines[k - 1]
        expected = {("custody_chain", k + 1)}
    elif tamper == "reorder":
        lines[k - 1], lines[k] = lines[k], lines[k - 1]
        expected = {("custody_chain", k + 1), ("custody_chain", k)}
    else:
        lines = lines[:-2]
        expected = {("custody_truncated", len(lines) + 2)}
    path.write_bytes(b"".join(lines))
    code, report = run_verify(cli)
    assert code == 1
    found = {(p["kind"], int(p["detail"].split(":")[0].removeprefix("seq "))) for p in report["problems"]
             if p["kind"].startswith("custody_") and p["detail"].startswith("seq ") and p["detail"][4].isdigit()}
    assert expected <= found, report["problems"]


def test_a_line_re_signed_with_another_key_is_detected(cli, archived: Path):
    path = archived / "custody.jsonl"
    lines = log_lines(archived)
    event = json.loads(lines[1])
    event.pop("sig")
    event["details"]["original_path"] = "forged.MP4"
    event["sig"] = base64.b64encode(Ed25519PrivateKey.generate().sign(canonical(event))).decode()
    lines[1] = canonical(event) + b"\n"
    path.write_bytes(b"".join(lines))
    code, report = run_verify(cli)
    assert code == 1
    assert {"kind": "custody_signature", "path": "custody.jsonl",
            "detail": "seq 2: signature does not verify with the station key"} in report["problems"]


def test_every_recording_needs_its_ingest_event(cli, archived: Path):
    path = archived / "custody.jsonl"
    lines = [line for line in log_lines(archived) if b'"action":"ingest"' not in line or b"093621" not in line]
    path.write_bytes(b"".join(lines))
    code, report = run_verify(cli)
    missing = [p for p in report["problems"] if p["kind"] == "custody_missing_event"]
    assert code == 1 and len(missing) == 1 and "093621" in missing[0]["detail"]


def test_state_changes_and_lookups_are_logged_with_the_actor(cli, archived: Path, tmp_path: Path):
    assert cli("cases", "import", write(tmp_path / "c.csv", HEADER + ROWS)).exit_code == 0
    assert cli("recordings", "show", "1").exit_code == 0
    assert cli("cases", "show", CASE).exit_code == 0
    assert cli("cases", "link", CASE, "2").exit_code == 0
    events = [json.loads(line) for line in log_lines(archived)]
    actions = [e["action"] for e in events]
    assert actions.count("ingest") == 6 and actions[0] == "init"
    assert {"case_import", "lookup", "link"} <= set(actions)
    viewed = [e for e in events if e["action"] == "lookup" and e["subject"].get("sha256")]
    assert viewed and viewed[0]["actor"] and viewed[0]["details"]["command"] == "recordings show"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert run_verify(cli)[0] == 0


def test_many_people_logging_at_once_get_one_unbroken_signed_chain(cli, archived: Path):
    """Group commit: 16 threads appending 25 events each, as many served requests do, through views that
    name different people; every append returns its own head, the chain verifies, the catalog holds the last."""
    from concurrent.futures import ThreadPoolExecutor

    from archiver.archive.workspace import open_workspace
    from archiver.config import load_config

    ws = open_workspace(load_config(None, archived), upgrade=False)
    before = len(log_lines(archived))

    def person(n: int) -> list[int]:
        log = ws.custody.as_actor({"user": f"p{n}", "uid": 5000 + n, "role": "legal"})
        return [log.append("lookup", {"n": n, "i": i}).seq for i in range(25)]

    try:
        with ThreadPoolExecutor(16) as pool:
            seqs = [seq for batch in pool.map(person, range(16)) for seq in batch]
        head = catalog_head(ws.catalog)
    finally:
        ws.close()
    assert sorted(seqs) == list(range(before + 1, before + 401))
    events = [json.loads(line) for line in log_lines(archived)[before:]]
    assert sorted((e["actor"]["user"], e["subject"]["i"]) for e in events) == \
        sorted((f"p{n}", i) for n in range(16) for i in range(25))
    for n in range(16):  # each person's events in the order they were appended
        assert [e["subject"]["i"] for e in events if e["actor"]["user"] == f"p{n}"] == list(range(25))
    assert head.seq == before + 400
    assert run_verify(cli)[0] == 0


def test_budgeted_verify_takes_the_least_recently_verified_first(cli, archived: Path):
    db = sqlite3.connect(archived / "catalog.db")
    db.execute("update recordings set verified_at = '2020-01-01 00:00:00.000000' where id = 4")
    db.commit()
    code, report = run_verify(cli, "--max-minutes", "0")
    assert code == 0 and report["checked"] >= 1 and report["remaining"] == 6 - report["checked"]
    first = db.execute("select id from recordings order by verified_at desc limit 1").fetchone()
    assert first == (4,)  # it was checked (first) and remembered as the most recent
    status = json.loads(cli("status", "--json").stdout)["last_verify"]
    assert status["remaining"] == report["remaining"] and "budget 0 min" in status["scope"]


def test_export_validates_with_bagit_and_fails_after_tampering(cli, tmp_path: Path, data_dir: Path):
    card = tmp_path / "holey"
    make_recorder(card, HOLEY)
    assert cli("ingest", card).exit_code == 0
    assert cli("cases", "import", write(tmp_path / "c.csv", HEADER + ROWS)).exit_code == 0
    dest = tmp_path / "export"
    result = cli("export", CASE, dest)
    assert result.exit_code == 0, result.output
    info = (dest / "bag-info.txt").read_text(encoding="utf-8")
    assert f"Case-Number: {CASE}" in info and "Custody-Log-Head: " in info and "Station-Key: ed25519:" in info
    # times in the configured zone (Asia/Shanghai), the bagging date that zone's day of the export
    (when,) = re.findall(r"^Export-Time: (\S+)$", info, re.M)
    exported = datetime.fromisoformat(when)
    assert when.endswith("+08:00") and abs((datetime.now(UTC) - exported).total_seconds()) < 120
    assert f"Bagging-Date: {exported.date().isoformat()}\n" in info
    payload = sorted(p.name for p in (dest / "data").rglob("*") if p.is_file())
    assert len(payload) == 4
    events = [json.loads(line) for line in (dest / "custody-events.jsonl").read_bytes().splitlines()]
    assert {e["action"] for e in events} >= {"ingest"} and len({e["subject"]["sha256"] for e in events}) == 4
    assert "custody-events.jsonl" in (dest / "tagmanifest-sha256.txt").read_text()

    valid = subprocess.run([BAGIT, "--validate", str(dest)], capture_output=True, text=True)
    assert valid.returncode == 0, valid.stderr
    assert cli("verify-export", dest).exit_code == 0
    key = cli("keys", "show").stdout.strip()
    assert cli("--data-dir", tmp_path / "elsewhere", "verify-export", dest, "--key", key).exit_code == 0

    victim = next(p for p in (dest / "data").rglob("*.MP4"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    broken = subprocess.run([BAGIT, "--validate", str(dest)], capture_output=True, text=True)
    assert broken.returncode != 0
    checked = cli("verify-export", dest)
    assert checked.exit_code == 1 and "PROBLEM" in checked.stdout
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert subprocess.run([BAGIT, "--validate", str(dest)], capture_output=True).returncode == 0

    # a rewritten tag manifest (say, after swapping the events file) breaks the signature
    tags = dest / "tagmanifest-sha256.txt"
    tags.write_text(tags.read_text() + "\n")
    forged = cli("verify-export", dest)
    assert forged.exit_code == 1 and "signature does not verify" in forged.stdout
    other_key = "ed25519:" + base64.b64encode(os.urandom(32)).decode()
    tags.write_text(tags.read_text()[:-1])
    assert cli("verify-export", dest, "--key", other_key).exit_code == 1
    events_after = [json.loads(line)["action"] for line in log_lines(data_dir)]
    assert "export" in events_after


def test_export_refuses_a_non_empty_destination(cli, archived: Path, tmp_path: Path):
    assert cli("cases", "import", write(tmp_path / "c.csv", HEADER + ROWS)).exit_code == 0
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "x").write_text("x")
    result = cli("export", CASE, dest)
    assert result.exit_code == 2 and "is not a new or empty folder" in result.stderr
