"""`cases report`: a self-contained page, rendered by a real headless Chromium, shows the gaps."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from conftest import chromium
from PIL import Image
from test_cases import CASE, HEADER, HOLEY, ROWS, write

from archiver.cases.report import GAP_COLOUR
from archiver.dock.simulate import make_recorder


def _red_columns(png: Path) -> list[int]:
    """x positions whose pixels are the gap colour."""
    target = tuple(int(GAP_COLOUR[i:i + 2], 16) for i in (1, 3, 5))
    image = Image.open(png).convert("RGB")
    width, height = image.size
    pixels = image.load()
    hits = set()
    for y in range(0, height, 2):
        for x in range(width):
            r, g, b = pixels[x, y]
            if abs(r - target[0]) < 12 and abs(g - target[1]) < 12 and abs(b - target[2]) < 12:
                hits.add(x)
    return sorted(hits)


def test_report_renders_gaps_in_headless_chromium(cli, tmp_path: Path):
    card = tmp_path / "holey"
    make_recorder(card, HOLEY)
    assert cli("ingest", card).exit_code == 0
    assert cli("cases", "import", write(tmp_path / "cases.csv", HEADER + ROWS)).exit_code == 0
    page = tmp_path / "report.html"
    result = cli("cases", "report", CASE, "--html", page)
    assert result.exit_code == 0 and "NOT compliant" in result.stdout

    html = page.read_text(encoding="utf-8")
    assert CASE in html and "<script" not in html
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)  # nothing fetched from anywhere
    assert html.count('class="gap"') == 2  # the two holes of 调查取证; 送达 is fully covered
    shown = set(re.findall(r"<code>([0-9a-f]{64})</code>", html))
    linked = {r["sha256"] for r in json.loads(cli("recordings", "list", "--case", CASE, "--json").stdout)}
    assert shown == linked and len(shown) == 4  # every linked recording, with its full hash

    shot = tmp_path / "report.png"
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--window-size=1100,1400",
                    f"--screenshot={shot}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    columns = _red_columns(shot)
    assert columns, "no gap drawn"
    # two separate red bands: the 10 s hole and the 6 s hole at the end of the 24 s window
    bands = 1 + sum(1 for a, b in zip(columns, columns[1:], strict=False) if b - a > 3)
    assert bands >= 2
    # 16 s of holes on an axis of 32 s (the linked recordings span 09:36:21-53) 920 px wide
    assert 0.7 < len(columns) / (920 * 16 / 32) < 1.3


def test_report_of_unknown_case_and_unwritable_target(cli, tmp_path: Path):
    assert cli("init").exit_code == 0
    assert cli("cases", "report", "nope", "--html", tmp_path / "x.html").exit_code == 2
    assert cli("cases", "import", write(tmp_path / "cases.csv", HEADER + ROWS)).exit_code == 0
    bad = cli("cases", "report", CASE, "--html", tmp_path / "missing" / "x.html")
    assert bad.exit_code == 2 and bad.stderr.startswith("Error: cannot write the report to")


def test_report_shows_what_each_video_shows_made_once_and_kept_out_of_the_archive(cli, tmp_path: Path, data_dir):
    from archiver.dock.simulate import RecorderSpec

    card = tmp_path / "ten"
    make_recorder(card, RecorderSpec(serial="TC00010", officer="JX0010", segments=10, audio=0, photos=0))
    videos = sorted(card.rglob("*.MP4"))
    assert len(videos) == 10
    cut = videos[4]
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 3])  # truncated: ffmpeg cannot read it
    assert cli("ingest", card).exit_code in (0, 1)  # archived either way, the cut one flagged unreadable
    rows = "case_no,title,stage,officers,start,end,recording_required\n" \
           "图-1,t,调查取证,JX0010,2022-11-03T09:36:21,2022-11-03T09:37:01,true\n"
    assert cli("cases", "import", write(tmp_path / "c.csv", rows)).exit_code == 0
    page = tmp_path / "pictures.html"
    assert cli("cases", "report", "图-1", "--html", page).exit_code == 0
    html = page.read_text(encoding="utf-8")
    assert html.count('<img class="frames"') == 9 and html.count("no pictures: ffmpeg cannot read this file") == 1
    assert page.stat().st_size < 2 << 20 and not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    cache = data_dir / "cache" / "thumbnails"
    made = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert len(made) == 10 and not list((data_dir / "archive").rglob("*.jpg"))
    frame = Image.open(next(p for p in cache.iterdir() if p.stat().st_size))
    assert frame.width == 4 * 160  # four frames side by side
    again = tmp_path / "again.html"
    assert cli("cases", "report", "图-1", "--html", again).exit_code == 0
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == made  # made once
    assert re.findall(r'src="(data:[^"]+)"', again.read_text()) == re.findall(r'src="(data:[^"]+)"', html)
    # a symlink planted where the cache lives is never written through
    shutil.rmtree(cache)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cache.symlink_to(elsewhere)
    planted = cli("cases", "report", "图-1", "--html", tmp_path / "third.html")
    assert planted.exit_code == 3 and "symlink" in planted.stderr and not list(elsewhere.iterdir())
