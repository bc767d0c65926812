"""What retention says about the catalog today: each recording's due date, what is due now, what comes
later, and what is held back (and why). Gathers the facts; the rules are in rules.py."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

from sqlalchemy import select

from archiver.archive.workspace import Workspace
from archiver.cases.links import cases_for_recordings
from archiver.catalog import BackupObject, Case, Hold, Recording
from archiver.retention.rules import CaseFacts, Due, Facts, blocked, due


@dataclass
class Plan:
    today: date
    due_now: list[dict[str, Any]] = field(default_factory=list)
    upcoming: list[dict[str, Any]] = field(default_factory=list)
    blocked: list[dict[str, Any]] = field(default_factory=list)  # past their date, but held back
    kept: int = 0  # kept for good as things stand (open cases, permanent classes)

    def by_class(self) -> dict[str, dict[str, int]]:
        summary: dict[str, dict[str, int]] = defaultdict(lambda: {"due_now": 0, "due_now_bytes": 0,
                                                                  "upcoming": 0, "upcoming_bytes": 0})
        for key, items in (("due_now", self.due_now), ("upcoming", self.upcoming)):
            for item in items:
                summary[item["class"]][key] += 1
                summary[item["class"]][f"{key}_bytes"] += item["bytes"]
        return dict(sorted(summary.items()))

    def to_json(self) -> dict[str, Any]:
        return {"today": self.today.isoformat(), "due_now": self.due_now, "upcoming": self.upcoming,
                "blocked": self.blocked, "kept": self.kept, "classes": self.by_class(),
                "due_now_bytes": sum(i["bytes"] for i in self.due_now)}


def gather(ws: Workspace, ids: list[int] | None = None) -> list[Facts]:
    """The facts about every recording not purged (or those of `ids`)."""
    targets = set(ws.cfg.backup.names)
    with ws.catalog.reading() as session:
        query = select(Recording).where(Recording.purged_at.is_(None))
        if ids is not None:
            query = query.where(Recording.id.in_(ids))
        recordings = list(session.scalars(query.order_by(Recording.id)))
        backed = defaultdict(set)
        for rid, target in session.execute(select(BackupObject.recording_id, BackupObject.target)
                                           .where(BackupObject.kind == "recording")):
            if target in targets:
                backed[rid].add(target)
        holds = list(session.execute(select(Hold.case_id, Hold.recording_id).where(Hold.lifted_at.is_(None))))
        cases = {c.case_no: c for c in session.scalars(select(Case))}
    held_cases = {case_id for case_id, _rid in holds if case_id is not None}
    held_recordings = {rid for _cid, rid in holds if rid is not None}
    linked = cases_for_recordings(ws.catalog, (r.id for r in recordings))
    facts = []
    for rec in recordings:
        mine = [cases[no] for no in linked.get(rec.id, []) if no in cases]
        facts.append(Facts(
            id=rec.id, sha256=rec.sha256, archive_path=rec.archive_path, size=rec.size,
            end=rec.end or rec.start or rec.ingested_at, person_class=rec.retention_class,
            cases=tuple(CaseFacts(c.case_no, c.retention_class, c.closed_at) for c in mine),
            held=rec.id in held_recordings or any(c.id in held_cases for c in mine),
            backed_up=targets <= backed[rec.id], verified_at=rec.verified_at))
    return facts


def make_plan(ws: Workspace, now: datetime, ids: list[int] | None = None) -> Plan:
    tz = ws.cfg.timezone
    plan = Plan(now.astimezone(tz).date())
    for facts in gather(ws, ids):
        when = due(facts, ws.cfg.retention.classes, tz)
        if when.date is None:
            plan.kept += 1
            continue
        item = _item(facts, when, tz)
        if when.date > plan.today:
            if not facts.held:
                plan.upcoming.append(item)
            continue
        reason = blocked(facts, now, ws.cfg.retention.verified_within_days)
        if reason is None:
            plan.due_now.append(item)
        else:
            plan.blocked.append({**item, "reason": reason})
    plan.upcoming.sort(key=lambda i: (i["due"], i["id"]))
    return plan


def _item(facts: Facts, when: Due, tz: tzinfo) -> dict[str, Any]:
    return {"id": facts.id, "sha256": facts.sha256, "archive_path": facts.archive_path, "bytes": facts.size,
            "class": when.retention_class, "due": when.date.isoformat() if when.date else None, "why": when.why,
            "end": facts.end.astimezone(tz).isoformat()}

