"""Keeping periods and due dates (pure: no I/O, no clock of its own).

A recording is due for purging on the first whole day (in the station's time zone) after the longest
period that applies to it has run out, never earlier:
- always the `unlinked` class, from the recording's end (ordinary footage: at least six months);
- a class a person set (`recordings classify`), from its end; `invalid` alone (a file ingested by
  mistake) replaces the rest, and only while the recording is linked to no case and not held;
- for each case it is linked to, that case's class (the `evidence` class unless the case file names
  another), from the case's closing date; an open case (no closing date) keeps it.
A class the configuration no longer knows, and `permanent`, keep it for good.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from archiver.periods import Period

INVALID, UNLINKED, EVIDENCE = "invalid", "unlinked", "evidence"
REQUIRED_CLASSES = (INVALID, UNLINKED, EVIDENCE)

@dataclass(frozen=True)
class CaseFacts:
    case_no: str
    retention_class: str | None  # None: the evidence class
    closed_at: datetime | None  # None: open


@dataclass(frozen=True)
class Facts:
    """One recording as retention sees it."""

    id: int
    sha256: str
    archive_path: str
    size: int
    end: datetime  # when it stopped recording (else started, else was ingested)
    person_class: str | None
    cases: tuple[CaseFacts, ...]
    held: bool
    backed_up: bool  # on every configured backup target, as the catalog recorded
    verified_at: datetime | None


@dataclass(frozen=True)
class Due:
    date: date | None  # None: kept for good (as things stand)
    retention_class: str  # the class that decides it
    why: str  # "open case 叶城罚〔2023〕31号", "permanent", "invalid", ...


def due(facts: Facts, classes: dict[str, Period], tz: tzinfo) -> Due:
    """When `facts` may be purged, by the longest period that applies; never guessed low."""
    ended = facts.end.astimezone(tz).date()

    def keep(name: str, start: date) -> date | None:
        period = classes.get(name)
        return None if period is None else period.end(start)

    if facts.person_class == INVALID and not facts.cases and not facts.held:
        last = keep(INVALID, ended)
        return Due(None if last is None else last + timedelta(days=1), INVALID, INVALID)
    candidates: list[tuple[str, str, date | None]] = [(UNLINKED, UNLINKED, keep(UNLINKED, ended))]
    if facts.person_class and facts.person_class != INVALID:
        candidates.append((facts.person_class, "classified", keep(facts.person_class, ended)))
    for case in facts.cases:
        name = case.retention_class or EVIDENCE
        if case.closed_at is None:
            return Due(None, name, f"open case {case.case_no}")
        candidates.append((name, f"case {case.case_no}", keep(name, case.closed_at.astimezone(tz).date())))
    for name, why, last in candidates:
        if last is None:
            return Due(None, name, why if name in classes else f"unknown class {name}")
    name, why, last = max(candidates, key=lambda c: c[2])
    assert last is not None
    return Due(last + timedelta(days=1), name, why)


def blocked(facts: Facts, now: datetime, verified_within_days: int) -> str | None:
    """Why a recording past its date may still not be purged: held, not on every backup target, or not
    verified lately (its archived copy must be known good before anything depends on that)."""
    if facts.held:
        return "held"
    if not facts.backed_up:
        return "not_backed_up"
    if facts.verified_at is None or now - facts.verified_at > timedelta(days=verified_within_days):
        return "not_verified"
    return None
