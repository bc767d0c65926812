"""Case records to import, as offices have them: CSV (UTF-8 with or without BOM, or GB18030, as
Excel and WPS save it in China), .xlsx, and JSON. Pure: bytes in, records out.

CSV and .xlsx: a header row naming the columns `case_no,title,stage,officers,start,end,
recording_required` (in any order; the Chinese names in HEADER_ALIASES too; `recording_required` may be
left out: every step is then to be recorded), one row per enforcement action. A register's title and
unit rows above the header are passed over, a case's cells merged down over its steps are filled down,
and its signature row (制表人、审核人) is not a case. Columns without a name and empty, or with another
name (备注, 当事人), are left out with a note. Officers are separated by `;` `；` `、` `,` `，` `/` or
spaces. Times are ISO 8601, the forms Excel and WPS write (`2023/3/5 9:30`, `2023年3月5日 9:30`,
`2023-03-05 09:30:00`, a date cell) or as people type them (`2023年3月5日9时30分`, `下午2:30`).
JSON: a list of cases, each
`{"case_no", "title", "actions": [{"stage", "officers", "start", "end", "recording_required"}]}`.
Case numbers are opaque Unicode strings, kept exactly. Every bad row is reported, with its line
(CSV, .xlsx) or position (JSON); a file with any bad row imports nothing. Nothing ambiguous is
guessed: a date without a time of day, say, is refused with its line.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from archiver.errors import ArchiverError
from archiver.i18n import _

COLUMNS = ("case_no", "title", "stage", "officers", "start", "end", "recording_required")
_TRUE = {"true", "1", "yes", "y", "是"}
_FALSE = {"false", "0", "no", "n", "否"}

# Column names offices use, for each column (compared without spaces, case-insensitively).
HEADER_ALIASES = {
    "case_no": ("案件编号", "案号", "案件号", "编号"),
    "title": ("案件名称", "案由", "名称", "检查事项", "事项"),
    "stage": ("执法环节", "环节", "执法阶段", "阶段"),
    "officers": ("执法人员", "执法人员编号", "警号", "执法证号"),
    "start": ("开始时间", "起始时间"),
    "end": ("结束时间", "截止时间"),
    "recording_required": ("是否需要记录", "是否需要执法记录", "需要记录", "是否记录"),
    # optional, for the case as a whole: how long its footage is kept, and from when
    "retention_class": ("保存期限", "保管期限", "保存类别", "保管类别"),
    "closed_at": ("结案日期", "结案时间", "办结日期"),
}
OPTIONAL = ("retention_class", "closed_at")
# A register may leave "recording required" out: every step is then to be recorded (the full-process rule).
DEFAULTED = ("recording_required",)
# The case's own cells, which a register merges down over the rows of the case's steps.
MERGED_DOWN = ("case_no", "title", "retention_class", "closed_at")
# Words of the signature row at a register's foot (制表人：…  审核人：…  日期：…).
SIGNATURE_WORDS = ("制表人", "填表人", "审核人", "审批人", "负责人", "制表日期")
_HEADERS = {name: column for column, names in HEADER_ALIASES.items() for name in (column, *names)}
ENCODINGS = ("utf-8", "gb18030")
OFFICER_SEPARATORS = re.compile(r"[;；、,，/\s]+")
_EXCEL_TIME = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]+(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.\d+)?)?)?$")


# Brackets a case number is written with (〔2023〕 is the official form; nobody can type it): all read alike.
_BRACKETS = str.maketrans({**dict.fromkeys("〔【〖(｟「『", "["), **dict.fromkeys("〕】〗)｠」』", "]")})


def case_key(case_no: str) -> str:
    """What a case number is looked up by: full-width forms made half-width (NFKC), every bracket made
    square, spaces dropped, letters lower-case. Stored numbers stay exactly as imported. Pure."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", case_no).translate(_BRACKETS)).lower()


def officer_key(officer: str) -> str:
    """An officer number however it was typed (full-width, lower case, spaces around): as recorders write it,
    half-width upper case. Pure."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", officer)).upper()


class CaseFileError(ArchiverError):
    """The case file has bad rows; nothing of it was imported."""


@dataclass(frozen=True)
class ActionRecord:
    stage: str
    officers: tuple[str, ...]
    start: datetime
    end: datetime
    recording_required: bool


@dataclass
class CaseRecord:
    case_no: str
    title: str
    actions: list[ActionRecord] = field(default_factory=list)
    retention_class: str | None = None  # a class of retention.classes; None: the evidence class
    closed_at: datetime | None = None  # None: open, its footage kept


def read_case_file(name: str, data: bytes, tz: tzinfo,
                   encoding: str | None = None) -> tuple[list[CaseRecord], list[str]]:
    """(records, notes on what was left out) of a .csv, .xlsx or .json case file. `encoding` forces
    one for a CSV; otherwise UTF-8 (with or without BOM) is tried, then GB18030. Raises CaseFileError
    naming every bad row."""
    lower = name.lower()
    if lower.endswith(".xlsx"):
        return _read_rows(name, _xlsx_rows(name, data), tz)
    text = _decode(name, data, encoding)
    if lower.endswith(".json"):
        return _parse_json(name, text, tz), []
    if lower.endswith(".csv"):
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            return _read_rows(name, ((reader.line_num, row) for row in reader), tz)
        except csv.Error as exc:  # a field over the csv module's limit (128 KiB), a NUL byte, a stray quote
            raise CaseFileError(_("{name} line {line_num}: not readable as CSV ({exc}); nothing imported").format(
                                  name=name, line_num=reader.line_num, exc=exc)) from None
    raise CaseFileError(_("{name}: give a .csv, .xlsx or .json file").format(name=name))


def _decode(name: str, data: bytes, encoding: str | None) -> str:
    for candidate in (encoding,) if encoding else ENCODINGS:
        try:
            return data.decode("utf-8-sig" if candidate.replace("_", "-").lower() in ("utf-8", "utf8") else candidate)
        except UnicodeDecodeError as exc:
            if encoding:
                raise CaseFileError(_("{name} is not {encoding} text (byte {start}): give its encoding with "
                                      "--encoding, or save it as UTF-8").format(
                                      name=name, encoding=encoding, start=exc.start)) from None
        except LookupError:
            raise CaseFileError(_("unknown encoding {encoding!r}: use utf-8 or gb18030").format(
                                  encoding=encoding)) from None
    raise CaseFileError(_("{name} is neither UTF-8 nor GB18030 text: give its encoding with --encoding, or save "
                          "it as UTF-8").format(name=name))


def _xlsx_rows(name: str, data: bytes):
    """(row number, cells) of the first sheet, read by a child process within limits (`sheet`): date cells
    stay datetimes, numbers become their text."""
    from archiver.cases import sheet

    try:
        return iter(sheet.rows(data))
    except sheet.SheetError as exc:
        raise CaseFileError(_("{name} is not a readable .xlsx workbook ({exc}); nothing imported").format(
                              name=name, exc=exc)) from None


def _read_rows(name: str, rows, tz: tzinfo) -> tuple[list[CaseRecord], list[str]]:
    first = _header_row(rows)
    if first is None:
        raise CaseFileError(_("{name} is empty: the first line must be {items}").format(
                              name=name, items=','.join(COLUMNS)))
    header_line, header = first[0], [_column(cell) for cell in first[1]]
    named = [h for h in header if h in COLUMNS]
    twice = sorted({h for h in named if named.count(h) > 1})
    missing = [c for c in COLUMNS if c not in header and c not in DEFAULTED]
    unknown = [h for h in header if h and h not in COLUMNS]
    if twice or missing:
        parts = ([_("column(s) {names} given twice").format(names=", ".join(twice))] if twice else []) + (
            [_("unknown column(s) {names}").format(names=", ".join(unknown))] if unknown and missing else []) + (
            [_("missing column(s) {names}").format(names=", ".join(missing))] if missing else [])
        raise CaseFileError(_("{name} line {line}: {items}; the columns are {items2} (or "
                              "案件编号,案件名称,执法环节,执法人员,开始时间,结束时间,是否需要记录)").format(
                              name=name, line=header_line, items='; '.join(parts), items2=','.join(COLUMNS)))
    left_out = [(i, h) for i, h in enumerate(header) if h not in COLUMNS and h not in OPTIONAL]
    filled: set[int] = set()
    cases: dict[str, CaseRecord] = {}
    errors: list[str] = []
    above: dict[str, Any] = {}  # the case cells of the row above: a case merged down several rows fills them
    for line, row in rows:
        if not any(str(cell).strip() for cell in row) or _signature(row):
            continue
        row = list(row) + [""] * (len(header) - len(row))
        if any(str(cell).strip() for cell in row[len(header):]):
            errors.append(_("line {line}: {count} fields, the header has {count2}").format(
                            line=line, count=len(row), count2=len(header)))
            continue
        filled.update(i for i, _h in left_out if str(row[i]).strip())
        values = {h: row[i] for i, h in enumerate(header) if h in COLUMNS or h in OPTIONAL}
        if not str(values.get("case_no", "")).strip() and above:
            values.update({k: v for k, v in above.items() if not str(values.get(k, "")).strip()})
        above = {k: values.get(k, "") for k in MERGED_DOWN}
        values.setdefault("recording_required", True)
        try:
            case_no, title, action = _action(values, _officers(values["officers"]), tz)
            case = cases.setdefault(case_no, CaseRecord(case_no, title))
            _case_fields(case, values, tz)
        except ValueError as exc:
            errors.append(_("line {line}: {exc}").format(line=line, exc=exc))
            continue
        case.title = title or case.title
        case.actions.append(action)
    _raise_if(name, errors)
    notes = [_("column {number} ({name}) left out: not one of the case file's columns").format(
        number=i + 1, name=h or _("no name"))
             for i, h in left_out if h or i in filled]
    return list(cases.values()), notes


def _header_row(rows) -> tuple[int, list[Any]] | None:
    """The header: the first row naming three or more known columns (the title and unit rows a register
    has above it are passed over), else the first row with anything in it."""
    first = None
    for seen, (number, row) in enumerate(rows):
        if sum(_column(cell) in COLUMNS for cell in row) >= 3:
            return number, row
        if first is None and any(str(cell).strip() for cell in row):
            first = (number, row)
        if seen >= 20:  # no header this far down: the first row is taken, and said to be wrong
            break
    return first


def _signature(row: list[Any]) -> bool:
    """A register's signature row (制表人、审核人、日期), which ends the table."""
    text = "".join(str(cell) for cell in row)
    return any(word in text for word in SIGNATURE_WORDS)


def _column(cell: Any) -> str:
    """The column a header cell names ('' when it names none), else the cell's own text."""
    key = re.sub(r"\s+", "", str(cell))
    return _HEADERS.get(key.lower(), key)


def _officers(value: Any) -> list[str]:
    return [o for o in OFFICER_SEPARATORS.split(str(value)) if o]


def _parse_json(name: str, text: str, tz: tzinfo) -> list[CaseRecord]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CaseFileError(_("{name} line {lineno}: not valid JSON ({msg})").format(
                              name=name, lineno=exc.lineno, msg=exc.msg)) from None
    except RecursionError:
        raise CaseFileError(_("{name}: nested too deeply to be a case file; nothing imported").format(
            name=name)) from None
    if not isinstance(data, list):
        raise CaseFileError(_("{name}: the JSON form is a list of cases").format(name=name))
    cases: dict[str, CaseRecord] = {}
    errors: list[str] = []
    for i, item in enumerate(data, 1):
        where = _("case {number}").format(number=i)
        if not isinstance(item, dict) or not isinstance(item.get("actions"), list):
            errors.append(_("{where}: needs case_no, title and a list of actions").format(where=where))
            continue
        extra = set(item) - {"case_no", "title", "actions", *OPTIONAL}
        if extra:
            errors.append(_("{where}: unknown key(s) {items}").format(
                            where=where, items=', '.join(sorted(extra))))
            continue
        for j, action in enumerate(item["actions"], 1):
            if not isinstance(action, dict):
                errors.append(_("{where} action {j}: not an object").format(where=where, j=j))
                continue
            extra = set(action) - set(COLUMNS)
            if extra:
                errors.append(_("{where} action {j}: unknown key(s) {items}").format(
                                where=where, j=j, items=', '.join(sorted(extra))))
                continue
            officers = action.get("officers", [])
            if isinstance(officers, str):
                officers = _officers(officers)
            values = {**action, "case_no": item.get("case_no", ""), "title": item.get("title", "")}
            wrong = _wrong_types(values, officers)
            if wrong:
                errors.append(_("{where} action {j}: {wrong}").format(where=where, j=j, wrong=wrong))
                continue
            try:
                case_no, title, parsed = _action(values, officers, tz)
            except (ValueError, TypeError) as exc:
                errors.append(_("{where} action {j}: {exc}").format(where=where, j=j, exc=exc))
                continue
            case = cases.setdefault(case_no, CaseRecord(case_no, title))
            try:
                _case_fields(case, item, tz)
            except ValueError as exc:
                errors.append(_("{where}: {exc}").format(where=where, exc=exc))
                continue
            case.title = title or case.title
            case.actions.append(parsed)
        if not item["actions"]:
            wrong = _wrong_types({"case_no": item.get("case_no"), "title": item.get("title")}, [])
            if wrong:
                errors.append(_("{where}: {wrong}").format(where=where, wrong=wrong))
                continue
            try:
                case_no, title = _clean(item.get("case_no"), "case_no"), _clean(item.get("title"), "title")
            except ValueError as exc:
                errors.append(_("{where}: {exc}").format(where=where, exc=exc))
                continue
            if case_no:
                cases.setdefault(case_no, CaseRecord(case_no, title))
    _raise_if(name, errors)
    return list(cases.values())


_TEXT_FIELDS = ("case_no", "title", "stage", "start", "end")


def _wrong_types(values: dict[str, Any], officers: Any) -> str | None:
    """What in a JSON action is not of its type (never silently turned into text). Pure."""
    for key in _TEXT_FIELDS:
        if values.get(key) is not None and not isinstance(values[key], str):
            return _("{key} must be text, not {type}").format(key=key, type=type(values[key]).__name__)
    if not isinstance(officers, list) or not all(isinstance(o, str) for o in officers):
        return _("officers must be a list of officer numbers (text)")
    flag = values.get("recording_required")
    if flag is not None and not isinstance(flag, (bool, str)) and flag not in (0, 1):
        return _("recording_required must be true or false, not {type}").format(type=type(flag).__name__)
    return None


def _clean(value: Any, what: str) -> str:
    """A text field, stripped; control characters (a NUL, a line break in a case number) refused."""
    text = str(value or "").strip()
    bad = next((c for c in text if ord(c) < 32 or ord(c) == 0x7F), None)
    if bad is not None:
        raise ValueError(_("{what} holds a control character ({bad!r}): remove it").format(what=what, bad=bad))
    return text


def _action(values: dict[str, Any], officers: list[Any], tz: tzinfo) -> tuple[str, str, ActionRecord]:
    case_no = _clean(values.get("case_no"), "case_no")
    if not case_no:
        raise ValueError(_("case_no is empty"))
    stage = _clean(values.get("stage"), "stage")
    if not stage:
        raise ValueError(_("stage is empty"))
    start = _time(values.get("start"), "start", tz)
    end = _time(values.get("end"), "end", tz)
    if end < start:
        raise ValueError(_("end {isoformat} is before start {isoformat2}").format(
                           isoformat=end.isoformat(), isoformat2=start.isoformat()))
    names = tuple(dict.fromkeys(_clean(o, "officers") for o in officers if str(o).strip()))
    return case_no, _clean(values.get("title"), "title"), ActionRecord(
        stage, names, start, end, _flag(values.get("recording_required")))


def _case_fields(case: CaseRecord, values: dict[str, Any], tz: tzinfo) -> None:
    """A case's retention class and closing date, from any of its rows (rows that disagree are refused)."""
    name = _clean(values.get("retention_class"), "retention_class")
    if name:
        if case.retention_class not in (None, name):
            raise ValueError(_("retention_class {name!r} differs from {other!r} on another row of {case_no}").format(
                name=name, other=case.retention_class, case_no=case.case_no))
        case.retention_class = name
    raw = values.get("closed_at")
    if raw not in (None, "") and str(raw).strip():
        closed = raw if isinstance(raw, datetime) else parse_office_time(str(raw).strip(), need_time=False)
        if closed is None:
            raise ValueError(_("cannot read closed_at {text!r} (e.g. 2023-05-01 or 2023年5月1日)").format(text=raw))
        closed = closed if closed.tzinfo else closed.replace(tzinfo=tz)
        if case.closed_at not in (None, closed):
            raise ValueError(_("closed_at differs from another row of {case_no}").format(case_no=case.case_no))
        case.closed_at = closed


def _time(value: Any, what: str, tz: tzinfo) -> datetime:
    if isinstance(value, datetime):  # a date cell of a workbook
        return value if value.tzinfo else value.replace(tzinfo=tz)
    text = str(value or "").strip()
    parsed = parse_office_time(text)
    if parsed is None:
        raise ValueError(_("cannot read {what} time {text!r} (e.g. 2022-11-03T09:30:00, 2022/11/3 9:30 or "
                           "2022年11月3日 9:30, with the time of day)").format(
                           what=what, text=text))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def parse_office_time(text: str, *, need_time: bool = True) -> datetime | None:
    """ISO 8601, or a date and time as Excel and WPS write them (slashes, dots, 年月日, full-width
    digits, one-digit months and hours). None when it is neither, or when the time of day is missing
    (unless not `need_time`: a date alone is then its midnight)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    plain = unicodedata.normalize("NFKC", text).strip()
    afternoon = re.search(r"下午|晚上|傍晚", plain) is not None
    plain = re.sub(r"上午|早上|中午|下午|晚上|傍晚", " ", plain)
    plain = re.sub(r"(\d)\s*[时点]\s*(\d{1,2})\s*分?", r"\1:\2", plain)  # 9时30分, 9点30
    plain = re.sub(r"(\d)\s*[时点]", r"\1:00", plain)  # 9时, 9点
    plain = re.sub(r"\s*(年|月)\s*", "-", plain)
    plain = re.sub(r"\s*日\s*", " ", plain)
    plain = re.sub(r"(?<=\d)[/.](?=\d)", "-", plain).strip()
    match = _EXCEL_TIME.match(re.sub(r"\s+", " ", plain).strip())
    if match is None or (need_time and match.group(4) is None):
        return None
    parts = [int(g) for g in match.groups(default="0")]
    if afternoon and parts[3] < 12:
        parts[3] += 12
    try:
        return datetime(*parts)
    except ValueError:
        return None


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value if value is not None else "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(_("recording_required {value!r} is not true/false (1/0, 是/否)").format(value=value))


def _raise_if(name: str, errors: list[str]) -> None:
    if errors:
        more = _("; and {count} more").format(count=len(errors) - 20) if len(errors) > 20 else ""
        shown = "; ".join(errors[:20]) + more
        raise CaseFileError(_("{name}: {count} bad row(s), nothing imported: {shown}").format(
                              name=name, count=len(errors), shown=shown))
