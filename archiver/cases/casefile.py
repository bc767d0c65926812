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
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from archiver.cases.times import parse_office_time
from archiver.errors import ArchiverError
from archiver.i18n import N_, _

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
    "party": ("当事人", "当事人姓名", "当事人名称", "被检查对象", "检查对象", "行政相对人"),
    "kind": ("案件类型", "案件类别", "执法类别", "执法类型", "行为类别"),
}
OPTIONAL = ("retention_class", "closed_at", "party", "kind")
# Each column as a reader of the messages calls it, in their language.
LABELS = {"case_no": N_("case number"), "title": N_("case title"), "stage": N_("enforcement step"),
          "officers": N_("officers"), "start": N_("start time"), "end": N_("end time"),
          "recording_required": N_("recording required")}
# A register may leave "recording required" out: every step is then to be recorded (the full-process rule).
DEFAULTED = ("recording_required",)
# The case's own cells, which a register merges down over the rows of the case's steps.
MERGED_DOWN = ("case_no", "title", *OPTIONAL)
# Words of the signature row at a register's foot (制表人：…  审核人：…  日期：…).
SIGNATURE_WORDS = ("制表人", "填表人", "审核人", "审批人", "负责人", "制表日期")
def headers(aliases: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Every name a column goes by (lower case), to the column. Pure."""
    return {name.lower(): column for column, names in aliases.items() for name in (column, *names)}


_HEADERS = headers(HEADER_ALIASES)
ENCODINGS = ("utf-8", "gb18030")
OFFICER_SEPARATORS = re.compile(r"[;；、,，/\s]+")


# The kinds of administrative enforcement the yearly statistics (行政执法统计) count apart, each with the word
# that names it in a register's 案件类型 (行政处罚, 处罚, 强制措施, 行政检查, ...); anything else is "other".
KINDS = {"permit": ("许可", N_("permits (许可)")), "penalty": ("处罚", N_("penalties (处罚)")),
         "coercion": ("强制", N_("coercive measures (强制)")), "levy": ("征收", N_("levies (征收)")),
         "requisition": ("征用", N_("requisitions (征用)")), "inspection": ("检查", N_("inspections (检查)")),
         "other": ("", N_("other or not given"))}


def kind_of(text: str | None) -> str:
    """Which of KINDS a case's 案件类型 names (its key, or the key itself as written); "other" if none. Pure."""
    plain = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text or "")).lower()
    return next((key for key, (word, _label) in KINDS.items() if plain and (word and word in plain or plain == key)),
                "other")


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
    party: str | None = None  # 当事人
    kind: str | None = None  # 案件类型, as written: kind_of() reads which of KINDS it is


def read_case_file(name: str, data: bytes, tz: tzinfo, encoding: str | None = None,
                   not_required: Collection[str] = ()) -> tuple[list[CaseRecord], list[str]]:
    """(records, notes on what was left out) of a .csv, .xlsx or .json case file. `encoding` forces
    one for a CSV; otherwise UTF-8 (with or without BOM) is tried, then GB18030. Raises CaseFileError
    naming every bad row."""
    if name.lower().endswith(".json"):
        return _parse_json(name, decode(name, data, encoding), tz), []
    return _read_rows(name, table_rows(name, data, encoding, _(".csv, .xlsx or .json")), tz, frozenset(not_required))


def table_rows(name: str, data: bytes, encoding: str | None, kinds: str) -> Iterator[tuple[int, list[Any]]]:
    """(line or row number, cells) of a .csv or .xlsx table; `kinds` names the files the caller takes."""
    lower = name.lower()
    if lower.endswith(".xlsx"):
        yield from xlsx_rows(name, data)
        return
    if not lower.endswith(".csv"):
        raise CaseFileError(_("{name}: give a {kinds} file").format(name=name, kinds=kinds))
    reader = csv.reader(io.StringIO(decode(name, data, encoding), newline=""))
    try:
        yield from ((reader.line_num, row) for row in reader)
    except csv.Error as exc:  # a field over the csv module's limit (128 KiB), a NUL byte, a stray quote
        raise CaseFileError(_("{name} line {line_num}: not readable as CSV ({exc}); nothing imported").format(
                              name=name, line_num=reader.line_num, exc=exc)) from None


def decode(name: str, data: bytes, encoding: str | None) -> str:
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


def xlsx_rows(name: str, data: bytes):
    """(row number, cells) of the first sheet, read by a child process within limits (`sheet`): date cells
    stay datetimes, numbers become their text."""
    from archiver.cases import sheet

    try:
        return iter(sheet.rows(data))
    except sheet.SheetError as exc:
        raise CaseFileError(_("{name} is not a readable .xlsx workbook ({exc}); nothing imported").format(
                              name=name, exc=exc)) from None


def _read_rows(name: str, rows, tz: tzinfo, not_required: frozenset[str]) -> tuple[list[CaseRecord], list[str]]:
    first = header_row(rows, _HEADERS, COLUMNS)
    if first is None:
        raise CaseFileError(_("{name} is empty: the first line must be {items}").format(
                              name=name, items=_(", ").join(_(LABELS[c]) for c in COLUMNS)))
    header_line, header = first[0], [column_of(cell, _HEADERS) for cell in first[1]]
    words = [re.sub(r"\s+", "", str(cell)) for cell in first[1]]
    names = dict(zip(header, words, strict=True))  # each column by the sheet's own word for it
    named = [h for h in header if h in COLUMNS]
    twice = [word for h, word in zip(header, words, strict=True) if h in COLUMNS and named.count(h) > 1]
    missing = [c for c in COLUMNS if c not in header and c not in DEFAULTED]
    unknown = [names[h] for h in header if h and h not in COLUMNS and h not in OPTIONAL]
    if twice or missing:
        parts = ([_("column(s) {names} given twice").format(names=_(", ").join(twice))] if twice else []) + (
            [_("unknown column(s) {names}").format(names=_(", ").join(unknown))] if unknown and missing else []) + (
            [_("missing column(s) {names}").format(names=_(", ").join(_(LABELS[c]) for c in missing))]
            if missing else [])
        raise CaseFileError(_("{name} line {line}: {items}; the columns are {items2} (the English names {items3} "
                              "are read too)").format(
                              name=name, line=header_line, items=_("; ").join(parts),
                              items2=_(", ").join(_(LABELS[c]) for c in COLUMNS), items3=",".join(COLUMNS)))
    left_out = [(i, h) for i, h in enumerate(header) if h not in COLUMNS and h not in OPTIONAL]
    filled: set[int] = set()
    cases: dict[str, CaseRecord] = {}
    errors: list[str] = []
    above: dict[str, Any] = {}  # the case cells of the row above: a case merged down several rows fills them
    for line, row in rows:
        if not any(str(cell).strip() for cell in row) or signature_row(row):
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
        if "recording_required" not in values:  # no such column: the full-process rule, less the configured steps
            values["recording_required"] = str(values.get("stage", "")).strip() not in not_required
        try:
            case_no, title, action = _action(values, _officers(values["officers"]), tz, names)
            case = cases.setdefault(case_no, CaseRecord(case_no, title))
            _case_fields(case, values, tz, names)
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


def header_row(rows, known: dict[str, str], needed: tuple[str, ...]) -> tuple[int, list[Any]] | None:
    """The header: the first row naming three or more known columns (the title and unit rows a register
    has above it are passed over), else the first row with anything in it."""
    first = None
    for seen, (number, row) in enumerate(rows):
        if sum(column_of(cell, known) in needed for cell in row) >= min(3, len(needed)):
            return number, row
        if first is None and any(str(cell).strip() for cell in row):
            first = (number, row)
        if seen >= 20:  # no header this far down: the first row is taken, and said to be wrong
            break
    return first


def signature_row(row: list[Any]) -> bool:
    """A register's signature row (制表人、审核人、日期), which ends the table."""
    text = "".join(str(cell) for cell in row)
    return any(word in text for word in SIGNATURE_WORDS)


def column_of(cell: Any, known: dict[str, str]) -> str:
    """The column a header cell names ('' when it names none), else the cell's own text."""
    key = re.sub(r"\s+", "", str(cell))
    return known.get(key.lower(), key)


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
            error = _json_action(where, j, item, action, tz, cases)
            if error is not None:
                errors.append(error)
        if not item["actions"]:
            error = _json_empty_case(where, item, cases)
            if error is not None:
                errors.append(error)
    _raise_if(name, errors)
    return list(cases.values())


def _json_action(where: str, j: int, item: dict[str, Any], action: Any, tz: tzinfo,
                 cases: dict[str, CaseRecord]) -> str | None:
    """One action of a JSON case added to `cases`; what is wrong with it, if anything."""
    if not isinstance(action, dict):
        return _("{where} action {j}: not an object").format(where=where, j=j)
    extra = set(action) - set(COLUMNS)
    if extra:
        return _("{where} action {j}: unknown key(s) {items}").format(where=where, j=j, items=', '.join(sorted(extra)))
    officers = action.get("officers", [])
    if isinstance(officers, str):
        officers = _officers(officers)
    values = {**action, "case_no": item.get("case_no", ""), "title": item.get("title", "")}
    wrong = _wrong_types(values, officers)
    if wrong:
        return _("{where} action {j}: {wrong}").format(where=where, j=j, wrong=wrong)
    try:
        case_no, title, parsed = _action(values, officers, tz)
    except (ValueError, TypeError) as exc:
        return _("{where} action {j}: {exc}").format(where=where, j=j, exc=exc)
    case = cases.setdefault(case_no, CaseRecord(case_no, title))
    try:
        _case_fields(case, item, tz)
    except ValueError as exc:
        return _("{where}: {exc}").format(where=where, exc=exc)
    case.title = title or case.title
    case.actions.append(parsed)
    return None


def _json_empty_case(where: str, item: dict[str, Any], cases: dict[str, CaseRecord]) -> str | None:
    """A JSON case with no action yet, added to `cases`; what is wrong with it, if anything."""
    wrong = _wrong_types({"case_no": item.get("case_no"), "title": item.get("title")}, [])
    if wrong:
        return _("{where}: {wrong}").format(where=where, wrong=wrong)
    try:
        case_no, title = _clean(item.get("case_no"), "case_no"), _clean(item.get("title"), "title")
    except ValueError as exc:
        return _("{where}: {exc}").format(where=where, exc=exc)
    if case_no:
        cases.setdefault(case_no, CaseRecord(case_no, title))
    return None


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


def _action(values: dict[str, Any], officers: list[Any], tz: tzinfo,
            names: dict[str, str] | None = None) -> tuple[str, str, ActionRecord]:
    """One step from its values; `names` are the sheet's own names of the columns, for the messages."""
    name = (names or {}).get
    case_no = _clean(values.get("case_no"), name("case_no", "case_no"))
    if not case_no:
        raise ValueError(_("{column} is empty").format(column=name("case_no", "case_no")))
    stage = _clean(values.get("stage"), name("stage", "stage"))
    if not stage:
        raise ValueError(_("{column} is empty").format(column=name("stage", "stage")))
    start = _time(values.get("start"), name("start", "start"), tz)
    end = _time(values.get("end"), name("end", "end"), tz)
    if end < start:
        raise ValueError(_("{column} {isoformat} is before {column2} {isoformat2}").format(
                           column=name("end", "end"), isoformat=end.strftime("%Y-%m-%d %H:%M"),
                           column2=name("start", "start"), isoformat2=start.strftime("%Y-%m-%d %H:%M")))
    officer_nos = tuple(dict.fromkeys(_clean(o, name("officers", "officers")) for o in officers if str(o).strip()))
    return case_no, _clean(values.get("title"), name("title", "title")), ActionRecord(
        stage, officer_nos, start, end, _flag(values.get("recording_required"), name("recording_required",
                                                                                      "recording_required")))


def _case_fields(case: CaseRecord, values: dict[str, Any], tz: tzinfo, names: dict[str, str] | None = None) -> None:
    """A case's retention class, party, kind and closing date, from any of its rows (rows that disagree are
    refused)."""
    name = (names or {}).get
    for key in ("retention_class", "party", "kind"):
        text = _clean(values.get(key), name(key, key))
        if text:
            if getattr(case, key) not in (None, text):
                raise ValueError(_("{column} {name!r} differs from {other!r} on another row of {case_no}").format(
                    column=name(key, key), name=text, other=getattr(case, key), case_no=case.case_no))
            setattr(case, key, text)
    raw = values.get("closed_at")
    if raw not in (None, "") and str(raw).strip():
        closed = raw if isinstance(raw, datetime) else parse_office_time(str(raw).strip(), need_time=False)
        if closed is None:
            raise ValueError(_("cannot read {column} {text!r} (e.g. 2023-05-01 or 2023年5月1日)").format(
                column=name("closed_at", "closed_at"), text=raw))
        closed = closed if closed.tzinfo else closed.replace(tzinfo=tz)
        if case.closed_at not in (None, closed):
            raise ValueError(_("{column} differs from another row of {case_no}").format(
                column=name("closed_at", "closed_at"), case_no=case.case_no))
        case.closed_at = closed


def _time(value: Any, what: str, tz: tzinfo) -> datetime:
    if isinstance(value, datetime):  # a date cell of a workbook
        return value if value.tzinfo else value.replace(tzinfo=tz)
    text = str(value or "").strip()
    parsed = parse_office_time(text)
    if parsed is None:
        raise ValueError(_("cannot read {what} {text!r} (e.g. 2022-11-03T09:30:00, 2022/11/3 9:30 or "
                           "2022年11月3日 9:30, with the time of day)").format(
                           what=what, text=text))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def _flag(value: Any, what: str = "recording_required") -> bool:
    if isinstance(value, bool):
        return value
    text = str(value if value is not None else "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(_("{column} {value!r} is not true/false (1/0, 是/否)").format(column=what, value=value))


def _raise_if(name: str, errors: list[str]) -> None:
    if errors:
        more = _("; and {count} more").format(count=len(errors) - 20) if len(errors) > 20 else ""
        shown = _("; ").join(errors[:20]) + more
        raise CaseFileError(_("{name}: {count} bad row(s), nothing imported: {shown}").format(
                              name=name, count=len(errors), shown=shown))
