"""Case files as Chinese offices have them: GB18030 CSV from Excel or WPS, .xlsx with Chinese headers
and date cells, officers separated by 、 or ；, the time forms Excel writes, extra and empty columns.
The same cases in every form give the same catalog; anything still ambiguous is refused by line."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from archiver.cases.casefile import CaseFileError, read_case_file
from archiver.cases.times import parse_office_time

TZ = ZoneInfo("Asia/Shanghai")
CASE = "后叶罚〔2022〕12号"
ZH_HEADER = "案件编号,案件名称,执法环节,执法人员,开始时间,结束时间,是否需要记录,备注,"
ROWS = [
    (CASE, "占道经营", "调查取证", "JX0227、JX0555", "2022/11/3 9:36:21", "2022年11月3日 9:36:33", "是", "现场"),
    (CASE, "占道经营", "告知", "JX0227；JX0555", "2022-11-03 09:40:00", "2022.11.3 9:41", "否", ""),
]


def _csv(rows=ROWS, header=ZH_HEADER) -> str:
    return header + "\n" + "".join(",".join(row) + ",\n" for row in rows)


def _xlsx(path: Path) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(ZH_HEADER.rstrip(",").split(","))
    sheet.append([CASE, "占道经营", "调查取证", "JX0227、JX0555", datetime(2022, 11, 3, 9, 36, 21),
                  datetime(2022, 11, 3, 9, 36, 33), "是", "现场"])
    sheet.append([CASE, "占道经营", "告知", "JX0227；JX0555", datetime(2022, 11, 3, 9, 40),
                  "2022.11.3 9:41", "否", None])
    book.save(path)
    return path


def _actions(records) -> list[tuple]:
    return [(r.case_no, r.title, a.stage, a.officers, a.start, a.end, a.recording_required)
            for r in records for a in r.actions]


EXPECTED = [
    (CASE, "占道经营", "调查取证", ("JX0227", "JX0555"), datetime(2022, 11, 3, 9, 36, 21, tzinfo=TZ),
     datetime(2022, 11, 3, 9, 36, 33, tzinfo=TZ), True),
    (CASE, "占道经营", "告知", ("JX0227", "JX0555"), datetime(2022, 11, 3, 9, 40, tzinfo=TZ),
     datetime(2022, 11, 3, 9, 41, tzinfo=TZ), False),
]


@pytest.mark.parametrize("form", ["utf-8", "utf-8-sig", "gb18030", "xlsx"])
def test_every_office_form_reads_the_same_cases(form: str, tmp_path: Path):
    if form == "xlsx":
        name, data = "cases.xlsx", _xlsx(tmp_path / "cases.xlsx").read_bytes()
    else:
        name, data = "cases.csv", _csv().encode(form)
    records, notes = read_case_file(name, data, TZ)
    assert _actions(records) == EXPECTED
    assert notes == ["column 8 (备注) left out: not one of the case file's columns"]


@pytest.mark.parametrize("text,expected", [
    ("2023/3/5 9:30", datetime(2023, 3, 5, 9, 30)),
    ("2023年3月5日 9:30", datetime(2023, 3, 5, 9, 30)),
    ("2023年3月5日9时30分", datetime(2023, 3, 5, 9, 30)),  # as registers are typed
    ("2023年3月5日下午2时5分", datetime(2023, 3, 5, 14, 5)), ("2023年3月5日 上午9:30", datetime(2023, 3, 5, 9, 30)),
    ("2023年3月5日9时", datetime(2023, 3, 5, 9, 0)),
    ("2023/03/05 09:30:00", datetime(2023, 3, 5, 9, 30)),
    ("2023-3-5 9:30:15", datetime(2023, 3, 5, 9, 30, 15)),
    ("2023.3.5 9:30", datetime(2023, 3, 5, 9, 30)),
    ("２０２３／３／５　９：３０", datetime(2023, 3, 5, 9, 30)),  # full-width, as an IME types it
    ("2023-03-05T09:30:00+08:00", datetime.fromisoformat("2023-03-05T09:30:00+08:00")),
    ("2023-03-05 09:30", datetime(2023, 3, 5, 9, 30)),
    ("2023/3/5", None),  # a date without a time of day
    ("2023/13/5 9:30", None), ("2023/2/30 9:30", None), ("5/3/2023 9:30", None), ("44990.39", None), ("", None),
])
def test_excel_and_wps_time_forms(text: str, expected: datetime | None):
    assert parse_office_time(text) == expected


@pytest.mark.parametrize("officers", ["JX0227、JX0555", "JX0227；JX0555", "JX0227;JX0555", "JX0227，JX0555",
                                      "JX0227/JX0555", "JX0227 JX0555", " JX0227 、 JX0555 ", "JX0227、、JX0555"])
def test_officers_in_every_separator_offices_write(officers: str):
    row = (CASE, "t", "s", officers, "2022-11-03T09:00:00", "2022-11-03T10:00:00", "true")
    records, _ = read_case_file("c.csv", _csv([row], "case_no,title,stage,officers,start,end,recording_required")
                                .encode(), TZ)
    assert records[0].actions[0].officers == ("JX0227", "JX0555")


@pytest.mark.parametrize("data,encoding,fragment", [
    (b"\xff\xfe\x00\x01garbage", None, "neither UTF-8 nor GB18030"),
    (_csv().encode("gb18030"), "utf-8", "is not utf-8 text (byte"),
    (_csv().encode(), "klingon", "unknown encoding 'klingon'"),
    ((ZH_HEADER + "\n" + ",".join(ROWS[0]) + ",,extra\n").encode(), None, "line 2: 10 fields, the header has 9"),
    ("案件编号,案件名称,执法环节,开始时间,结束时间,是否需要记录\n".encode(), None, "missing column(s) officers"),
    ("案件编号,案号,案件名称,执法环节,执法人员,开始时间,结束时间,是否需要记录\n".encode(), None,
     "column(s) 案件编号, 案号 given twice"),
    (_csv([(CASE, "t", "s", "JX1", "2022/11/3", "2022/11/3 10:00", "是", "")]).encode(), None,
     "line 2: cannot read 开始时间 '2022/11/3'"),
])
def test_what_is_still_ambiguous_is_refused_with_its_line(data: bytes, encoding: str | None, fragment: str):
    with pytest.raises(CaseFileError) as caught:
        read_case_file("c.csv", data, TZ, encoding)
    assert fragment in str(caught.value)


def test_a_workbook_that_is_not_one_is_named(tmp_path: Path):
    with pytest.raises(CaseFileError, match="is not a readable .xlsx workbook"):
        read_case_file("c.xlsx", b"PK\x03\x04 not really", TZ)


def _catalog(data_dir: Path) -> list[tuple]:
    db = sqlite3.connect(data_dir / "catalog.db")
    try:
        return db.execute("SELECT c.case_no, c.title, a.stage, a.start, a.end, a.recording_required, "
                          "group_concat(o.officer_no) FROM cases c JOIN actions a ON a.case_id = c.id "
                          "JOIN action_officers o ON o.action_id = a.id GROUP BY a.id ORDER BY a.start").fetchall()
    finally:
        db.close()


def test_gb18030_csv_and_xlsx_import_into_identical_catalogs_and_the_case_is_compliant(cli, card: Path,
                                                                                    tmp_path: Path):
    gbk = tmp_path / "cases.csv"
    gbk.write_bytes(_csv().encode("gb18030"))
    book = _xlsx(tmp_path / "cases.xlsx")
    catalogs = []
    for source in (gbk, book):
        data = tmp_path / f"data-{source.suffix[1:]}"
        assert cli("ingest", card, data=data).exit_code == 0
        checked = cli("cases", "import", source, "--check", "--json", data=data)
        assert checked.exit_code == 0 and json.loads(checked.stdout)[0]["actions"][0]["officers"] == \
            ["JX0227", "JX0555"]
        assert _catalog(data) == []  # --check imports nothing
        imported = cli("cases", "import", source, data=data)
        assert imported.exit_code == 0, imported.stderr
        assert "column 8 (备注) left out" in imported.stderr
        catalogs.append(_catalog(data))
        verdict = cli("cases", "check", CASE, "--json", data=data)
        assert verdict.exit_code == 0 and json.loads(verdict.stdout)[0]["compliant"] is True
    assert catalogs[0] == catalogs[1] and len(catalogs[0]) == 2


# -- forgiving lookups, exact storage ----------------------------------------------------------------
YC = "叶城罚〔2023〕31号"


@pytest.mark.parametrize("typed", [YC, "叶城罚[2023]31号", "叶城罚(2023)31号", "叶城罚（2023）31号",
                                   "叶城罚【2023】31号", "叶城罚 [2023] 31号", "叶城罚［２０２３］３１号",
                                   " 叶城罚〔2023〕31号 "])
def test_a_case_is_found_however_its_brackets_are_typed(cli, tmp_path: Path, typed: str):
    source = tmp_path / "c.csv"
    source.write_text("case_no,title,stage,officers,start,end,recording_required\n"
                      f"{YC},t,调查取证,JX0227,2022-11-03T09:36:21,2022-11-03T09:36:33,是\n")
    assert cli("cases", "import", source).exit_code == 0
    shown = cli("cases", "show", typed, "--json")
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["case_no"] == YC  # stored exactly as imported
    assert cli("cases", "check", typed).exit_code == 1  # found (no recordings: not compliant)
    assert cli("recordings", "list", "--case", typed).exit_code == 0


def test_a_key_that_fits_several_cases_lists_them_and_exact_numbers_still_win(cli, tmp_path: Path):
    source = tmp_path / "c.csv"
    rows = "".join(f"{n},t,s,JX1,2022-11-03T09:00:00,2022-11-03T10:00:00,否\n"
                   for n in ("X〔2023〕1号", "X(2023)1号", "Y〔2023〕2号"))
    source.write_text("case_no,title,stage,officers,start,end,recording_required\n" + rows)
    assert cli("cases", "import", source).exit_code == 0
    both = cli("cases", "show", "X[2023]1号")
    assert both.exit_code == 2 and both.stdout == ""
    assert both.stderr == ("Error: 'X[2023]1号' could be any of 2 cases: 'X(2023)1号', 'X〔2023〕1号'; give the "
                           "number as one of them reads\n")
    for exact in ("X(2023)1号", "X〔2023〕1号"):
        assert json.loads(cli("cases", "show", exact, "--json").stdout)["case_no"] == exact
    assert cli("cases", "show", "Y(2023)2号").exit_code == 0
    missing = cli("cases", "show", "Z〔2023〕9号")
    assert missing.exit_code == 2 and "no case 'Z〔2023〕9号'" in missing.stderr


# -- a case imported by mistake, and what `cases check` prints -------------------------------------------
def test_a_wrong_case_is_removed_with_a_reason_and_its_recordings_stay(cli, card: Path, tmp_path: Path,
                                                                        data_dir: Path):
    assert cli("ingest", card).exit_code == 0
    source = tmp_path / "c.csv"
    source.write_bytes(_csv().encode("gb18030"))
    assert cli("cases", "import", source).exit_code == 0
    assert cli("cases", "link", CASE, "1").exit_code == 0
    refused = cli("cases", "remove", CASE)
    assert refused.exit_code == 2 and "Missing option '--reason'" in refused.stderr
    assert cli("cases", "remove", CASE, "--reason", " ").exit_code == 2
    before = json.loads(cli("recordings", "list", "--json").stdout)
    removed = cli("cases", "remove", "后叶罚[2022]12号", "--reason", "导入了错误的表")
    assert removed.exit_code == 0, removed.stderr
    assert removed.stdout == f"{CASE}: removed with its 2 action(s); 6 recording(s) stay archived, no longer linked " \
                             "to it\n"
    assert json.loads(cli("cases", "list", "--json").stdout) == []
    assert [{**r, "cases": []} for r in before] == json.loads(cli("recordings", "list", "--json").stdout)
    assert _catalog(data_dir) == []
    db = sqlite3.connect(data_dir / "catalog.db")
    assert db.execute("SELECT count(*) FROM action_links").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM case_links").fetchone()[0] == 0
    db.close()
    events = [json.loads(line) for line in (data_dir / "custody.jsonl").read_text().splitlines()]
    (event,) = [e for e in events if e["action"] == "case_remove"]
    assert (event["subject"], event["details"]["reason"], event["details"]["actions"]) == \
        ({"case_no": CASE}, "导入了错误的表", 2)
    assert cli("cases", "remove", CASE, "--reason", "again").exit_code == 2  # gone: named, nothing done
    assert cli("verify").exit_code == 0


def test_cases_check_prints_each_action_with_its_coverage_and_gaps(cli, card: Path, tmp_path: Path):
    assert cli("ingest", card).exit_code == 0
    rows = [(CASE, "t", "调查取证", "JX0227", "2022-11-03 09:36:00", "2022-11-03 09:36:33", "是", "")]
    source = tmp_path / "c.csv"
    source.write_text(_csv(rows))
    assert cli("cases", "import", source).exit_code == 0
    checked = cli("cases", "check", CASE)
    assert checked.exit_code == 1
    assert checked.stdout == (
        f"FAIL {CASE}: 1 action(s), 1 gap(s)\n"
        "  调查取证 2022-11-03 09:36:00 – 2022-11-03 09:36:33 (recording required; officers JX0227): "
        "covered 12 s, 36.4%\n"
        "    gap 2022-11-03 09:36:00 – 2022-11-03 09:36:21\n")


def _register(path: Path) -> Path:
    """A 案件登记表 as a township office keeps it: a title row merged across the sheet, a row for the unit and
    date, the header (no "recording required" column; 当事人 and 案件类型 beside), each case's cells merged
    down over its steps, times as people type them, a signature row at the foot."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["后叶镇综合行政执法大队2022年案件登记表"])
    sheet.merge_cells("A1:H1")
    sheet.append(["填报单位：后叶镇综合行政执法大队", None, None, None, None, "填报日期：2022年12月31日"])
    sheet.append(["案件编号", "案件名称", "当事人", "案件类型", "执法环节", "执法人员", "开始时间", "结束时间",
                  "结案日期"])
    sheet.append([CASE, "占道经营", "王某", "行政处罚", "调查取证", "JX0227、JX0555", "2022年11月3日9时36分",
                  "2022年11月3日9时50分", "2022年11月20日"])
    sheet.append([None, None, None, None, "送达", "JX0227", "2022年11月5日 下午2:30", "2022年11月5日下午2时40分"])
    for column in "ABCDI":
        sheet.merge_cells(f"{column}4:{column}5")
    sheet.append(["后叶罚〔2022〕13号", "噪声扰民", "李某", "检查", "现场检查", "JX0555", "2022/12/1 10:00",
                  "2022/12/1 10:30"])
    sheet.append([])
    sheet.append(["制表人：张三", None, "审核人：李四", None, None, "日期：2022年12月31日"])
    book.save(path)
    return path


def test_a_register_as_the_office_keeps_it_is_read_as_it_is(tmp_path: Path):
    records, notes = read_case_file("登记表.xlsx", _register(tmp_path / "r.xlsx").read_bytes(), TZ)
    got = [(r.case_no, r.title, [(a.stage, a.officers, a.start.isoformat(), a.end.isoformat(), a.recording_required)
                                 for a in r.actions]) for r in records]
    assert got == [
        (CASE, "占道经营", [
            ("调查取证", ("JX0227", "JX0555"), "2022-11-03T09:36:00+08:00", "2022-11-03T09:50:00+08:00", True),
            ("送达", ("JX0227",), "2022-11-05T14:30:00+08:00", "2022-11-05T14:40:00+08:00", True)]),
        ("后叶罚〔2022〕13号", "噪声扰民", [
            ("现场检查", ("JX0555",), "2022-12-01T10:00:00+08:00", "2022-12-01T10:30:00+08:00", True)]),
    ]
    assert [(r.party, r.kind, r.closed_at and r.closed_at.isoformat()) for r in records] == [
        ("王某", "行政处罚", "2022-11-20T00:00:00+08:00"), ("李某", "检查", None)]
    assert notes == []


def test_a_wps_csv_in_gb18030_with_a_title_row_and_columns_of_its_own(tmp_path: Path):
    text = ("后叶镇2022年检查登记\n"
            "案件编号,检查事项,当事人,执法环节,执法人员,开始时间,结束时间\n"
            f"{CASE},占道经营,王某,现场检查,JX0227,2022年11月3日上午9时36分,2022年11月3日上午9时50分\n"
            "制表人：张三,,,,,,\n")
    records, _notes = read_case_file("检查.csv", text.encode("gb18030"), TZ)
    (case,) = records
    (action,) = case.actions
    assert (case.case_no, case.title, case.party, action.stage, action.officers, action.start.hour,
            action.recording_required) == (CASE, "占道经营", "王某", "现场检查", ("JX0227",), 9, True)


def test_without_a_required_column_the_configured_steps_are_not_required(tmp_path: Path):
    text = ("案件编号,案件名称,执法环节,执法人员,开始时间,结束时间\n"
            f"{CASE},占道经营,立案审批,JX0227,2022-11-03 09:00,2022-11-03 09:10\n"
            f"{CASE},占道经营,调查取证,JX0227,2022-11-03 09:36,2022-11-03 09:50\n")
    records, _notes = read_case_file("c.csv", text.encode(), TZ, not_required={"立案审批"})
    assert [(a.stage, a.recording_required) for a in records[0].actions] == [("立案审批", False), ("调查取证", True)]
    with_column = text.replace("结束时间\n", "结束时间,是否需要记录\n").replace("09:10\n", "09:10,是\n").replace(
        "09:50\n", "09:50,否\n")
    records, _notes = read_case_file("c.csv", with_column.encode(), TZ, not_required={"立案审批"})
    assert [a.recording_required for a in records[0].actions] == [True, False]  # the register's own word wins
