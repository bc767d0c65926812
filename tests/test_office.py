"""The office as it is: officers named by name through the personnel register, a voice recorder's files, lookups
however a number or a time is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import ffmpeg
import openpyxl
import pytest

CASE = "后叶罚〔2022〕12号"
# The card (conftest): JX0227's segments 09:36:21-09:36:33 on 2022-11-03, recorder TA00716.
HEADER = "案件编号,案件名称,当事人,案件类型,执法环节,执法人员,开始时间,结束时间\n"


def _events(data_dir: Path, action: str) -> list[dict]:
    lines = (data_dir / "custody.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["action"] == action]


def _people(path: Path, rows: list[list[str | None]]) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["后叶镇综合行政执法大队执法人员名册"])
    sheet.merge_cells("A1:D1")
    sheet.append(["姓名", "执法证号", "系统用户", "记录仪编号"])
    for row in rows:
        sheet.append(row)
    sheet.append(["制表人：张三", None, "日期：2022年12月31日"])
    book.save(path)
    return path


def test_officers_named_by_name_link_through_the_personnel_register(cli, card: Path, data_dir: Path,
                                                                    tmp_path: Path):
    assert cli("ingest", card).exit_code == 0
    register = tmp_path / "登记表.csv"
    register.write_text(HEADER + f"{CASE},占道经营,王某,行政处罚,调查取证,王建国、张三丰,2022年11月3日9时36分,"
                                 "2022年11月3日9时37分\n", encoding="gb18030")
    first = cli("cases", "import", register)
    assert first.exit_code == 0
    # before the register: neither name is known, and both are said to be, not a silent 0 %
    assert "officer 王建国: no 执法证号, recorder or recording" in first.stderr
    assert "officer 张三丰: no 执法证号" in first.stderr
    (before,) = json.loads(cli("cases", "check", CASE, "--json").stdout)
    assert before["actions"][0]["covered_s"] == 0 and before["unknown_officers"] == ["张三丰", "王建国"]

    people = _people(tmp_path / "名册.xlsx", [["王建国", "jx0227", "wangjg", "TA00716"],
                                            ["李 明", "ＪＸ０３００", None, "VR01、VR02"]])
    done = cli("people", "import", people, "--json")
    assert done.exit_code == 0, done.output
    # TA00716 was JX0227's already (its files say so); the voice recorders are new to the station
    assert json.loads(done.stdout) == {"added": 2, "updated": 0, "unchanged": 0, "recorders": 2, "renamed": 1,
                                       "links": 6}
    listed = json.loads(cli("people", "list", "--json").stdout)
    assert [(p["officer_no"], p["name"], p["user"], p["serials"], p["recordings"]) for p in listed] == [
        ("JX0227", "王建国", "wangjg", ["TA00716"], 6), ("JX0300", "李明", None, ["VR01", "VR02"], 0)]
    devices = {d["serial"]: d for d in json.loads(cli("devices", "list", "--json").stdout)}
    assert set(devices) == {"TA00716", "VR01", "VR02"}
    assert json.loads(cli("people", "import", people, "--json").stdout)["unchanged"] == 2
    (after,) = json.loads(cli("cases", "check", CASE, "--json").stdout)
    action = after["actions"][0]
    assert action["officers"] == ["JX0227", "张三丰"] and action["covered_s"] == pytest.approx(12, abs=0.1)
    assert after["unknown_officers"] == ["张三丰"]
    checked = cli("cases", "check", CASE)
    assert "warning: officer 张三丰" in checked.stdout and "王建国" not in checked.stdout
    event, _again = _events(data_dir, "people_import")
    assert event["details"]["officer_nos"] == ["JX0227", "JX0300"] and event["details"]["renamed"] == 1

    # a register read after the personnel register: the name becomes the number at once
    again = tmp_path / "again.csv"
    again.write_text(HEADER + "后叶罚〔2022〕13号,噪声,李某,检查,现场检查,王建国,2022-11-03 09:36,2022-11-03 09:37\n")
    second = cli("cases", "import", again)
    assert second.exit_code == 0 and second.stderr == ""
    shown = json.loads(cli("cases", "show", "后叶罚(2022)13号", "--json").stdout)
    assert shown["actions"][0]["officers"] == ["JX0227"] and shown["actions"][0]["coverage"] > 0.1
    assert (shown["party"], shown["kind"]) == ("李某", "检查")
    # the same file again changes nothing, and says so
    same = json.loads(cli("cases", "import", again, "--json").stdout)
    assert (same["cases_updated"], same["cases_unchanged"], same["actions_updated"]) == (0, 1, 0)
    # searches by the officer's name, the party, and the number however written
    for text in ("王建国", "李某", "[2022]13", "后叶罚（2022）13", " jx0227 "):
        found = [c["case_no"] for c in json.loads(cli("cases", "search", text, "--json").stdout)]
        assert "后叶罚〔2022〕13号" in found, text


def test_a_personnel_register_with_bad_rows_adds_nobody(cli, tmp_path: Path):
    assert cli("init").exit_code == 0
    bad = _people(tmp_path / "bad.xlsx", [["王建国", "JX0227", None, None], ["李明", None, None, None],
                                          ["赵六", "JX0227", None, None], ["钱七", "JX0400", "Not A User!", None]])
    result = cli("people", "import", bad)
    assert result.exit_code == 2
    assert "3 bad row(s), nobody imported" in result.stderr
    assert "line 4: 执法证号 is empty" in result.stderr and "line 5: 执法证号 JX0227 is given twice" in result.stderr
    no_header = tmp_path / "n.csv"
    no_header.write_text("名字,编号\n王建国,JX0227\n")
    refused = cli("people", "import", no_header)
    assert refused.exit_code == 2 and "no header row naming" in refused.stderr
    assert json.loads(cli("people", "list", "--json").stdout) == []


def _voice_recorder(root: Path) -> None:
    """A 录音笔's folder: one file named with its time, one with a running number; neither carries a creation
    time inside."""
    root.mkdir()
    for name, seconds in (("REC20221103-093700.WAV", 5), ("录音001.MP3", 8)):
        tone = ffmpeg.input("sine=frequency=440:sample_rate=16000", f="lavfi", t=seconds)
        ffmpeg.output(tone, str(root / name), ac=1, map_metadata=-1).overwrite_output().run(quiet=True)


def test_a_voice_recorder_covers_its_step_once_its_time_is_given(cli, data_dir: Path, tmp_path: Path):
    _voice_recorder(tmp_path / "vr")
    assert cli("ingest", tmp_path / "vr", "--device", "VR01", "--officer", "JX0300").exit_code == 0
    rows = {Path(r["original_path"]).name: r for r in json.loads(cli("recordings", "list", "--json").stdout)}
    named, numbered = rows["REC20221103-093700.WAV"], rows["录音001.MP3"]
    assert named["start"] == "2022-11-03T09:37:00+08:00" and named["flags"] == []
    assert numbered["start"] is None and numbered["flags"] == ["name_unparsed"]
    cases = tmp_path / "c.csv"
    cases.write_text(HEADER + f"{CASE},占道经营,王某,处罚,询问,JX0300,2022-11-03 09:37,2022-11-03 09:37:05\n"
                              f"{CASE},占道经营,王某,处罚,送达,JX0300,2022-11-03 10:00,2022-11-03 10:00:08\n")
    assert cli("cases", "import", cases).exit_code == 0
    (before,) = json.loads(cli("cases", "check", CASE, "--json").stdout)
    assert [a["coverage"] for a in before["actions"]] == [pytest.approx(1.0, abs=0.01), 0]

    linked = cli("cases", "link", CASE, str(numbered["id"]))
    assert linked.exit_code == 0
    assert f"#{numbered['id']} has no start time, so it covers no step" in linked.stderr

    refused = cli("recordings", "set-time", str(named["id"]), "2022-11-03 10:00", "--reason", "x")
    assert refused.exit_code != 0 and "is read from its file name" in refused.stderr
    assert cli("recordings", "set-time", str(numbered["id"]), "2022年11月3日", "--reason", "x").exit_code == 2
    done = cli("recordings", "set-time", str(numbered["id"]), "2022年11月3日10时0分", "--reason",
               "送达回证上记载的时间")
    assert done.exit_code == 0, done.output
    assert done.stdout == f"recording #{numbered['id']}: starts 2022-11-03 10:00:00, ends 2022-11-03 10:00:08; " \
                          f"cases {CASE}\n"
    code = cli("cases", "check", CASE, "--json")
    (after,) = json.loads(code.stdout)
    assert code.exit_code == 0 and [a["coverage"] for a in after["actions"]] == [pytest.approx(1.0, abs=0.01)] * 2
    (event,) = _events(data_dir, "recording_set_time")
    assert event["details"]["reason"] == "送达回证上记载的时间" and event["details"]["before"] is None
    assert event["details"]["start"] == "2022-11-03T10:00:00+08:00" and event["actor"]["user"] == "root"
    assert event["details"]["original_path"] == "录音001.MP3"
    shown = json.loads(cli("recordings", "show", str(numbered["id"]), "--json").stdout)
    assert shown["flags"] == ["name_unparsed", "time_set"] and shown["original_path"] == "录音001.MP3"
    assert cli("verify").exit_code == 0  # the file itself is as it was


def test_lookups_read_numbers_and_times_as_people_write_them(cli, card: Path, tmp_path: Path):
    assert cli("ingest", card).exit_code == 0
    cases = tmp_path / "c.csv"
    cases.write_text(HEADER + f"{CASE},占道经营,王某,处罚,调查取证,JX0227,2022-11-03 09:36,2022-11-03 09:37\n")
    assert cli("cases", "import", cases).exit_code == 0
    every = json.loads(cli("recordings", "list", "--json").stdout)
    for written in (CASE, "后叶罚[2022]12号", "后叶罚(2022)12号 ", "后叶罚【2022】１２号"):
        assert [c["case_no"] for c in json.loads(cli("cases", "search", written, "--json").stdout)] == [CASE]
        listed = json.loads(cli("recordings", "list", "--case", written, "--json").stdout)
        assert len(listed) == 6, written
    for officer in ("JX0227", "jx0227", " JX0227 ", "ＪＸ０２２７"):
        assert len(json.loads(cli("recordings", "list", "--officer", officer, "--json").stdout)) == len(every)
    for since in ("2022-11-03T09:36:30", "2022年11月3日9时36分30秒", "2022/11/3 9:36:30"):
        later = json.loads(cli("recordings", "list", "--since", since, "--json").stdout)
        assert 0 < len(later) < len(every), since
    bad = cli("recordings", "list", "--since", "昨天")
    assert bad.exit_code == 2 and "cannot read time '昨天'" in bad.stderr


def test_bytes_archived_already_under_a_name_with_a_time_are_not_archived_again(cli, card: Path, data_dir: Path,
                                                                                  tmp_path: Path):
    """A voice recorder's copy of a file the station holds already (the same bytes, a name without a time): one
    more sighting, no error, and no empty day folder for the day it was docked."""
    assert cli("ingest", card).exit_code == 0
    days = sorted(p.relative_to(data_dir) for p in (data_dir / "archive").glob("*/*/*"))
    copy = tmp_path / "vr"
    copy.mkdir()
    shutil.copy(next(card.rglob("*.WAV")), copy / "录音002.WAV")
    again = cli("ingest", copy, "--device", "VR01", "--json")
    assert again.exit_code == 0, again.output
    assert (json.loads(again.stdout)["ingested"], json.loads(again.stdout)["already_archived"]) == (0, 1)
    assert sorted(p.relative_to(data_dir) for p in (data_dir / "archive").glob("*/*/*")) == days
    assert cli("verify").exit_code == 0
