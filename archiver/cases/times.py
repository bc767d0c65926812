"""Times as people write them: ISO 8601, the forms Excel and WPS write, and the Chinese forms typed by hand
(`2022年3月20日9时30分`, `下午2:30`). Pure: the case files and every `--since`/`--until`/START read them."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, tzinfo

from archiver.errors import ArchiverError
from archiver.i18n import _

_EXCEL_TIME = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]+(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.\d+)?)?)?$")


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
    plain = re.sub(r"(\d)\s*[时点]\s*(\d{1,2})\s*分\s*(\d{1,2})\s*秒", r"\1:\2:\3", plain)  # 9时30分15秒
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


def parse_time(text: str, tz: tzinfo, *, need_time: bool = False) -> datetime:
    """A time given on the command line: ISO 8601 with or without an offset, or any form `parse_office_time`
    reads (2022年11月3日 9时30分, 2022/11/3 下午2:30); without an offset in `tz`; a date alone is its midnight
    (refused with `need_time`)."""
    text = text.strip()
    parsed = parse_office_time(text, need_time=need_time)
    if parsed is None or need_time and re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ArchiverError(_("cannot read time {text!r}: write it as 2022-11-03 09:36, 2022年11月3日9时36分 or "
                              "2022-11-03T09:36:21+08:00").format(text=text) if need_time else
                            _("cannot read time {text!r}: write it as 2022-11-03, 2022-11-03 09:36, "
                              "2022年11月3日9时36分 or 2022-11-03T09:36:21+08:00").format(text=text))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def span_text(hours: float | None) -> str:
    """A delay as people say it: minutes under an hour, hours under two days, else days ("—" for none)."""
    if hours is None:
        return "—"
    if hours < 1:
        return _("{count:.0f} min").format(count=hours * 60)
    if hours < 48:
        return _("{count:.1f} h").format(count=hours)
    return _("{count:.1f} days").format(count=hours / 24)
