"""`recordings list` filters and `recordings show`, as tables and as JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from archiver.dock.simulate import RecorderSpec, make_recorder


@pytest.fixture
def two_officers(cli, card: Path, tmp_path: Path):
    second = tmp_path / "second"
    make_recorder(second, RecorderSpec(serial="TB00002", officer="JX0300", start=RecorderSpec.start.replace(hour=14),
                                       segments=1, audio=0, photos=0, device_files=False))
    first = tmp_path / "first"
    shutil.copytree(card, first)
    assert cli("ingest", first).exit_code == 0
    assert cli("ingest", second).exit_code == 0


def _ids(cli, *args):
    return [r["original_path"] for r in json.loads(cli("recordings", "list", "--json", *args).stdout)]


def test_filters(cli, two_officers):
    assert len(_ids(cli)) == 7
    assert _ids(cli, "--device", "TB00002") == ["RECORD/TB00002_JX0300_20221103143621.MP4"]
    assert len(_ids(cli, "--officer", "JX0227")) == 6
    assert _ids(cli, "--since", "2022-11-03T12:00") == ["RECORD/TB00002_JX0300_20221103143621.MP4"]
    assert _ids(cli, "--since", "2022-11-03T04:00:00Z") == ["RECORD/TB00002_JX0300_20221103143621.MP4"]
    # the first segment runs 09:36:21-09:36:25: still running at 09:36:23, so it counts
    assert "RECORD/TA00716_JX0227_20221103093621.MP4" in _ids(cli, "--since", "2022-11-03T09:36:23")
    assert _ids(cli, "--until", "2022-11-03T09:36:22") == ["RECORD/TA00716_JX0227_20221103093621.MP4"]
    assert _ids(cli, "--since", "2022-11-04") == []
    assert _ids(cli, "--officer", "nobody") == []


def test_show_by_id_and_hash_prefix_and_table(cli, two_officers, data_dir: Path):
    listed = json.loads(cli("recordings", "list", "--json", "--device", "TB00002").stdout)[0]
    by_id = json.loads(cli("recordings", "show", str(listed["id"]), "--json").stdout)
    by_hash = json.loads(cli("recordings", "show", listed["sha256"][:10].upper(), "--json").stdout)
    assert by_id == by_hash
    assert {k: by_id[k] for k in listed} == listed
    assert set(listed) == {"id", "sha256", "sm3", "size", "media_type", "original_path", "device_serial",
                          "officer_no", "start", "end", "duration_s", "archive_path", "ingested_at", "verified_at",
                          "flags", "cases"}
    assert by_id["media"]["streams"][0]["codec_name"] == "h264"
    assert by_id["sightings"][0]["original_path"] == listed["original_path"]
    table = cli("recordings", "show", str(listed["id"])).stdout
    assert listed["sha256"] in table and "TB00002" in table and "\nseen " in table
    listing = cli("recordings", "list", "--device", "TB00002").stdout
    assert "TB00002" in listing and listed["sha256"][:12] in listing and "1 recording(s)" in listing
