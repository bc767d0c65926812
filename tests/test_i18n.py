"""The interface in the person's language: the catalogs are complete, and the real command speaks
Chinese under a Chinese locale (or `ui.language`), English otherwise, JSON always English."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from runner import ARCHIVER

from archiver import i18n
from archiver.cli import main
from archiver.i18n import catalogs
from archiver.i18n.text import break_points, cells, shorten_middle
from archiver.operations.access import MATRIX

CASE = "后叶罚〔2022〕12号"
PLACEHOLDER = re.compile(r"\{[^{}]*\}|%\([a-z_]+\)[sd]")


def _po():
    with catalogs.po_file().open("rb") as fh:
        return read_po(fh, locale=i18n.CHINESE)


def _text(value) -> str:
    return value if isinstance(value, str) else value[-1] if value else ""


# -- the catalogs --------------------------------------------------------------------------------

def test_every_message_in_the_code_has_a_chinese_translation():
    """Every message the interface can show (marked in the code, every command's and option's help,
    click's own words) is translated in zh_CN, keeps its placeholders, and is not fuzzy. A new message
    fails here until `scripts/i18n` has merged it and someone has translated it."""
    po = _po()
    missing, broken = [], []
    for message in catalogs.template(main):
        if not message.id:
            continue
        key = message.id
        found = po.get(key)
        if found is None or found.fuzzy or not all(found.string if isinstance(found.string, tuple)
                                                    else (found.string,)):
            missing.append(_text(key))
            continue
        if sorted(set(PLACEHOLDER.findall(_text(key)))) != sorted(set(PLACEHOLDER.findall(_text(found.string)))):
            broken.append(_text(key))
    assert not missing, f"{len(missing)} message(s) without a Chinese translation (run scripts/i18n): {missing[:10]}"
    assert not broken, f"translations that lose or add a placeholder: {broken[:10]}"


def test_the_installed_catalog_is_compiled_from_the_po_in_the_repository():
    """What the program reads (the .mo made on install) says what the .po says: a stale build fails here."""
    po = _po()
    compiled = i18n.translations(i18n.CHINESE)
    assert compiled.info().get("language") == "zh_CN"
    stale = [message.id for message in po if message.id and isinstance(message.id, str)
             and compiled.gettext(message.id) != message.string]
    assert not stale, f"the compiled catalog is older than the .po (reinstall: scripts/test does): {stale[:5]}"


def test_the_glossary_terms_are_used_throughout():
    """Each checked term of locale/glossary.md: every message whose English holds it holds its Chinese."""
    text = (i18n.LOCALE_DIR / "glossary.md").read_text()
    checked = text.split("## Checked terms")[1].split("## Other terms")[0]
    terms = [(en.strip(), zh.strip()) for en, zh in re.findall(r"^\| ([^|]+) \| ([^|]+) \|", checked, re.M)
             if en.strip() not in ("English", "---")]
    assert len(terms) >= 10 and ("recorder", "执法记录仪") in terms and ("retrieve", "调阅") in terms
    wrong = [(en, _text(m.id)) for m in _po() if m.id for en, zh in terms
             if re.search(rf"\b{re.escape(en)}", PLACEHOLDER.sub("", _text(m.id)), re.I) and zh not in _text(m.string)]
    assert not wrong, wrong[:5]


# -- choosing the language (pure) --------------------------------------------------------------------

@pytest.mark.parametrize(("environ", "configured", "language"), [
    ({"LANG": "zh_CN.UTF-8"}, None, "zh_CN"),
    ({"LANG": "zh_CN.GB18030"}, "auto", "zh_CN"),
    ({"LANG": "C.UTF-8"}, None, "en"),
    ({}, None, "en"),
    ({"LANG": "zh_CN.UTF-8", "LC_MESSAGES": "C"}, None, "en"),
    ({"LANG": "C", "LC_MESSAGES": "zh_CN.UTF-8"}, None, "zh_CN"),
    ({"LC_ALL": "en_US.UTF-8", "LANG": "zh_CN.UTF-8"}, None, "en"),
    ({"LANGUAGE": "zh_CN:en", "LANG": "C"}, None, "zh_CN"),
    ({"LANG": "C.UTF-8"}, "zh_CN", "zh_CN"),
    ({"LANG": "zh_CN.UTF-8"}, "en", "en"),
])
def test_the_language_follows_the_config_then_the_locale(environ, configured, language):
    assert i18n.choose(environ, configured) == language


def test_terminal_columns_and_line_breaks():
    assert cells("abc") == 3 and cells("执法记录仪") == 10 and cells("〔2022〕") == 8
    path = "archive/2022/11/03/TA00716/TA00716_JX0227_20221103093621.MP4"
    short = shorten_middle(path, 30)
    assert cells(short) == 30 and short.startswith("archive/") and short.endswith("093621.MP4") and "…" in short
    assert shorten_middle(path, len(path)) == path
    assert cells(shorten_middle("叶城罚〔2023〕31号关于某某违法建设的处罚", 21)) <= 21
    # a line never starts with closing punctuation, never ends with an opening bracket
    assert break_points("写法（2023/3/5、2023年），重复") == ["写", "法", "（2023/3/5、", "2023", "年），", "重", "复"]


# -- the real command, in each language ----------------------------------------------------------------

@pytest.fixture
def station(card: Path, tmp_path: Path):
    """A data dir with the card ingested and a case imported; `run(*args, lang=...)` runs the real
    `archiver` executable (as a person at a terminal would, through its entry point)."""
    config = tmp_path / "archiver.toml"
    config.write_text("")
    base = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}
    base |= {"ARCHIVER_DATA_DIR": str(tmp_path / "data"), "ARCHIVER_CONFIG": str(config)}

    def run(*args: str, lang: str = "C.UTF-8", check: int | None = 0) -> subprocess.CompletedProcess:
        done = subprocess.run([str(ARCHIVER), *map(str, args)], env=base | {"LANG": lang}, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        if check is not None:
            assert done.returncode == check, done.stderr
        return done

    run("ingest", card)
    cases = tmp_path / "cases.csv"
    cases.write_text("案件编号,案件名称,执法环节,执法人员,开始时间,结束时间,是否需要记录\n"
                     f"{CASE},某某占道经营案,调查取证,JX0227、JX0228,2022/11/3 9:36,2022/11/3 9:50,是\n",
                     encoding="gb18030")
    run("cases", "import", cases)
    run.config = config
    run.env = base
    return run


def test_help_is_in_the_persons_language(station):
    zh, en = station("--help", lang="zh_CN.UTF-8").stdout, station("--help").stdout
    assert zh.startswith("用法: archiver [OPTIONS] COMMAND [ARGS]...\n\n  执法记录仪证据存档系统")
    assert "\n选项:\n" in zh and "\n命令:\n" in zh and "显示此帮助并退出。" in zh
    assert en.startswith("Usage: archiver [OPTIONS] COMMAND [ARGS]...\n\n  Evidence archiver for body-camera")
    assert "\nOptions:\n" in en and "Show this message and exit." in en and not re.search(r"[\u4e00-\u9fff]", en)
    sub = station("recordings", "get", "--help", lang="zh_CN.UTF-8").stdout
    assert "调阅事由：记入保管日志。" in sub and "把记录文件（编号或 sha256 前缀，或 --case）调阅到文件夹 DEST" in sub
    assert "[必填]" in sub and "required" not in sub


def test_tables_errors_and_usage_errors_are_in_the_persons_language(station):
    zh = station("recordings", "list", lang="zh_CN.UTF-8").stdout
    en = station("recordings", "list").stdout
    for word in ("编号", "设备", "执法人员", "原始路径", "6 个记录文件"):
        assert word in zh
    for word in ("ID", "Device", "Officer", "Original path", "6 recording(s)"):
        assert word in en
    assert "视频" in zh and "照片" in zh and "video" in en
    wrong = station("cases", "show", "后叶罚〔2022〕99号", lang="zh_CN.UTF-8", check=2)
    assert wrong.stderr == "错误：没有案件 '后叶罚〔2022〕99号'：见 'archiver cases list' 或 'archiver cases search'\n"
    assert station("cases", "show", "后叶罚〔2022〕99号", check=2).stderr == (
        "Error: no case '后叶罚〔2022〕99号': see 'archiver cases list' or 'archiver cases search'\n")
    typo = station("cases", "shw", lang="zh_CN.UTF-8", check=2).stderr
    assert "错误：没有命令 'shw'。" in typo and "'show'" in typo and "运行 'archiver cases --help' 查看帮助。" in typo
    checked = station("cases", "check", "后叶罚[2022]12号", lang="zh_CN.UTF-8", check=1).stdout
    assert checked.startswith(f"不符合 {CASE}：1 个执法环节，2 处空档\n  调查取证 2022-11-03 09:36:00 – "
                              "2022-11-03 09:50:00（需要记录；执法人员 JX0227, JX0228）：覆盖 12 秒，1.4%\n")


def test_json_stays_english_and_stable_under_a_chinese_locale(station):
    zh = station("cases", "check", CASE, "--json", lang="zh_CN.UTF-8", check=1).stdout
    assert zh == station("cases", "check", CASE, "--json", check=1).stdout
    assert json.loads(zh)[0]["compliant"] is False
    error = station("cases", "show", "nothing", "--json", lang="zh_CN.UTF-8", check=2).stderr
    assert error == "Error: no case 'nothing': see 'archiver cases list' or 'archiver cases search'\n"


def test_the_html_report_is_in_the_persons_language(station, tmp_path: Path):
    station("cases", "report", CASE, "--html", tmp_path / "zh.html", lang="zh_CN.UTF-8")
    station("cases", "report", CASE, "--html", tmp_path / "en.html")
    zh, en = (tmp_path / "zh.html").read_text(), (tmp_path / "en.html").read_text()
    assert '<html lang="zh-CN">' in zh and '<html lang="en">' in en
    assert 'id="verdict">不符合：记录存在空档</p>' in zh and "执法全过程记录检查，生成于" in zh
    assert "<th>类型</th><th>执法人员</th>" in zh and "2 处空档" in zh
    assert 'id="verdict">NOT compliant: recording gaps</p>' in en and "<th>type</th><th>officer</th>" in en
    assert not re.search(r"<th>[^<]*[\u4e00-\u9fff]", en)


def test_ui_language_in_the_config_wins_over_the_locale(station):
    station.config.write_text('[ui]\nlanguage = "zh_CN"\n')
    assert "用法:" in station("--help").stdout
    station.config.write_text('[ui]\nlanguage = "en"\n')
    assert station("status", lang="zh_CN.UTF-8").stdout.startswith("data dir ")
    station.config.write_text('[ui]\nlanguage = "fr"\n')
    bad = station("status", lang="zh_CN.UTF-8", check=2).stderr
    assert bad == f"错误：{station.config} 中的 'ui.language' 必须是以下之一：auto, en, zh_CN\n"


def _terminal(argv: list[str], env: dict[str, str], columns: int = 80) -> str:
    """What a person sees running `argv` on a terminal `columns` wide (a real pty)."""
    leader, follower = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
                            env=env | {"COLUMNS": str(columns), "TERM": "dumb"}, close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        ready, _w, _x = select.select([leader], [], [], 60)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode().replace("\r\n", "\n")


@pytest.mark.parametrize("lang", ["C.UTF-8", "zh_CN.UTF-8"])
def test_tables_fit_an_80_column_terminal_and_never_cut_a_time(station, lang: str):
    for args in (["cases", "show", CASE], ["recordings", "list"], ["cases", "list"]):
        seen = _terminal([str(ARCHIVER), *args], station.env | {"LANG": lang})
        lines = seen.splitlines()
        assert lines and max(cells(line) for line in lines) <= 80, seen
        if args[1] != "list" or args[0] == "recordings":
            times = re.findall(r"2022-11-03 \d\d:\d\d:\d\d", seen)
            assert len(times) >= 6, seen  # every start (and end) shown whole, never "2022-11…"
        assert "2022-11…" not in seen and "2022-1…" not in seen
    shown = _terminal([str(ARCHIVER), "cases", "show", CASE], station.env | {"LANG": lang})
    assert re.search(r"\barchive\S*…\S*093621\.MP4\b", shown), shown  # paths lose their middle, keep their ends


def test_no_module_rebinds_the_translation_function():
    """`_` is the translation function wherever it is imported: a throwaway `_` (a loop variable, an
    unpacked value) in such a module makes a later message raise instead of printing."""
    import ast

    package = Path(i18n.__file__).resolve().parents[1]
    offenders = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text())
        if not any(isinstance(n, ast.ImportFrom) and any(a.name == "_" for a in n.names) for n in ast.walk(tree)):
            continue
        offenders += [f"{path.relative_to(package)}:{n.lineno}" for n in ast.walk(tree)
                      if isinstance(n, ast.Name) and n.id == "_" and isinstance(n.ctx, ast.Store)]
    assert not offenders, offenders


def test_no_message_hides_inside_an_f_string():
    """`f"{_('...')}"`: the extractor does not look inside f-strings, so such a message would never reach
    the catalog (and stay English) without any other test noticing."""
    import ast

    package = Path(i18n.__file__).resolve().parents[1]
    hidden = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.JoinedStr):
                hidden += [f"{path.relative_to(package)}:{call.lineno}" for value in node.values
                           if isinstance(value, ast.FormattedValue) for call in ast.walk(value.value)
                           if isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                           and call.func.id in ("_", "N_", "ngettext")]
    assert not hidden, hidden


# -- no English left in the Chinese interface ------------------------------------------------------------

# What a Chinese reader may see in Latin letters: names of things (the program, its commands and options, file
# formats, hashes, units) and what the data itself holds (paths, hashes, officer numbers, serials).
_LATIN_OK = re.compile(
    r"'archiver[^']*'|archiver(?:-[a-z]+)?(?: [a-z-]+)*|--[a-z][a-z-]*|"
    r"\b(?:SHA-256|sha256|sm3|JSON|CSV|HTML|UTF-8|GB18030|UTC|UUID|ffprobe|age|[KMGT]?i?B(?:/s)?|ext4|vfat|xlsx|csv|json|html)\b|"
    r"[\w.\-/〔〕\[\]]*/[\w.\-/〔〕\[\]]*|[\w\-]+\.(?:MP4|MOV|WAV|MP3|JPG|LOG|INI|csv|xlsx|html|json|toml|db|jsonl)\b|"
    r"\b[0-9a-f]{8,64}\b|\b[A-Z]{1,4}\d{2,}\b|\b[A-Z]{2}\d+\b|"
    r"\{.*|ed25519:\S+|\broot\b|"  # an event as signed; a key; a user's name
    r"\b(?:wav|mp4|mov|mp3|jpeg|mjpeg|png|h264|hevc|aac|pcm_\w+|image2|mp3float)\b")  # formats, codecs
_ENGLISH = re.compile(r"[A-Za-z]{2,}|(?<=\d )[a-z]\b")  # words, and a unit after a number ("4 s")


_COMMAND = re.compile(r"^\s*(?:" + "|".join(sorted(map(re.escape, MATRIX), key=len, reverse=True)) + r")\b")


def _english_words(text: str) -> list[str]:
    """The English words in `text` beyond what a Chinese reader is meant to see in Latin letters (a line may start
    with a command's name, as the table of who may run what does)."""
    return sorted({w for line in text.splitlines()
                   for w in _ENGLISH.findall(_LATIN_OK.sub(" ", _COMMAND.sub(" ", line)))})


def test_no_english_word_is_left_in_the_chinese_interface(cli, card: Path, data_dir: Path, tmp_path: Path):
    """The commands of the tour and the README, as a clerk, a legal officer and an auditor run them in Chinese:
    every word of every table, count, warning and error is Chinese (flags, classes, roles, actions included)."""
    import openpyxl

    register = tmp_path / "登记表.csv"
    register.write_text("案件编号,案件名称,当事人,案件类型,执法环节,执法人员,开始时间,结束时间\n"
                        f"{CASE},占道经营,王某,行政处罚,调查取证,王建国,2022年11月3日9时36分,2022年11月3日9时50分\n"
                        f"{CASE},占道经营,王某,行政处罚,送达,张三丰,2022年11月5日下午2时30分,2022年11月5日下午2时40分\n",
                        encoding="gb18030")
    book = openpyxl.Workbook()
    book.active.append(["姓名", "执法证号", "系统用户", "记录仪编号"])
    book.active.append(["王建国", "JX0227", None, "TA00716"])
    book.save(tmp_path / "名册.xlsx")
    voice = tmp_path / "vr"
    voice.mkdir()
    shutil.copy(next(card.rglob("*.WAV")), voice / "录音001.WAV")
    commands = [
        ("init",), ("ingest", card), ("ingest", card), ("ingest", voice, "--device", "VR01", "--officer", "JX0227"),
        ("people", "import", tmp_path / "名册.xlsx"), ("people", "list"),
        ("cases", "import", register), ("cases", "import", register), ("cases", "list"), ("cases", "search", "王某"),
        ("cases", "show", CASE), ("cases", "check", CASE), ("cases", "check", "--all"),
        ("cases", "link", CASE, "7"), ("recordings", "set-time", "7", "2022年11月3日9时40分", "--reason", "笔录"),
        ("recordings", "list"), ("recordings", "list", "--officer", "jx0227", "--since", "2022年11月3日"),
        ("recordings", "show", "1"), ("recordings", "show", "7"), ("devices", "list"), ("status",),
        ("verify",), ("custody", "show"), ("keys", "show"), ("access", "show"), ("report", "year", "2022"),
        ("hold", "add", "--case", CASE, "--reason", "复议"), ("hold", "list"), ("retention", "plan"),
        ("backup", "status"), ("recordings", "classify", "1", "evidence", "--reason", "证据"),
        ("cases", "show", "后叶罚[2022]99号"), ("recordings", "set-time", "1", "2022-11-03 10:00", "--reason", "x"),
        ("recordings", "list", "--since", "昨天"),
    ]
    found = {}
    with i18n.speaking(i18n.CHINESE):
        for args in [*commands, "flip a bit", ("verify",), ("status",), ("retention", "requests")]:
            if args == "flip a bit":  # what verify then finds is named in Chinese too
                target = next((data_dir / "archive").rglob("*.MP4"))
                target.chmod(0o644)
                with target.open("r+b") as fh:
                    fh.seek(1000)
                    fh.write(b"X")
                continue
            done = cli(*args)
            lines = [line for line in (done.stdout + done.stderr).splitlines() if _english_words(line)]
            if lines:
                found[" ".join(map(str, args)).replace(str(tmp_path), "")] = lines[:6]
    assert not found, "\n".join(f"{command}:\n    " + "\n    ".join(lines) for command, lines in found.items())


def test_every_word_the_catalog_keeps_has_its_place_in_the_vocabulary():
    """A new problem kind, flag or custody action cannot reach a Chinese table in English: each is a word of
    `i18n/words.py` (and so of the catalog, where the first test wants its translation)."""
    from archiver.i18n import words
    from archiver.operations.access import ROLES
    from archiver.problems import Kind

    known = {*words.PROBLEMS, *words.FLAGS, *words.ROLES, *words.ACTIONS, *words.CLASSES}
    assert {k.value for k in Kind} <= known and set(ROLES) <= known
    package = Path(i18n.__file__).resolve().parents[1]
    actions = set()
    for path in package.rglob("*.py"):
        actions |= set(re.findall(r"""(?:record|append)\(\s*"([a-z_]+)"[,)]""", path.read_text()))
    assert len(actions) >= 25 and actions <= known, sorted(actions - known)
