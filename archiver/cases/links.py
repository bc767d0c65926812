"""Cases in the catalog: import, linking recordings to actions, coverage checks, lookups.

Automatic links (`action_links`) are derived from officer + time and re-derived whenever cases or
recordings arrive. A person's decisions (`case_links`: linked / unlinked) are kept apart and
always win: a manually linked recording counts for every action whose window it overlaps, an
unlinked one for none.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import delete, func, insert, select, union
from sqlalchemy.orm import Session, selectinload

from archiver.cases.casefile import CaseRecord, case_key
from archiver.cases.coverage import Coverage, Span, coverage, overlaps
from archiver.catalog import (
    Action,
    ActionLink,
    ActionOfficer,
    Case,
    CaseLink,
    Catalog,
    Device,
    Hold,
    Person,
    Recording,
)
from archiver.catalog.db import commit, one_of
from archiver.config import LinkingConfig
from archiver.errors import ArchiverError, NotFoundError
from archiver.i18n import _

_CHUNK = 500  # ids per IN (...) list
# Recordings longer than this are not linked automatically (segments are minutes long; FAT32 caps a
# file at 4 GiB). The bound keeps the officer/time index scan short.
LONGEST_RECORDING = timedelta(hours=48)
COVERING = ("video", "audio")  # photos are instants: evidence, not coverage


# -- import --------------------------------------------------------------------------------
@dataclass
class ImportResult:
    cases_created: int = 0
    cases_updated: int = 0
    cases_unchanged: int = 0  # imported again exactly as they were
    actions_added: int = 0
    actions_updated: int = 0
    actions_removed: int = 0
    links: int = 0

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


def import_cases(catalog: Catalog, records: list[CaseRecord], linking: LinkingConfig,
                 event: Callable[[Session, ImportResult], None] | None = None) -> ImportResult:
    """Create or update the cases in one transaction, then re-derive their automatic links; `event` writes
    the custody event in that transaction, before it commits.

    An action is identified within its case by (stage, start); actions of an imported case that the
    file no longer lists are removed. Manual links belong to the case and are untouched.
    """
    result = ImportResult()
    slack = timedelta(seconds=linking.clock_tolerance_s)
    with catalog.session() as session:
        existing = {c.case_no: c for c in _in_chunks(
            session, select(Case).options(selectinload(Case.actions).selectinload(Action.officers)),
            Case.case_no, [r.case_no for r in records])}
        pinned = _pinned(session, [c.id for c in existing.values()])
        for record in records:
            case = existing.get(record.case_no)
            created = case is None
            if created:
                case = existing[record.case_no] = Case(case_no=record.case_no, title=record.title)
                session.add(case)
                result.cases_created += 1
            before = _case_facts(case)
            case.title = record.title or case.title
            for key in ("retention_class", "closed_at", "party", "kind"):
                setattr(case, key, getattr(record, key) or getattr(case, key))
            old = {(a.stage, _utc(a.start)): a for a in case.actions}
            changed = _case_facts(case) != before
            for item in record.actions:
                action = old.pop((item.stage, _utc(item.start)), None)
                if action is None:
                    action = Action(stage=item.stage, start=item.start)
                    case.actions.append(action)
                    result.actions_added += 1
                elif (_utc(action.end), action.recording_required, sorted(o.officer_no for o in action.officers)) \
                        == (_utc(item.end), item.recording_required, sorted(item.officers)):
                    continue  # as it was: left alone, its links too
                else:
                    result.actions_updated += 1
                changed = True
                action.end = item.end
                action.recording_required = item.recording_required
                action.link_from, action.link_to = item.start - slack, item.end + slack
                action.scan_from = action.link_from - LONGEST_RECORDING
                action.officers = [ActionOfficer(officer_no=o) for o in item.officers]
            for action in old.values():
                case.actions.remove(action)
                result.actions_removed += 1
                changed = True
            if not created:
                result.cases_updated += changed
                result.cases_unchanged += not changed
        session.flush()
        result.links = relink_actions(session, [a.id for c in existing.values() for a in c.actions])
        _keep_pinned(session, pinned)
        if event is not None:
            event(session, result)
        commit(session)
    return result


def _utc(moment: datetime | None) -> datetime | None:
    """A time as the catalog compares it (aware, in UTC: what it stores comes back in UTC)."""
    return moment.astimezone(UTC) if moment is not None else None


def _case_facts(case: Case) -> tuple[Any, ...]:
    return case.title, case.retention_class, _utc(case.closed_at), case.party, case.kind


def _linked(session: Session, case_id: int) -> set[int]:
    """The recordings linked to a case now: its actions' automatic links and its manual links, less the
    recordings unlinked by hand."""
    actions = select(Action.id).where(Action.case_id == case_id)
    found = set(session.scalars(select(ActionLink.recording_id).where(ActionLink.action_id.in_(actions))))
    for rid, kind in session.execute(select(CaseLink.recording_id, CaseLink.kind).where(CaseLink.case_id == case_id)):
        (found.add if kind == "linked" else found.discard)(rid)
    return found


def _pinned(session: Session, case_ids: list[int]) -> list[tuple[Hold, str, set[int]]]:
    """For each standing hold on these cases: (the hold, the case number, the recordings it covers now)."""
    if not case_ids:
        return []
    rows = session.execute(select(Hold, Case.case_no).join(Case, Case.id == Hold.case_id)
                           .where(Hold.case_id.in_(case_ids), Hold.lifted_at.is_(None))).all()
    return [(hold, number, _linked(session, hold.case_id)) for hold, number in rows]


def _keep_pinned(session: Session, pinned: list[tuple[Hold, str, set[int]]]) -> None:
    """A case hold pins the recordings it covered: a change that takes one out of it is refused (the
    transaction is left uncommitted), naming the hold."""
    for hold, number, covered in pinned:
        lost = sorted(covered - _linked(session, hold.case_id))
        if lost:
            raise ArchiverError(_("case {case_no} is held (hold {hold}: {reason}): this would take recording(s) "
                                  "{ids} out of the hold; nothing changed; lift the hold first, or leave the "
                                  "case's links as they are").format(
                                  case_no=number, hold=hold.id, reason=hold.reason,
                                  ids=", ".join(f"#{i}" for i in lost[:20])))


def _case(session: Session, case_no: str) -> Case:
    return session.scalar(select(Case).where(Case.case_no == case_no))


def _in_chunks(session: Session, query, column, values: list[Any], rows: bool = False) -> Iterator[Any]:
    """Run `query` for `values` of `column` in chunks; ORM objects, or plain rows with `rows`."""
    run = session.execute if rows else session.scalars
    for i in range(0, len(values), _CHUNK):
        yield from run(query.where(one_of(session, column, values[i:i + _CHUNK])))


# -- automatic links -------------------------------------------------------------------------
def _candidates(action_filter, recording_filter):
    """(action id, recording id) pairs matching by officer or by the officer a device is issued to."""
    recording_end = func.coalesce(Recording.end, Recording.start)
    in_window = ((Recording.start <= Action.link_to) & (Recording.start >= Action.scan_from)
                 & (recording_end >= Action.link_from))
    by_officer = (select(Action.id, Recording.id)
                  .join(ActionOfficer, ActionOfficer.action_id == Action.id)
                  .join(Recording, Recording.officer_no == ActionOfficer.officer_no)
                  .where(in_window, action_filter, recording_filter))
    by_device = (select(Action.id, Recording.id)
                 .join(ActionOfficer, ActionOfficer.action_id == Action.id)
                 .join(Device, Device.officer_no == ActionOfficer.officer_no)
                 .join(Recording, Recording.device_serial == Device.serial)
                 .where(in_window, action_filter, recording_filter))
    return union(by_officer, by_device)


def relink_actions(session: Session, action_ids: list[int]) -> int:
    """Re-derive the automatic links of these actions. Returns how many links they now have."""
    count = 0
    for i in range(0, len(action_ids), _CHUNK):
        chunk = action_ids[i:i + _CHUNK]
        session.execute(delete(ActionLink).where(ActionLink.action_id.in_(chunk)))
        session.execute(insert(ActionLink).from_select(
            ["action_id", "recording_id"], _candidates(Action.id.in_(chunk), Recording.start.is_not(None))))
        count += session.scalar(select(func.count()).select_from(ActionLink)
                                .where(ActionLink.action_id.in_(chunk))) or 0
    return count


def link_recordings(session: Session, recording_ids: list[int]) -> None:
    """Derive the automatic links of newly arrived recordings (called in the ingest's transaction)."""
    for i in range(0, len(recording_ids), _CHUNK):
        chunk = recording_ids[i:i + _CHUNK]
        session.execute(delete(ActionLink).where(ActionLink.recording_id.in_(chunk)))
        session.execute(insert(ActionLink).from_select(
            ["action_id", "recording_id"], _candidates(True, Recording.id.in_(chunk))))


# -- manual links ----------------------------------------------------------------------------
def set_manual_link(catalog: Catalog, case_no: str, recording_ids: list[int], kind: str, by: str,
                    event: Callable[[Session, str], None] | None = None) -> str:
    """Record that these recordings do ('linked') or do not ('unlinked') belong to the case; `event` writes
    the custody event (given the case number as stored) in that transaction. The case number as stored."""
    assert kind in ("linked", "unlinked")
    with catalog.session() as session:
        case = _require_case(session, case_no)
        pinned = _pinned(session, [case.id])
        for rid in recording_ids:
            link = session.get(CaseLink, (case.id, rid))
            if link is None:
                link = CaseLink(case_id=case.id, recording_id=rid)
                session.add(link)
            link.kind, link.by = kind, by
        session.flush()
        _keep_pinned(session, pinned)
        if event is not None:
            event(session, case.case_no)
        commit(session)
        return case.case_no


def _require_case(session: Session, case_no: str) -> Case:
    """The case numbered exactly `case_no`; else the one whose number reads the same once brackets,
    full-width forms and spaces are set aside (case_key). Several such: refused, each named."""
    case = _case(session, case_no)
    if case is not None:
        return case
    key = case_key(case_no)
    alike = [c for c in session.scalars(select(Case).order_by(Case.case_no)) if case_key(c.case_no) == key]
    if len(alike) == 1:
        return alike[0]
    if alike:
        raise ArchiverError(_("{case_no!r} could be any of {count} cases: {items}; give the number as one of "
                              "them reads").format(
                              case_no=case_no, count=len(alike), items=', '.join(repr(c.case_no) for c in alike[:10])))
    raise missing_case(case_no)


def missing_case(case_no: str) -> NotFoundError:
    """What anyone is told of a case that does not exist, and an officer of one they do not act in."""
    return NotFoundError(_("no case {case_no!r}: see 'archiver cases list' or 'archiver cases search'").format(
                         case_no=case_no))


Removed = tuple[str, int, list[int]]  # the case number as stored, its actions, the recordings linked to it


def remove_case(catalog: Catalog, case_no: str, event: Callable[[Session, Removed], None] | None = None) -> Removed:
    """Remove a case imported by mistake, with its actions and every link to it; the recordings stay.
    (the number as stored, the actions removed, the recordings that were linked to it); `event` writes the
    custody event in that transaction."""
    with catalog.session() as session:
        case = _require_case(session, case_no)
        standing = session.scalars(select(Hold).where(Hold.case_id == case.id, Hold.lifted_at.is_(None))).first()
        if standing is not None:
            raise ArchiverError(_("case {case_no} is held (hold {hold}: {reason}): it cannot be removed while the "
                                  "hold stands; lift it first ('archiver hold remove --case')").format(
                                  case_no=case.case_no, hold=standing.id, reason=standing.reason))
        for lifted in session.scalars(select(Hold).where(Hold.case_id == case.id)):
            lifted.case_id = None  # a lifted hold outlives its case (the custody log names the case)
        action_ids = [a.id for a in case.actions]
        linked = set(session.scalars(select(ActionLink.recording_id).where(ActionLink.action_id.in_(action_ids))))
        linked |= set(session.scalars(select(CaseLink.recording_id).where(CaseLink.case_id == case.id,
                                                                           CaseLink.kind == "linked")))
        number = case.case_no
        session.delete(case)  # its actions, their officers and links, and its manual links go with it
        removed = (number, len(action_ids), sorted(linked))
        if event is not None:
            event(session, removed)
        commit(session)
    return removed


def resolve_case_no(catalog: Catalog, case_no: str, officer: str | None = None) -> str:
    """The case number as stored, for one typed any way `_require_case` accepts. With `officer`, only among
    the cases that officer acts in: any other is answered as if it did not exist."""
    with catalog.reading() as session:
        try:
            case = _require_case(session, case_no)
        except ArchiverError:
            if officer is None:
                raise
            raise missing_case(case_no) from None
        if officer is not None and session.scalar(select(Case.id).where(Case.id == case.id,
                                                                        Case.id.in_(_cases_of(officer)))) is None:
            raise missing_case(case_no)
        return case.case_no


# -- checking --------------------------------------------------------------------------------
@dataclass
class ActionCheck:
    action: Any  # a row: id, case_id, stage, start, end, recording_required
    officers: list[str]
    coverage: Coverage
    recordings: list[Any]  # rows of every recording counted for this action, photos included
    manual: set[int]  # ids of those that count because a person linked them

    @property
    def compliant(self) -> bool:
        return not self.action.recording_required or not self.coverage.gaps


@dataclass
class CaseCheck:
    case: Any  # a row: id, case_no, title
    actions: list[ActionCheck] = field(default_factory=list)
    linked_only: list[Any] = field(default_factory=list)  # manually linked, in no action window
    unlinked: list[Any] = field(default_factory=list)  # manually excluded

    @property
    def compliant(self) -> bool:
        return all(a.compliant for a in self.actions)


# What the check itself needs of a recording; `full` loads every column (show, report).
_CHECK_COLUMNS = (Recording.id, Recording.start, Recording.end, Recording.media_type)


def check_cases(catalog: Catalog, case_nos: list[str] | None, linking: LinkingConfig,
                full: bool = False) -> Iterator[CaseCheck]:
    """Coverage of every action of the given cases (None: all cases), case by case, in batches.

    Plain rows, not ORM objects: `check --all` over 100,000 cases stays a matter of seconds.
    """
    columns = tuple(Recording.__table__.columns) if full else _CHECK_COLUMNS
    with catalog.reading() as session:
        if case_nos is None:
            ids = list(session.scalars(select(Case.id).order_by(Case.case_no)))
        else:
            ids = [_require_case(session, c).id for c in case_nos]
        for i in range(0, len(ids), _CHUNK):
            yield from _check_batch(session, ids[i:i + _CHUNK], linking, columns)


def _check_batch(session: Session, case_ids: list[int], linking: LinkingConfig, columns) -> Iterator[CaseCheck]:
    cases = {c.id: c for c in session.execute(select(Case.id, Case.case_no, Case.title, Case.party, Case.kind,
                                                     Case.closed_at)
                                              .where(one_of(session, Case.id, case_ids)))}
    actions: dict[int, list[Any]] = defaultdict(list)
    for a in session.execute(select(Action.id, Action.case_id, Action.stage, Action.start, Action.end,
                                    Action.recording_required)
                             .where(one_of(session, Action.case_id, case_ids)).order_by(Action.start, Action.id)):
        actions[a.case_id].append(a)
    action_ids = [a.id for group in actions.values() for a in group]
    officers: dict[int, list[str]] = defaultdict(list)
    for action_id, officer in _in_chunks(session, select(ActionOfficer.action_id, ActionOfficer.officer_no)
                                         .order_by(ActionOfficer.officer_no), ActionOfficer.action_id, action_ids,
                                         rows=True):
        officers[action_id].append(officer)
    auto: dict[int, set[int]] = defaultdict(set)
    for action_id, recording_id in _in_chunks(session, select(ActionLink.action_id, ActionLink.recording_id),
                                              ActionLink.action_id, action_ids, rows=True):
        auto[action_id].add(recording_id)
    manual: dict[int, dict[int, str]] = defaultdict(dict)
    for case_id, recording_id, kind in session.execute(
            select(CaseLink.case_id, CaseLink.recording_id, CaseLink.kind)
            .where(one_of(session, CaseLink.case_id, case_ids))):
        manual[case_id][recording_id] = kind
    wanted = set().union(*auto.values(), *(m.keys() for m in manual.values()))
    recordings = {r.id: r for r in _in_chunks(session, select(*columns), Recording.id, sorted(wanted), rows=True)}
    for case_id in case_ids:
        decisions = manual.get(case_id, {})
        linked = [recordings[r] for r, k in decisions.items() if k == "linked" and r in recordings]
        result = CaseCheck(cases[case_id], unlinked=[recordings[r] for r, k in decisions.items()
                                                     if k == "unlinked" and r in recordings])
        used: set[int] = set()
        for action in actions.get(case_id, []):
            window = Span(action.start, action.end)
            chosen = {r: recordings[r] for r in auto.get(action.id, ()) if decisions.get(r) != "unlinked"}
            hand = {r.id for r in linked if r.start and overlaps(_span(r), window, linking.clock_tolerance_s)}
            chosen.update({r: recordings[r] for r in hand})
            ordered = sorted(chosen.values(), key=lambda r: (r.start, r.id))
            spans = [_span(r) for r in ordered if r.media_type in COVERING and r.start and r.end]
            result.actions.append(ActionCheck(action, officers.get(action.id, []),
                                              coverage(window, spans, linking.max_gap_s), ordered, hand))
            used |= chosen.keys()
        result.linked_only = [r for r in linked if r.id not in used]
        yield result


def _span(rec: Any) -> Span:
    return Span(rec.start, rec.end or rec.start)


# -- lookups ---------------------------------------------------------------------------------
def list_cases(catalog: Catalog, text: str | None = None, officer: str | None = None) -> list[dict[str, Any]]:
    """All cases, or those whose number, title or party (当事人) contains `text` or with an officer matching
    it by number or by the name the personnel register gives, however written (brackets, full-width forms,
    letter case and spaces set aside: `case_key`); with `officer`, only the cases that officer acts in."""
    with catalog.reading() as session:
        query = (select(Case.id, Case.case_no, Case.title, Case.party, Case.kind, func.count(Action.id),
                        func.min(Action.start), func.max(Action.end))
                 .outerjoin(Action, Action.case_id == Case.id).group_by(Case.id).order_by(Case.case_no))
        if officer is not None:
            query = query.where(Case.id.in_(_cases_of(officer)))
        rows = list(session.execute(query))
        if text:
            key = case_key(text)
            names = {number: case_key(name) for number, name in session.execute(select(Person.officer_no,
                                                                                        Person.name))}
            officers: dict[int, list[str]] = defaultdict(list)
            for case_id, number in session.execute(select(Action.case_id, ActionOfficer.officer_no)
                                                   .join(ActionOfficer, ActionOfficer.action_id == Action.id)):
                officers[case_id] += [case_key(number), names.get(number, "")]
            rows = [r for r in rows if any(key in case_key(field or "") for field in r[1:4])
                    or any(key in o for o in officers[r[0]] if o)]
        return [{"case_no": n, "title": t, "party": p, "kind": k, "actions": c, "start": s, "end": e}
                for _id, n, t, p, k, c, s, e in rows]


def acts_in(catalog: Catalog, officer: str, case_no: str) -> bool:
    """Whether the officer is named on any action of the case."""
    with catalog.reading() as session:
        case = _require_case(session, case_no)
        return session.scalar(select(Case.id).where(Case.id == case.id, Case.id.in_(_cases_of(officer)))) is not None


def _cases_of(officer: str):
    return (select(Action.case_id).join(ActionOfficer, ActionOfficer.action_id == Action.id)
            .where(ActionOfficer.officer_no == officer))


def recording_ids_for_case(catalog: Catalog, case_no: str, linking: LinkingConfig) -> list[int]:
    (check,) = list(check_cases(catalog, [case_no], linking))  # ids only: the light rows suffice
    ids = {r.id for a in check.actions for r in a.recordings} | {r.id for r in check.linked_only}
    return sorted(ids)


def cases_for_recordings(catalog: Catalog, recording_ids: Iterable[int]) -> dict[int, list[str]]:
    """Case numbers each recording belongs to (automatic links not undone, plus manual links)."""
    ids = list(recording_ids)
    found: dict[int, set[str]] = defaultdict(set)
    with catalog.reading() as session:
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i:i + _CHUNK]
            unlinked = set(session.execute(select(CaseLink.recording_id, CaseLink.case_id)
                                           .where(CaseLink.recording_id.in_(chunk), CaseLink.kind == "unlinked")))
            for rid, case_id, case_no in session.execute(
                    select(ActionLink.recording_id, Case.id, Case.case_no)
                    .join(Action, Action.id == ActionLink.action_id).join(Case, Case.id == Action.case_id)
                    .where(ActionLink.recording_id.in_(chunk))):
                if (rid, case_id) not in unlinked:
                    found[rid].add(case_no)
            for rid, case_no in session.execute(
                    select(CaseLink.recording_id, Case.case_no).join(Case, Case.id == CaseLink.case_id)
                    .where(CaseLink.recording_id.in_(chunk), CaseLink.kind == "linked")):
                found[rid].add(case_no)
    return {rid: sorted(nos) for rid, nos in found.items()}


# -- JSON ------------------------------------------------------------------------------------
def _iso(value: datetime | None, tz: tzinfo) -> str | None:
    return value.astimezone(tz).isoformat() if value else None


def check_json(check: CaseCheck, tz: tzinfo) -> dict[str, Any]:
    """The design's `cases check --json` entry for one case."""
    return {
        "case_no": check.case.case_no,
        "compliant": check.compliant,
        "actions": [{
            "stage": a.action.stage,
            "start": _iso(a.action.start, tz),
            "end": _iso(a.action.end, tz),
            "officers": a.officers,
            "required": a.action.recording_required,
            "covered_s": round(a.coverage.covered_s, 3),
            "coverage": round(a.coverage.ratio, 4),
            "gaps": [{"start": _iso(g.start, tz), "end": _iso(g.end, tz)} for g in a.coverage.gaps],
            "recordings": [r.id for r in a.recordings],
        } for a in check.actions],
    }
