"""The personnel register: who the office's officers are (姓名), their 执法证号, the station user each logs in as,
and the recorders each carries. Registers name officers by name as often as by number; this is what turns a
name into the number their recordings carry.

Reading (`read_people`) and resolving names (`resolve`) are pure; the rest touches the catalog.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from archiver.cases.casefile import (
    OFFICER_SEPARATORS,
    CaseFileError,
    CaseRecord,
    column_of,
    header_row,
    headers,
    officer_key,
    signature_row,
    table_rows,
)
from archiver.catalog import Action, ActionOfficer, Catalog, Device, Person, Recording
from archiver.catalog.db import commit
from archiver.i18n import N_, _

ALIASES = {
    "name": ("姓名", "人员姓名", "执法人员", "名字"),
    "officer_no": ("执法证号", "执法证编号", "执法证件号", "证号", "警号", "工号"),
    "user": ("系统用户", "用户名", "系统账号", "账号", "登录名"),
    "serials": ("记录仪编号", "执法记录仪编号", "记录仪", "执法记录仪", "设备编号", "记录仪序列号", "设备序列号"),
}
NEEDED = ("name", "officer_no")
LABELS = {"name": N_("name"), "officer_no": N_("执法证号 (officer number)")}
_KNOWN = headers(ALIASES)
_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")


@dataclass(frozen=True)
class PersonRecord:
    name: str
    officer_no: str
    user: str | None
    serials: tuple[str, ...]


def read_people(name: str, data: bytes, encoding: str | None = None) -> list[PersonRecord]:
    """The people of a .csv or .xlsx personnel register (its title rows, signature row and blank rows passed
    over). Raises CaseFileError naming every bad row; a register with any bad row gives nobody."""
    rows = table_rows(name, data, encoding, _(".csv or .xlsx"))
    first = header_row(rows, _KNOWN, tuple(ALIASES))
    header = [column_of(cell, _KNOWN) for cell in first[1]] if first else []
    missing = [c for c in NEEDED if c not in header]
    if first is None or missing:
        raise CaseFileError(_("{name}: no header row naming {items}; a personnel register has the columns 姓名, "
                              "执法证号 and, if any, 系统用户 and 记录仪编号").format(
                              name=name, items=_(", ").join(_(LABELS[c]) for c in missing or NEEDED)))
    words = dict(zip(header, (re.sub(r"\s+", "", str(cell)) for cell in first[1]), strict=True))
    people: dict[str, PersonRecord] = {}
    errors: list[str] = []
    for line, row in rows:
        if not any(str(cell).strip() for cell in row) or signature_row(row):
            continue
        values = {h: str(row[i]).strip() if i < len(row) and row[i] is not None else ""
                  for i, h in enumerate(header) if h in ALIASES}
        person_name = re.sub(r"\s+", "", values.get("name", ""))
        number = officer_key(values.get("officer_no", ""))
        user = values.get("user") or None
        problem = (_("{column} is empty").format(column=words["name"]) if not person_name else
                   _("{column} is empty").format(column=words["officer_no"]) if not number else
                   _("{column} {user!r} is not a user name of this machine's kind").format(
                       column=words["user"], user=user) if user and not _USER.match(user) else
                   _("{column} {number} is given twice").format(column=words["officer_no"], number=number)
                   if number in people else None)
        if problem:
            errors.append(_("line {line}: {exc}").format(line=line, exc=problem))
            continue
        serials = tuple(dict.fromkeys(s for s in OFFICER_SEPARATORS.split(values.get("serials", "")) if s))
        people[number] = PersonRecord(person_name, number, user, serials)
    if errors:
        raise CaseFileError(_("{name}: {count} bad row(s), nobody imported: {shown}").format(
                              name=name, count=len(errors), shown=_("; ").join(errors[:20])))
    return list(people.values())


def resolve(records: list[CaseRecord], names: dict[str, list[str]],
            numbers: set[str]) -> tuple[list[CaseRecord], list[str]]:
    """The cases with officers written by name given as their 执法证号 (`names`: name -> numbers, from the
    register), and a warning for each name the register gives to more than one officer (left as written).
    A number is written as recorders write it (half-width, upper case). Pure."""
    warnings: list[str] = []

    def number_of(officer: str, case_no: str) -> str:
        key = officer_key(officer)
        if key in numbers or key not in names and officer not in names:
            return key
        found = names.get(officer) or names[key]
        if len(found) > 1:
            warnings.append(_("case {case_no}: {name} is the name of {count} officers in the personnel register "
                              "({numbers}): write the 执法证号 instead").format(
                              case_no=case_no, name=officer, count=len(found), numbers=", ".join(found)))
            return officer
        return found[0]

    resolved = [dataclasses.replace(r, actions=[dataclasses.replace(
        a, officers=tuple(dict.fromkeys(number_of(o, r.case_no) for o in a.officers))) for a in r.actions])
        for r in records]
    return resolved, list(dict.fromkeys(warnings))


def unknown_officers(session: Session, officers: Iterable[str]) -> list[str]:
    """Those of `officers` that nothing here knows: no 执法证号 in the personnel register, no recorder issued to
    them, no recording of theirs. Their footage, if any, can never count for a case."""
    wanted = set(officers)
    if not wanted:
        return []
    known = set(session.scalars(select(Person.officer_no).where(Person.officer_no.in_(wanted))))
    known |= set(session.scalars(select(Device.officer_no).where(Device.officer_no.in_(wanted))))
    known |= set(session.scalars(select(Recording.officer_no).where(Recording.officer_no.in_(wanted)).distinct()))
    return sorted(wanted - known)


def unknown_officer(officer: str) -> str:
    """The warning for an officer `unknown_officers` found."""
    return _("officer {officer}: no 执法证号, recorder or recording of theirs is known here, so nothing they filmed "
             "can count: add them to the personnel register (archiver people import) or write their 执法证号").format(
             officer=officer)


def name_index(session: Session) -> tuple[dict[str, list[str]], set[str]]:
    """(name -> the 执法证号 of the people of that name, every 执法证号) of the register."""
    names: dict[str, list[str]] = defaultdict(list)
    numbers = set()
    for number, person_name in session.execute(select(Person.officer_no, Person.name).order_by(Person.officer_no)):
        names[person_name].append(number)
        numbers.add(number)
    return dict(names), numbers


@dataclass
class PeopleResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    recorders: int = 0  # recorders now issued to the person the register says carries them
    renamed: int = 0  # case officers written by name, now by number
    links: int = 0  # automatic links of the case steps whose officers changed

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


def import_people(catalog: Catalog, people: list[PersonRecord],
                  event: Callable[[Session, PeopleResult], None] | None = None) -> PeopleResult:
    """Add or update the people in one transaction: their recorders are issued to them, case officers written by
    a name the register now gives to one person become that person's number, and the links are derived again.
    `event` writes the custody event in that transaction."""
    from archiver.cases.links import link_recordings, relink_actions

    result = PeopleResult()
    with catalog.session() as session:
        for record in people:
            person = session.get(Person, record.officer_no)
            facts = (record.name, record.user, list(record.serials))
            if person is None:
                session.add(Person(officer_no=record.officer_no, name=record.name, user=record.user,
                                   serials=list(record.serials)))
                result.added += 1
            elif (person.name, person.user, list(person.serials)) == facts:
                result.unchanged += 1
            else:
                person.name, person.user, person.serials = facts
                result.updated += 1
            for serial in record.serials:
                device = session.scalar(select(Device).where(Device.serial == serial))
                if device is None:
                    session.add(Device(serial=serial, officer_no=record.officer_no))
                elif device.officer_no == record.officer_no:
                    continue
                else:
                    device.officer_no = record.officer_no
                result.recorders += 1
        session.flush()
        names, _numbers = name_index(session)
        actions: set[int] = set()
        for person_name, numbers in names.items():
            if len(numbers) == 1:
                written = set(session.scalars(select(ActionOfficer.action_id)
                                              .where(ActionOfficer.officer_no == person_name)))
                clash = set(session.scalars(select(ActionOfficer.action_id).where(
                    ActionOfficer.officer_no == numbers[0], ActionOfficer.action_id.in_(written))))
                session.execute(update(ActionOfficer).where(ActionOfficer.officer_no == person_name,
                                                            ActionOfficer.action_id.not_in(clash))
                                .values(officer_no=numbers[0]))
                session.execute(ActionOfficer.__table__.delete().where(ActionOfficer.officer_no == person_name))
                result.renamed += len(written)
                actions |= written
        serials = [s for r in people for s in r.serials]
        recordings = list(session.scalars(select(Recording.id).where(Recording.device_serial.in_(serials))))
        link_recordings(session, recordings)
        result.links = relink_actions(session, sorted(actions))
        if event is not None:
            event(session, result)
        commit(session)
    return result


def officer_of_user(catalog: Catalog, user: str) -> str | None:
    """The 执法证号 of the person the register gives this station user, if one person."""
    with catalog.reading() as session:
        found = list(session.scalars(select(Person.officer_no).where(Person.user == user).limit(2)))
    return found[0] if len(found) == 1 else None


def list_people(catalog: Catalog) -> list[dict[str, Any]]:
    """The register, with the recordings and case steps of each person."""
    with catalog.reading() as session:
        recordings = dict(session.execute(select(Recording.officer_no, func.count())
                                          .group_by(Recording.officer_no)).all())
        steps = dict(session.execute(select(ActionOfficer.officer_no, func.count(Action.id))
                                     .join(Action, Action.id == ActionOfficer.action_id)
                                     .group_by(ActionOfficer.officer_no)).all())
        return [{"officer_no": p.officer_no, "name": p.name, "user": p.user, "serials": list(p.serials),
                 "recordings": recordings.get(p.officer_no, 0), "steps": steps.get(p.officer_no, 0)}
                for p in session.scalars(select(Person).order_by(Person.officer_no))]
