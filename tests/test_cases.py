"""Cases: import, linking in both arrival orders, manual links, the check on real segments with a hole."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from archiver.dock.simulate import RecorderSpec, make_recorder

CASE = "后叶罚〔2022〕12号"
HEADER = "case_no,title,stage,officers,start,end,recording_required\n"
# Three 4-second segments with 10-second pauses: 09:36:21-25, 09:36:35-39, 09:36:49-53.
HOLEY = RecorderSpec(segments=3, segment_seconds=4, gap_seconds=10, audio=0, photos=1, device_files=False)
ROWS = (
    f"{CASE},占道经营,调查取证,JX0227;JX0300,2022-11-03T09:36:21,2022-11-03T09:36:45,是\n"
    f"{CASE},占道经营,送达,JX0227,2022-11-03T09:36:49,2022-11-03T09:36:53,true\n"
    "沪市监处罚〔2025〕456号,无证经营,立案,JX0999,2022-11-03T08:00:00,2022-11-03T08:10:00,false\n"
)


@pytest.fixture
def holey(tmp_path: Path) -> Path:
    card = tmp_path / "holey"
    make_recorder(card, HOLEY)
    return card


def write(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


def check(cli, *args):
    result = cli("cases", "check", *args, "--json")
    return result.exit_code, json.loads(result.stdout) if result.stdout else None


def expect_hole(report):
    (case,) = [c for c in report if c["case_no"] == CASE]
    assert case["compliant"] is False
    investigate, serve = case["actions"]
    assert investigate["stage"] == "调查取证" and investigate["officers"] == ["JX0227", "JX0300"]
    assert investigate["covered_s"] == pytest.approx(8, abs=0.1)
    assert investigate["coverage"] == pytest.approx(8 / 24, abs=0.01)
    assert [(g["start"][11:19], g["end"][11:19]) for g in investigate["gaps"]] == [
        ("09:36:25", "09:36:35"), ("09:36:39", "09:36:45")]
    assert serve["gaps"] == [] and serve["coverage"] == pytest.approx(1.0, abs=0.01)
    return investigate, serve


@pytest.mark.parametrize("order", ["cases first", "recordings first"])
def test_linking_in_either_order_finds_the_hole(cli, holey: Path, tmp_path: Path, order: str):
    csv = write(tmp_path / "cases.csv", HEADER + ROWS, bom=True)
    steps = [("cases", "import", csv), ("ingest", holey)]
    for step in steps if order == "cases first" else reversed(steps):
        assert cli(*step).exit_code == 0
    code, report = check(cli, CASE)
    assert code == 1
    investigate, serve = expect_hole(report)
    # With 30 s of clock tolerance all three segments and the photo link to both actions (the card
    # spans 32 s); coverage still only counts what lies inside each window.
    assert len(investigate["recordings"]) == len(serve["recordings"]) == 4
    ok_code, ok = check(cli, "沪市监处罚〔2025〕456号")
    assert ok_code == 0 and ok[0]["compliant"] is True  # not required: no footage is fine


def test_reimport_updates_never_duplicates_and_manual_links_survive(cli, holey: Path, card: Path, tmp_path: Path):
    csv = write(tmp_path / "cases.csv", HEADER + ROWS)
    assert cli("ingest", holey).exit_code == 0
    other = tmp_path / "other"
    make_recorder(other, RecorderSpec(serial="TB00009", officer="JX0500", segments=1, segment_seconds=20,
                                      start=HOLEY.start.replace(second=24), audio=0, photos=0, device_files=False))
    assert cli("ingest", other).exit_code == 0
    first = json.loads(cli("cases", "import", csv, "--json").stdout)
    assert (first["cases_created"], first["actions_added"]) == (2, 3)
    rows = {r["officer_no"]: r for r in json.loads(cli("recordings", "list", "--json").stdout)}
    helper = rows["JX0500"]  # another officer's recording filling the hole: not linked by officer
    assert helper["cases"] == []
    assert cli("cases", "link", CASE, str(helper["id"])).exit_code == 0
    photo = [r for r in json.loads(cli("recordings", "list", "--json").stdout) if r["media_type"] == "photo"][0]
    assert cli("cases", "unlink", CASE, photo["sha256"][:10]).exit_code == 0

    again = json.loads(cli("cases", "import", csv, "--json").stdout)
    assert (again["cases_created"], again["cases_updated"], again["cases_unchanged"], again["actions_added"],
            again["actions_updated"]) == (0, 0, 2, 0, 0)  # the same file again: nothing said to be updated
    assert len(json.loads(cli("cases", "list", "--json").stdout)) == 2

    code, report = check(cli, CASE)
    investigate = report[0]["actions"][0]
    assert helper["id"] in investigate["recordings"] and photo["id"] not in investigate["recordings"]
    # 09:36:24-09:36:44 from the helper closes the first hole; 09:36:44-45 is within max_gap_s
    assert investigate["gaps"] == [] and code == 0
    shown = json.loads(cli("cases", "show", CASE, "--json").stdout)
    links = {r["id"]: r["link"] for r in shown["actions"][0]["recordings"]}
    assert links[helper["id"]] == "manual" and shown["unlinked_by_hand"][0]["id"] == photo["id"]
    assert json.loads(cli("recordings", "show", str(helper["id"]), "--json").stdout)["cases"] == [CASE]
    own = json.loads(cli("custody", "show", "--recording", str(helper["id"]), "--json").stdout)
    assert [e["action"] for e in own] == ["ingest", "link", "lookup"]  # its own trail: no other recording's
    in_case = json.loads(cli("recordings", "list", "--case", CASE, "--json").stdout)
    assert helper["id"] in [r["id"] for r in in_case] and photo["id"] not in [r["id"] for r in in_case]

    # A corrected file (the 送达 action is gone) removes that action, and the manual link stays.
    write(csv, HEADER + ROWS.splitlines(keepends=True)[0])
    third = json.loads(cli("cases", "import", csv, "--json").stdout)
    assert third["actions_removed"] == 1
    assert [a["stage"] for a in json.loads(cli("cases", "show", CASE, "--json").stdout)["actions"]] == ["调查取证"]
    assert check(cli, CASE)[1][0]["actions"][0]["gaps"] == []


@pytest.mark.parametrize(("text", "fragment"), [
    (HEADER.replace("stage", "phase"), "line 1: unknown column(s) phase; missing column(s) enforcement step"),
    (HEADER + ROWS + f"{CASE},t,s,JX1,yesterday,2022-11-03T10:00:00,true\n",
     "line 5: cannot read start 'yesterday'"),
    (HEADER + f"{CASE},t,s,JX1,2022-11-03T10:00:00,2022-11-03T09:00:00,true\n" + ROWS,
     "line 2: end 2022-11-03 09:00 is before start 2022-11-03 10:00"),
    (HEADER + f"{CASE},t,s,JX1,2022-11-03T09:00:00,2022-11-03T10:00:00,maybe\n",
     "line 2: recording_required 'maybe' is not true/false"),
])
def test_a_bad_row_imports_nothing_and_names_its_line(cli, tmp_path: Path, text: str, fragment: str):
    result = cli("cases", "import", write(tmp_path / "bad.csv", text))
    assert result.exit_code == 2
    assert fragment in result.stderr and result.stderr.count("\n") == 1
    assert cli("init").exit_code == 0
    assert json.loads(cli("cases", "list", "--json").stdout) == []


def test_json_form_search_and_device_registered_to_an_officer(cli, card: Path, tmp_path: Path):
    cases = [{"case_no": CASE, "title": "占道经营", "actions": [
        {"stage": "调查取证", "officers": ["JX0555"], "start": "2022-11-03T01:36:00Z",
         "end": "2022-11-03T01:37:00Z", "recording_required": True}]}]
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases, ensure_ascii=False), encoding="utf-8")
    assert cli("cases", "import", path).exit_code == 0
    inbox = tmp_path / "in"
    shutil.copytree(card, inbox)
    assert cli("ingest", inbox).exit_code == 0
    assert check(cli, CASE)[1][0]["actions"][0]["recordings"] == []
    # the card's names say officer JX0227, but the device is issued to JX0555: registering it links
    assert cli("devices", "add", "TA00716", "--label", "ZFY-01", "--officer", "JX0555").exit_code == 0
    code, report = check(cli, CASE)
    assert len(report[0]["actions"][0]["recordings"]) == 6
    for text in ("后叶罚", "占道", "JX0555"):
        assert [c["case_no"] for c in json.loads(cli("cases", "search", text, "--json").stdout)] == [CASE]
    assert json.loads(cli("cases", "search", "nothing-like-this", "--json").stdout) == []
    assert CASE in cli("cases", "list").stdout


def test_check_usage_and_unknown_case(cli, tmp_path: Path):
    assert cli("init").exit_code == 0
    assert cli("cases", "check").exit_code == 2
    missing = cli("cases", "check", "no-such-case")
    assert missing.exit_code == 2 and "no case 'no-such-case'" in missing.stderr
    assert cli("cases", "check", "--all").exit_code == 0


def test_search_officer_and_case_lookups_forgive_how_they_are_written(cli, recorder: Path, tmp_path: Path):
    """Every written form `cases show` accepts finds the same case in `cases search` and `--case`; an officer
    number is found however it is typed."""
    assert cli("ingest", recorder).exit_code == 0
    cases = tmp_path / "cases.csv"
    cases.write_text("case_no,title,stage,officers,start,end,recording_required\n"
                     "后叶罚〔2022〕12号,占道经营,调查取证,JX0227,2022-11-03T09:36:21,2022-11-03T09:36:45,是\n")
    assert cli("cases", "import", cases).exit_code == 0
    linked = json.loads(cli("recordings", "list", "--case", "后叶罚〔2022〕12号", "--json").stdout)
    for written in ("后叶罚[2022]12号", "后叶罚（2022）12号 ", "[2022]12", "〔２０２２〕１２号", "后叶罚【2022】12号"):
        found = json.loads(cli("cases", "search", written, "--json").stdout)
        assert [c["case_no"] for c in found] == ["后叶罚〔2022〕12号"], written
        if written.startswith("后叶罚"):  # a whole number: show takes it too
            assert cli("cases", "show", written).exit_code == 0, written
    assert json.loads(cli("recordings", "list", "--case", "后叶罚[2022]12号", "--json").stdout) == linked
    assert [c["case_no"] for c in json.loads(cli("cases", "search", "jx0227", "--json").stdout)] == \
        ["后叶罚〔2022〕12号"]
    mine = json.loads(cli("recordings", "list", "--officer", "JX0227", "--json").stdout)
    assert mine and all(json.loads(cli("recordings", "list", "--officer", form, "--json").stdout) == mine
                        for form in ("jx0227", "ＪＸ０２２７", " JX0227 "))
    assert json.loads(cli("cases", "search", "无此案", "--json").stdout) == []
