"""Keeping periods and due dates, exhaustively and without I/O (archiver/retention/rules.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from archiver.periods import Period, parse_period
from archiver.retention.rules import CaseFacts, Facts, blocked, due

TZ = ZoneInfo("Asia/Shanghai")
CLASSES = {name: parse_period(text) for name, text in {
    "invalid": "7 days", "unlinked": "6 months", "evidence": "permanent", "case_10y": "10 years",
    "routine": "1 year", "short": "2 weeks"}.items()}
END = datetime(2023, 1, 31, 10, 0, tzinfo=TZ)  # a recording that stopped on 31 January 2023, 10:00


def facts(**changes) -> Facts:
    base = dict(id=1, sha256="a" * 64, archive_path="archive/x", size=10, end=END, person_class=None, cases=(),
                held=False, backed_up=True, verified_at=END)
    return Facts(**{**base, **changes})


@pytest.mark.parametrize(("text", "period"), [
    ("7 days", Period(7, "days")), ("6 months", Period(6, "months")), ("30 years", Period(30, "years")),
    ("1 year", Period(1, "years")), ("2 weeks", Period(2, "weeks")), ("permanent", Period(permanent=True)),
    ("6个月", Period(6, "months")), ("30年", Period(30, "years")), ("永久", Period(permanent=True)),
    (" 7  DAYS ", Period(7, "days")),
])
def test_periods_as_people_write_them(text: str, period: Period):
    assert parse_period(text) == period


@pytest.mark.parametrize("text", ["", "six months", "6", "-1 days", "6 fortnights", "1.5 years", "forever"])
def test_a_period_that_is_not_one_is_refused(text: str):
    with pytest.raises(ValueError):
        parse_period(text)


def test_months_end_on_the_last_day_when_the_day_does_not_exist():
    assert Period(1, "months").end(date(2023, 1, 31)) == date(2023, 2, 28)
    assert Period(1, "months").end(date(2024, 1, 31)) == date(2024, 2, 29)
    assert Period(1, "years").end(date(2024, 2, 29)) == date(2025, 2, 28)
    assert Period(6, "months").end(date(2023, 8, 31)) == date(2024, 2, 29)


def test_unlinked_footage_is_due_the_day_after_six_months_and_not_a_day_earlier():
    when = due(facts(), CLASSES, TZ)
    assert (when.date, when.retention_class) == (date(2023, 8, 1), "unlinked")  # kept through 31 July
    late = facts(end=datetime(2023, 1, 31, 23, 30, tzinfo=UTC))  # 07:30 on 1 February in Shanghai
    assert due(late, CLASSES, TZ).date == date(2023, 8, 2)


def test_the_longest_period_wins_and_a_person_cannot_shorten_one():
    assert due(facts(person_class="short"), CLASSES, TZ).date == date(2023, 8, 1)  # 2 weeks < 6 months
    longer = due(facts(person_class="routine"), CLASSES, TZ)
    assert (longer.date, longer.retention_class) == (date(2024, 2, 1), "routine")


def test_a_case_keeps_its_footage_while_open_and_counts_from_its_closing():
    open_case = due(facts(cases=(CaseFacts("C1", None, None),)), CLASSES, TZ)
    assert open_case.date is None and open_case.why == "open case C1"
    assert due(facts(cases=(CaseFacts("C1", None, END),)), CLASSES, TZ).date is None  # evidence: permanent
    closed = CaseFacts("C2", "case_10y", datetime(2024, 5, 1, tzinfo=TZ))
    assert due(facts(cases=(closed,)), CLASSES, TZ).date == date(2034, 5, 2)
    # two cases: the longest; one of them still open keeps it
    shorter = CaseFacts("C3", "routine", datetime(2024, 5, 1, tzinfo=TZ))
    assert due(facts(cases=(closed, shorter)), CLASSES, TZ).date == date(2034, 5, 2)
    assert due(facts(cases=(shorter, CaseFacts("C4", "routine", None))), CLASSES, TZ).date is None


def test_invalid_is_short_but_only_for_footage_no_case_and_no_hold_touches():
    assert due(facts(person_class="invalid"), CLASSES, TZ).date == date(2023, 2, 8)
    linked = due(facts(person_class="invalid", cases=(CaseFacts("C", "routine", END),)), CLASSES, TZ)
    assert linked.date == date(2024, 2, 1)  # the case's year, not seven days
    assert due(facts(person_class="invalid", held=True), CLASSES, TZ).date == date(2023, 8, 1)


def test_an_unknown_class_keeps_footage_for_good():
    gone = due(facts(cases=(CaseFacts("C", "deleted_class", END),)), CLASSES, TZ)
    assert gone.date is None and gone.why == "unknown class deleted_class"


def test_what_holds_back_a_recording_past_its_date():
    now = END + timedelta(days=400)
    assert blocked(facts(verified_at=now - timedelta(days=3)), now, 30) is None
    assert blocked(facts(held=True), now, 30) == "held"
    assert blocked(facts(backed_up=False, verified_at=now), now, 30) == "not_backed_up"
    assert blocked(facts(verified_at=now - timedelta(days=31)), now, 30) == "not_verified"
    assert blocked(facts(verified_at=None), now, 30) == "not_verified"
