"""Keeping periods as people write them ("6 months", "30年", "permanent"): a value of the configuration,
used by the retention rules. Pure."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

from archiver.errors import ConfigError
from archiver.i18n import _

_UNITS = {"day": "days", "days": "days", "天": "days", "日": "days",
          "week": "weeks", "weeks": "weeks", "周": "weeks", "星期": "weeks",
          "month": "months", "months": "months", "个月": "months", "月": "months",
          "year": "years", "years": "years", "年": "years"}
_PERIOD = re.compile(r"^\s*(\d+)\s*([a-z]+|个月|[天日周月年]|星期)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Period:
    """A minimum keeping period: a number of days, weeks, months or years, or for good (`permanent`)."""

    count: int = 0
    unit: str = "days"
    permanent: bool = False

    def end(self, start: date) -> date | None:
        """The last day this period keeps something that started on `start`; None: for good."""
        if self.permanent:
            return None
        if self.unit in ("days", "weeks"):
            return start + timedelta(days=self.count * (7 if self.unit == "weeks" else 1))
        months = start.month - 1 + self.count * (12 if self.unit == "years" else 1)
        year, month = start.year + months // 12, months % 12 + 1
        return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))

    def __str__(self) -> str:
        return "permanent" if self.permanent else f"{self.count} {self.unit}"


def parse_period(text: str) -> Period:
    """'7 days', '6 months', '30 years', '2 weeks', 'permanent' (also 6个月, 30年, 永久). ValueError otherwise."""
    if text.strip().lower() in ("permanent", "永久"):
        return Period(permanent=True)
    match = _PERIOD.match(text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(text)
    return Period(int(match.group(1)), _UNITS[match.group(2).lower()])


def keeping_classes(raw: dict[str, str], where: object) -> dict[str, Period]:
    """`retention.classes` of a config file: each class's period, or a ConfigError naming the one that is not."""
    classes = {}
    for name, text in raw.items():
        try:
            classes[name] = parse_period(text)
        except ValueError:
            raise ConfigError(_("'retention.classes.{name}' in {where} is {text!r}: give a period such as \"7 days\", "
                                "\"6 months\", \"30 years\" or \"permanent\"").format(
                name=name, where=where, text=text)) from None
    return classes
