"""Case records to import: the CSV and JSON forms, parsed and checked. Pure: text in, records out.

CSV: a header row `case_no,title,stage,officers,start,end,recording_required`, one row per
enforcement action, officers separated by ';'. JSON: a list of cases, each
`{"case_no", "title", "actions": [{"stage", "officers", "start", "end", "recording_required"}]}`.
Case numbers are opaque Unicode strings, kept exactly. Every bad row is reported, with its line
(CSV) or position (JSON); a file with any bad row imports nothing.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from archiver.errors import ArchiverError

COLUMNS = ("case_no", "title", "stage", "officers", "start", "end", "recording_required")
_TRUE = {"true", "1", "yes", "y", "是"}
_FALSE = {"false", "0", "no", "n", "否"}


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


def parse_case_file(name: str, data: bytes, tz: tzinfo) -> list[CaseRecord]:
    """Parse a .csv or .json case file. Raises CaseFileError naming every bad row."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CaseFileError(f"{name} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    if name.lower().endswith(".json"):
        return _parse_json(name, text, tz)
    if name.lower().endswith(".csv"):
        return _parse_csv(name, text, tz)
    raise CaseFileError(f"{name}: give a .csv or .json file")


def _parse_csv(name: str, text: str, tz: tzinfo) -> list[CaseRecord]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return _read_csv(name, reader, tz)
    except csv.Error as exc:  # a field over the csv module's limit (128 KiB), a NUL byte, a stray quote
        raise CaseFileError(f"{name} line {reader.line_num}: not readable as CSV ({exc}); nothing imported") from None


def _read_csv(name: str, reader, tz: tzinfo) -> list[CaseRecord]:
    header = next(reader, None)
    if header is None:
        raise CaseFileError(f"{name} is empty: the first line must be {','.join(COLUMNS)}")
    header = [h.strip() for h in header]
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in COLUMNS if c not in header]
    if unknown or missing:
        parts = ([f"unknown column(s) {', '.join(unknown)}"] if unknown else []) + (
            [f"missing column(s) {', '.join(missing)}"] if missing else [])
        raise CaseFileError(f"{name} line 1: {'; '.join(parts)}; the columns are {','.join(COLUMNS)}")
    cases: dict[str, CaseRecord] = {}
    errors: list[str] = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            errors.append(f"line {line}: {len(row)} fields, the header has {len(header)}")
            continue
        values = dict(zip(header, row, strict=True))
        try:
            case_no, title, action = _action(values, values["officers"].split(";"), tz)
        except ValueError as exc:
            errors.append(f"line {line}: {exc}")
            continue
        case = cases.setdefault(case_no, CaseRecord(case_no, title))
        case.title = title or case.title
        case.actions.append(action)
    _raise_if(name, errors)
    return list(cases.values())


def _parse_json(name: str, text: str, tz: tzinfo) -> list[CaseRecord]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CaseFileError(f"{name} line {exc.lineno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise CaseFileError(f"{name}: nested too deeply to be a case file; nothing imported") from None
    if not isinstance(data, list):
        raise CaseFileError(f"{name}: the JSON form is a list of cases")
    cases: dict[str, CaseRecord] = {}
    errors: list[str] = []
    for i, item in enumerate(data, 1):
        where = f"case {i}"
        if not isinstance(item, dict) or not isinstance(item.get("actions"), list):
            errors.append(f"{where}: needs case_no, title and a list of actions")
            continue
        extra = set(item) - {"case_no", "title", "actions"}
        if extra:
            errors.append(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
            continue
        for j, action in enumerate(item["actions"], 1):
            if not isinstance(action, dict):
                errors.append(f"{where} action {j}: not an object")
                continue
            extra = set(action) - set(COLUMNS)
            if extra:
                errors.append(f"{where} action {j}: unknown key(s) {', '.join(sorted(extra))}")
                continue
            officers = action.get("officers", [])
            if isinstance(officers, str):
                officers = officers.split(";")
            values = {**action, "case_no": item.get("case_no", ""), "title": item.get("title", "")}
            wrong = _wrong_types(values, officers)
            if wrong:
                errors.append(f"{where} action {j}: {wrong}")
                continue
            try:
                case_no, title, parsed = _action(values, officers, tz)
            except (ValueError, TypeError) as exc:
                errors.append(f"{where} action {j}: {exc}")
                continue
            case = cases.setdefault(case_no, CaseRecord(case_no, title))
            case.title = title or case.title
            case.actions.append(parsed)
        if not item["actions"]:
            wrong = _wrong_types({"case_no": item.get("case_no"), "title": item.get("title")}, [])
            if wrong:
                errors.append(f"{where}: {wrong}")
                continue
            try:
                case_no, title = _clean(item.get("case_no"), "case_no"), _clean(item.get("title"), "title")
            except ValueError as exc:
                errors.append(f"{where}: {exc}")
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
            return f"{key} must be text, not {type(values[key]).__name__}"
    if not isinstance(officers, list) or not all(isinstance(o, str) for o in officers):
        return "officers must be a list of officer numbers (text)"
    flag = values.get("recording_required")
    if flag is not None and not isinstance(flag, (bool, str)) and flag not in (0, 1):
        return f"recording_required must be true or false, not {type(flag).__name__}"
    return None


def _clean(value: Any, what: str) -> str:
    """A text field, stripped; control characters (a NUL, a line break in a case number) refused."""
    text = str(value or "").strip()
    bad = next((c for c in text if ord(c) < 32 or ord(c) == 0x7F), None)
    if bad is not None:
        raise ValueError(f"{what} holds a control character ({bad!r}): remove it")
    return text


def _action(values: dict[str, Any], officers: list[Any], tz: tzinfo) -> tuple[str, str, ActionRecord]:
    case_no = _clean(values.get("case_no"), "case_no")
    if not case_no:
        raise ValueError("case_no is empty")
    stage = _clean(values.get("stage"), "stage")
    if not stage:
        raise ValueError("stage is empty")
    start = _time(values.get("start"), "start", tz)
    end = _time(values.get("end"), "end", tz)
    if end < start:
        raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
    names = tuple(dict.fromkeys(_clean(o, "officers") for o in officers if str(o).strip()))
    return case_no, _clean(values.get("title"), "title"), ActionRecord(
        stage, names, start, end, _flag(values.get("recording_required")))


def _time(value: Any, what: str, tz: tzinfo) -> datetime:
    text = str(value or "").strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"cannot read {what} time {text!r} (ISO 8601, e.g. 2022-11-03T09:30:00)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value if value is not None else "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"recording_required {value!r} is not true/false (1/0, 是/否)")


def _raise_if(name: str, errors: list[str]) -> None:
    if errors:
        shown = "; ".join(errors[:20]) + (f"; and {len(errors) - 20} more" if len(errors) > 20 else "")
        raise CaseFileError(f"{name}: {len(errors)} bad row(s), nothing imported: {shown}")
