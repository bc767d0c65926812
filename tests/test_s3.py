"""Backups to S3 with Object Lock, on a real one-node Ceph radosgw started here: the same age objects as on
disk, written once under a COMPLIANCE lock until the recording's retention date, legal holds mirrored;
neither the station's credentials nor the bucket's owner can delete or shorten them; a version put over
one is caught by `backup verify`; a purge deletes only what the lock allows."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from botocore.exceptions import ClientError
from central_util import registered
from pg_util import new_database, postgres_server
from runner import archiver
from s3_util import ADMIN, STATION, Radosgw, client, locked_bucket, radosgw
from sqlalchemy import select

from archiver.archive.workspace import open_workspace
from archiver.backup.age import read_identities
from archiver.backup.objects import Lock, Rotten, filler
from archiver.backup.run import backup_one, drop_purged
from archiver.backup.s3 import S3Store
from archiver.backup.targets import recipients, targets
from archiver.catalog import BackupObject, Recording
from archiver.config import load_config
from archiver.ledger.keys import sign_record, signed_by
from archiver.problems import Kind
from archiver.retention import purge

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def rgw():
    with radosgw() as endpoint:
        yield endpoint


def _config(tmp_path: Path, endpoint: str, bucket: str, recipients: list[str], who: tuple[str, str]) -> Path:
    config = tmp_path / "s3.toml"
    config.write_text(f'[backup]\ntargets = ["s3://{bucket}/houye"]\nrecipients = {recipients!r}\n'
                      f'[s3]\nendpoint_url = "{endpoint}"\naccess_key_id = "{who[0]}"\n'
                      f'secret_access_key = "{who[1]}"\n')
    config.chmod(0o600)
    return config


def _tomorrow() -> str:
    return (datetime.now(SHANGHAI) + timedelta(days=1)).date().isoformat()


def _midnight(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=SHANGHAI).astimezone(UTC)


def test_objects_are_locked_until_their_date_held_and_never_deleted_or_replaced_unseen(
        cli, recorder: Path, tmp_path: Path, keys, rgw: Radosgw, monkeypatch):
    bucket = locked_bucket(rgw.base)
    config = _config(tmp_path, rgw.endpoint, bucket, keys["recipients"], STATION)

    def run(*args):
        return cli(*args, config=config)

    assert run("ingest", recorder).exit_code == 0
    listed = json.loads(run("recordings", "list", "--json").stdout)
    classified, held = listed[0], listed[1]
    assert run("recordings", "classify", classified["sha256"][:12], "case_10y", "--reason", "案卷 10 年").exit_code == 0
    assert run("hold", "add", held["sha256"][:12], "--reason", "复议").exit_code == 0

    days_before = _tomorrow()
    first = run("backup", "run", "--json")
    assert first.exit_code == 0, first.output
    counts = json.loads(first.stdout)["targets"][f"s3://{bucket}/houye"]
    assert counts["objects"] == len(listed) == 6

    admin, station = client(rgw.endpoint, ADMIN), client(rgw.endpoint, STATION)
    tomorrow = {days_before, _tomorrow()}  # a run across midnight may give either
    versions = {}
    for rec in listed:
        key = f"houye/objects/{rec['sha256'][:2]}/{rec['sha256']}.age"
        versions[rec["sha256"]] = version = admin.list_object_versions(Bucket=bucket, Prefix=key)["Versions"][0]
        retention = admin.get_object_retention(Bucket=bucket, Key=key, VersionId=version["VersionId"])["Retention"]
        hold = admin.get_object_legal_hold(Bucket=bucket, Key=key, VersionId=version["VersionId"])["LegalHold"]
        assert retention["Mode"] == "COMPLIANCE"
        # 10 years after the footage ends (3 Nov 2022): due 4 Nov 2032; unlinked footage was due in 2023
        # already, so it stays locked only until tomorrow, waiting for its purge.
        assert retention["RetainUntilDate"] in (
            {_midnight("2032-11-04")} if rec is classified else {_midnight(day) for day in tomorrow})
        assert hold["Status"] == ("ON" if rec is held else "OFF")
        for who in (station, admin):  # the station may not delete; nobody may, under COMPLIANCE
            with pytest.raises(ClientError, match="AccessDenied"):
                who.delete_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])
        shorter = datetime.now(UTC) + (retention["RetainUntilDate"] - datetime.now(UTC)) / 2  # still ahead
        with pytest.raises(ClientError, match="AccessDenied"):  # nor shorten the lock
            admin.put_object_retention(Bucket=bucket, Key=key, VersionId=version["VersionId"], Retention={
                "Mode": "COMPLIANCE", "RetainUntilDate": shorter})
        assert version["Size"] > 0

    clean = run("backup", "verify", "--identity", keys["office"], "--json")
    assert clean.exit_code == 0, clean.output
    assert run("backup", "run", "--json").exit_code == 0
    assert len(admin.list_object_versions(Bucket=bucket)["Versions"]) == 6  # nothing written twice

    # A run killed after a PUT answered, before the catalog recorded it: the next run adopts that version
    # (signed entry, reads back as signed) instead of putting a second locked copy.
    db = sqlite3.connect(tmp_path / "data" / "catalog.db")
    db.execute("delete from backup_objects where plain_sha256 = ?", (listed[3]["sha256"],))
    db.commit()
    db.close()
    key3 = f"houye/objects/{listed[3]['sha256'][:2]}/{listed[3]['sha256']}.age"
    resumed = json.loads(run("backup", "run", "--json").stdout)["targets"][f"s3://{bucket}/houye"]
    assert resumed["objects"] == 1
    assert len(admin.list_object_versions(Bucket=bucket, Prefix=key3)["Versions"]) == 1  # no second copy
    (event,) = json.loads(run("custody", "show", "--action", "backup", "--json").stdout)[-1:]
    assert event["details"]["adopted"] is True and event["details"]["version"] == versions[listed[3]["sha256"]][
        "VersionId"]

    # A credential that may write puts a copy with one byte flipped over an object.
    target = listed[2]
    key = f"houye/objects/{target['sha256'][:2]}/{target['sha256']}.age"
    body = bytearray(station.get_object(Bucket=bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0x01
    station.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    caught = run("backup", "verify", "--json")
    assert caught.exit_code == 1
    problems = json.loads(caught.stdout)["problems"]
    assert [(p["kind"], p["path"].rsplit("/", 1)[-1]) for p in problems] == [
        ("backup_overwritten", f"{target['sha256']}.age")]
    # The version the station wrote is still there, intact and locked: it is what verify read.
    original = versions[target["sha256"]]["VersionId"]
    assert station.get_object(Bucket=bucket, Key=key, VersionId=original)["ContentLength"] == \
        versions[target["sha256"]]["Size"]

    # A hold lifted at the station is lifted on the store at the next run; the custody log says so.
    assert run("hold", "remove", held["sha256"][:12], "--reason", "复议结束").exit_code == 0
    lifted = json.loads(run("backup", "run", "--json").stdout)["targets"][f"s3://{bucket}/houye"]
    assert lifted["holds_changed"] == 1
    key = f"houye/objects/{held['sha256'][:2]}/{held['sha256']}.age"
    status = admin.get_object_legal_hold(Bucket=bucket, Key=key, VersionId=versions[held["sha256"]]["VersionId"])
    assert status["LegalHold"]["Status"] == "OFF"
    shown = run("custody", "show", "--action", "backup_legal_hold", "--json")
    assert [e["details"]["on"] for e in json.loads(shown.stdout)] == [False]

    # The endpoint and credentials from the usual AWS variables instead of [s3]; wrong ones: a plain error.
    bare = tmp_path / "bare.toml"
    bare.write_text(f'[backup]\ntargets = ["s3://{bucket}/houye"]\nrecipients = {keys["recipients"]!r}\n')
    monkeypatch.setenv("AWS_ENDPOINT_URL", rgw.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", STATION[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", STATION[1])
    again = cli("backup", "verify", "--json", config=bare)
    assert again.exit_code == 1 and [p["kind"] for p in json.loads(again.stdout)["problems"]] == ["backup_overwritten"]
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    wrong = cli("backup", "verify", "--json", config=bare)
    (problem,) = json.loads(wrong.stdout)["problems"]
    assert wrong.exit_code == 1 and problem["kind"] == "backup_target" and "SignatureDoesNotMatch" in problem["detail"]
    config.chmod(0o644)  # the secret in [s3] readable by everyone: refused
    loose = run("backup", "status")
    assert loose.exit_code == 2 and "chmod o-r" in loose.stderr


def test_a_purge_deletes_only_what_the_lock_and_legal_hold_allow(recorder: Path, tmp_path: Path, keys, rgw: Radosgw):
    bucket = locked_bucket(rgw.base)
    config = _config(tmp_path, rgw.endpoint, bucket, keys["recipients"], ADMIN)  # the county's credentials: may delete
    data = tmp_path / "data"
    env = {**os.environ, "ARCHIVER_CONFIG": str(config), "ARCHIVER_DATA_DIR": str(data)}
    archiver("ingest", str(recorder), env=env, check=True)
    cfg = load_config(config, data)
    ws = open_workspace(cfg, upgrade=False)
    try:
        with ws.catalog.reading() as session:
            recordings = list(session.scalars(select(Recording).order_by(Recording.id)))
        # Locks of seconds, so the test can outlive them: written by the library the backup run uses.
        until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
        store, to = S3Store(cfg, cfg.backup.s3_targets[0]), recipients(cfg)
        for rec in recordings:
            backup_one(ws, store, rec, to, Lock(until, hold=rec is recordings[0]), {"objects": 0, "bytes": 0})

        when = (datetime.now(SHANGHAI) + timedelta(days=1)).isoformat()  # due since 2023, verified today
        made = archiver("retention", "purge", "--request", "--json", env={**env, "ARCHIVER_NOW": when}, check=True)
        request = json.loads(made.stdout)["id"]
        purge.approve(ws.acting({"user": "auditor-wang", "uid": 12345, "role": "auditor"}), request,
                      datetime.fromisoformat(when))
        archiver("retention", "purge", str(request), env={**env, "ARCHIVER_NOW": when}, check=True)

        assert drop_purged(ws, store) == (0, 6)  # every version still locked: the store refuses
        time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 1.5)
        assert drop_purged(ws, store) == (5, 1)  # past the date; the legal hold still keeps one
        left = client(rgw.endpoint, ADMIN).list_object_versions(Bucket=bucket).get("Versions", [])
        assert [v["Key"].rsplit("/", 1)[-1] for v in left] == [f"{recordings[0].sha256}.age"]
        with ws.catalog.reading() as session:
            rows = list(session.scalars(select(BackupObject)))
        assert [r.recording_id for r in rows] == [recordings[0].id]
    finally:
        ws.close()
    shown = archiver("custody", "show", "--action", "backup_drop_purged", "--json", env=env, check=True)
    (event,) = json.loads(shown.stdout)
    assert len(event["details"]["objects"]) == 5


def test_verify_central_reads_back_every_object_the_stations_signed_for(cli, recorder: Path, tmp_path: Path, keys,
                                                                         rgw: Radosgw):
    """The centre needs no station's catalog: the signed `backup` events say what is in the store."""
    bucket = locked_bucket(rgw.base)
    with postgres_server() as server:
        url = new_database(server)
        centre = tmp_path / "centre.toml"
        centre.write_text(f'[catalog]\nurl = "{url}"\n[s3]\nendpoint_url = "{rgw.endpoint}"\n'
                          f'access_key_id = "{ADMIN[0]}"\nsecret_access_key = "{ADMIN[1]}"\n')
        centre.chmod(0o600)
        station = _config(tmp_path, rgw.endpoint, bucket, keys["recipients"], STATION)

        def at_centre(*args):
            return cli(*args, config=centre, data=tmp_path / "centre")

        assert at_centre("init").exit_code == 0
        assert cli("ingest", recorder, config=station).exit_code == 0
        key = cli("keys", "show", config=station).stdout.strip()
        added = at_centre("stations", "add", "houye", "--key", key)
        assert added.exit_code == 0
        login, centre_key = registered(added.stdout)
        with station.open("a") as fh:
            fh.write(f'[station]\nid = "houye"\n[central]\nurl = "{login}"\nkey = "{centre_key}"\nwait_s = 0.1\n')
        assert cli("backup", "run", config=station).exit_code == 0
        assert cli("sync", config=station).exit_code == 0  # handed in; the centre's process applies it:
        assert at_centre("central", "--once").exit_code == 0
        clean = at_centre("verify", "--central", "--json")
        assert clean.exit_code == 0 and json.loads(clean.stdout)["objects"] == 6, clean.output

        listed = json.loads(cli("recordings", "list", "--json", config=station).stdout)
        key = f"houye/objects/{listed[0]['sha256'][:2]}/{listed[0]['sha256']}.age"
        client(rgw.endpoint, STATION).put_object(Bucket=bucket, Key=key, Body=b"not what was signed")
        caught = at_centre("verify", "--central", "--json")
        assert caught.exit_code == 1
        assert [(p["kind"], p["path"].rsplit("/", 1)[-1]) for p in json.loads(caught.stdout)["problems"]] == [
            ("backup_overwritten", f"{listed[0]['sha256']}.age")]
        assert "1 problem(s)" in at_centre("verify", "--central").stdout


@pytest.mark.parametrize("kind", ["folder", "s3"])
def test_a_folder_and_a_store_keep_the_one_target_protocol(kind: str, recorder: Path, tmp_path: Path, keys,
                                                            rgw: Radosgw):
    """The calls the run, verify and snapshots are written against (put, list, open, check, drop, lock), on
    each target alike: what differs is only what a lock keeps."""
    if kind == "s3":
        config = _config(tmp_path, rgw.endpoint, locked_bucket(rgw.base), keys["recipients"], ADMIN)
    else:
        (tmp_path / "t1").mkdir()
        config = tmp_path / "disk.toml"
        config.write_text(f'[backup]\ntargets = ["{tmp_path / "t1"}"]\nrecipients = {keys["recipients"]!r}\n')
    data = tmp_path / "data"
    archiver("ingest", str(recorder), env={"ARCHIVER_CONFIG": str(config), "ARCHIVER_DATA_DIR": str(data)}, check=True)
    cfg = load_config(config, data)
    ws = open_workspace(cfg, upgrade=False)
    try:
        (target,) = targets(ws)
        assert target.locks is (kind == "s3")
        name, payload = "objects/ab/evidence.age", os.urandom(300_000)
        lock = Lock(datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4), hold=False)
        placed = target.put(name, filler(ws.station_key, name, "recording", io.BytesIO(payload), recipients(cfg)), lock)
        entry = placed.entry
        assert signed_by(entry, ws.station_key.public) and entry["plain_sha256"] == hashlib.sha256(payload).hexdigest()
        assert [p.name for p in target.list()] == [name]
        (listed,) = target.list(name)
        assert (listed.entry, listed.version) == (entry, placed.version)
        expected = (True, lock.until) if target.locks else (False, None)  # a folder keeps neither
        assert (placed.version is not None, placed.locked_until) == expected
        row = BackupObject(target=target.name, name=name, kind="recording", plain_sha256=entry["plain_sha256"],
                           ciphertext_sha256=entry["ciphertext_sha256"], size=entry["size"],
                           version_id=placed.version, locked_until=placed.locked_until)
        with target.open(name, placed.version) as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == entry["ciphertext_sha256"]
        identities = read_identities(Path(keys["office"]).read_text())
        assert target.check(row, identities) == []
        other = BackupObject(**{c: getattr(row, c) for c in ("target", "name", "kind", "plain_sha256", "size",
                                                                 "version_id", "locked_until")},
                             ciphertext_sha256="0" * 64)
        assert [(f.kind, f.expected, f.found) for f in target.check(other, None)] == [
            (Kind.BACKUP_MISMATCH, "0" * 64, entry["ciphertext_sha256"])]

        def torn(out):  # an object whose writing fails half-way (a disk error, a file that rotted) is not kept
            out.write(b"age-encryption.org/v1\n")
            raise Rotten("0" * 64)

        with pytest.raises(Rotten):
            target.put("objects/cd/torn.age", torn, lock)
        assert [p.name for p in target.list()] == [name]
        with pytest.raises(FileNotFoundError):
            target.open("objects/cd/torn.age")

        removal = sign_record(ws.station_key, {**entry, "kind": "removed"})
        if target.locks:  # the store keeps a locked version, for anyone; a lock is extended, a hold placed
            assert target.drop(row, removal) is False
            target.lock(row, lock.until + timedelta(seconds=1), True)
            time.sleep(max(0.0, (lock.until - datetime.now(UTC)).total_seconds()) + 2)
            assert target.drop(row, removal) is False  # the legal hold keeps it past its date
            target.lock(row, None, False)
        assert target.drop(row, removal) is True
        assert target.list() == [] and target.list(name) == []
        with pytest.raises(FileNotFoundError):
            target.open(name, placed.version)
        assert target.audit([]) == []  # the removal is listed: the target agrees with a catalog without it
    finally:
        ws.close()
