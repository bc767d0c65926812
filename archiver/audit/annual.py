"""The year (or any period) at a glance: the rule-of-law report's figures, counted from the catalog and
the custody log instead of by hand. Recordings count by when they were recorded, actions by when they
started, custody events by when they happened; each figure also per month."""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from archiver.archive.workspace import Workspace
from archiver.cases.casefile import KINDS, kind_of
from archiver.cases.links import check_cases
from archiver.catalog import BackupObject, Recording, VerifyRun
from archiver.i18n import N_, _
from archiver.i18n.words import word
from archiver.ledger.custody import actor_name, trail


def months_between(since: datetime, until: datetime) -> list[str]:
    """'YYYY-MM' of every month from `since` (inclusive) to `until` (exclusive), local dates."""
    out, year, month = [], since.year, since.month
    while since.replace(year=year, month=month, day=1, hour=0, minute=0, second=0, microsecond=0) < until:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _month(when: datetime, ws: Workspace) -> str:
    return when.astimezone(ws.cfg.timezone).strftime("%Y-%m")


def _hours(seconds: float) -> float:
    return round(seconds / 3600, 2)


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def figures(ws: Workspace, since: datetime, until: datetime, late_dock_hours: float) -> dict[str, Any]:
    """Every figure of the period [since, until): recorders, recordings, hours, cases and the full-process
    check, docking discipline, backups, verify runs, custody events, retrievals, holds and purges."""
    months = {m: {"month": m, "recorders": 0, "recordings": 0, "video_hours": 0.0, "audio_hours": 0.0, "photos": 0,
                  "bytes": 0,
                  "cases": 0, "actions": 0, "required_actions": 0, "compliant_actions": 0, "compliance_rate": None,
                  "late_docks": 0} for m in months_between(since, until)}
    late = timedelta(hours=late_dock_hours)
    with ws.catalog.reading() as session:
        recordings = list(session.execute(
            select(Recording.id, Recording.device_serial, Recording.officer_no, Recording.media_type,
                   Recording.start, Recording.end, Recording.duration_s, Recording.size, Recording.ingested_at,
                   Recording.archive_path, Recording.purged_at)
            .where(Recording.start >= since, Recording.start < until).order_by(Recording.start)))
        on_targets: dict[int, set[str]] = defaultdict(set)
        for rid, target in session.execute(select(BackupObject.recording_id, BackupObject.target)
                                           .where(BackupObject.kind == "recording")):
            on_targets[rid].add(target)
        verify_runs = list(session.execute(select(VerifyRun.finished_at, VerifyRun.checked, VerifyRun.problems)
                                           .where(VerifyRun.finished_at >= since, VerifyRun.finished_at < until)))
    per_recorder, per_officer, delays, late_docks, video_s, audio_s = _tally(ws, recordings, months, late)

    cases = _cases(ws, since, until, months)
    targets = set(ws.cfg.backup.names)
    behind = [r for r in recordings if r.purged_at is None and targets and not targets <= on_targets[r.id]]
    custody = _custody(ws, since, until)
    return {
        "since": since.astimezone(ws.cfg.timezone).isoformat(), "until": until.astimezone(ws.cfg.timezone).isoformat(),
        "recorders": len({r.device_serial for r in recordings if r.device_serial}),
        "recordings": len(recordings), "video_hours": _hours(video_s), "audio_hours": _hours(audio_s),
        "photos": sum(r.media_type == "photo" for r in recordings), "bytes": sum(r.size for r in recordings),
        "per_recorder": dict(sorted(per_recorder.items())), "per_officer": dict(sorted(per_officer.items())),
        **cases,
        "dock_delay_hours": {"median": round(statistics.median(delays), 2) if delays else None,
                             "p95": round(sorted(delays)[math.ceil(0.95 * len(delays)) - 1], 2) if delays else None,
                             "histogram": _histogram(delays)},
        "late_dock_hours": late_dock_hours, "late_docks": len(late_docks), "late_dock_list": late_docks,
        "backups": {"targets": sorted(targets), "not_on_every_target": len(behind),
                    "oldest_not_on_every_target": min(r.ingested_at for r in behind).astimezone(ws.cfg.timezone)
                    .isoformat() if behind else None},
        "verify_runs": len(verify_runs), "verify_problems": sum(len(p or []) for _t, _c, p in verify_runs),
        **custody,
        "months": list(months.values()),
    }


def _tally(ws: Workspace, recordings: list[Any], months: dict[str, dict],
           late: timedelta) -> tuple[dict, dict, list[float], list[dict[str, Any]], float, float]:
    """The recordings counted per recorder, per officer and per month (into `months`), with their docking
    delays: (per recorder, per officer, delays in hours, late docks, video seconds, audio seconds)."""
    month_recorders: dict[str, set[str]] = defaultdict(set)
    per_recorder: dict[str, dict[str, Any]] = {}
    per_officer: dict[str, dict[str, Any]] = {}
    delays, late_docks = [], []
    video_s = audio_s = 0.0
    for rec in recordings:
        month = months.get(_month(rec.start, ws))
        seconds = rec.duration_s or 0.0
        for table, key in ((per_recorder, rec.device_serial or "-"), (per_officer, rec.officer_no or "-")):
            row = table.setdefault(key, {"recordings": 0, "video_hours": 0.0, "audio_hours": 0.0, "photos": 0,
                                         "bytes": 0, "late_docks": 0})
            row["recordings"] += 1
            row["bytes"] += rec.size
            row["photos"] += rec.media_type == "photo"
            if rec.media_type in ("video", "audio"):
                row[f"{rec.media_type}_hours"] += seconds / 3600
        video_s += seconds if rec.media_type == "video" else 0
        audio_s += seconds if rec.media_type == "audio" else 0
        delay = rec.ingested_at - (rec.end or rec.start)
        delays.append(delay.total_seconds() / 3600)
        if delay > late:
            late_docks.append({"id": rec.id, "device": rec.device_serial, "officer": rec.officer_no,
                               "end": (rec.end or rec.start).astimezone(ws.cfg.timezone).isoformat(),
                               "ingested_at": rec.ingested_at.astimezone(ws.cfg.timezone).isoformat(),
                               "delay_hours": round(delay.total_seconds() / 3600, 2)})
            per_recorder[rec.device_serial or "-"]["late_docks"] += 1
            per_officer[rec.officer_no or "-"]["late_docks"] += 1
        if month is not None:
            if rec.device_serial:
                month_recorders[month["month"]].add(rec.device_serial)
            month["recordings"] += 1
            month["bytes"] += rec.size
            month["photos"] += rec.media_type == "photo"
            if rec.media_type in ("video", "audio"):
                month[f"{rec.media_type}_hours"] += seconds / 3600
            month["late_docks"] += delay > late
    for name, month in months.items():
        month["recorders"] = len(month_recorders.get(name, ()))
    for row in (*per_recorder.values(), *per_officer.values(), *months.values()):
        row["video_hours"], row["audio_hours"] = round(row["video_hours"], 2), round(row["audio_hours"], 2)
    return per_recorder, per_officer, delays, late_docks, video_s, audio_s


def _cases(ws: Workspace, since: datetime, until: datetime, months: dict[str, dict]) -> dict[str, Any]:
    cases: set[str] = set()
    actions = required = compliant = 0
    kinds = {key: {"kind": key, "cases": set(), "actions": 0, "required_actions": 0, "compliant_actions": 0}
             for key in KINDS}
    gaps, unrecorded = [], []
    month_cases: dict[str, set[str]] = defaultdict(set)
    tz = ws.cfg.timezone
    for check in check_cases(ws.catalog, None, ws.cfg.linking):
        for item in check.actions:
            start = item.action.start
            if not since <= start < until:
                continue
            month = months.get(_month(start, ws))
            kind = kinds[kind_of(check.case.kind)]
            cases.add(check.case.case_no)
            kind["cases"].add(check.case.case_no)
            month_cases[_month(start, ws)].add(check.case.case_no)
            actions += 1
            kind["actions"] += 1
            if month is not None:
                month["actions"] += 1
            if not item.action.recording_required:
                continue
            required += 1
            compliant += item.compliant
            kind["required_actions"] += 1
            kind["compliant_actions"] += item.compliant
            if month is not None:
                month["required_actions"] += 1
                month["compliant_actions"] += item.compliant
            for gap in item.coverage.gaps:
                gaps.append({"case_no": check.case.case_no, "stage": item.action.stage,
                             "start": gap.start.astimezone(tz).isoformat(), "end": gap.end.astimezone(tz).isoformat(),
                             "seconds": (gap.end - gap.start).total_seconds()})
            if item.coverage.covered_s == 0:
                unrecorded.append({"case_no": check.case.case_no, "stage": item.action.stage,
                                   "start": start.astimezone(tz).isoformat(),
                                   "end": item.action.end.astimezone(tz).isoformat()})
    for name, month in months.items():
        month["cases"] = len(month_cases.get(name, ()))
        month["compliance_rate"] = _rate(month["compliant_actions"], month["required_actions"])
    for kind in kinds.values():
        kind.update(cases=len(kind["cases"]),
                    compliance_rate=_rate(kind["compliant_actions"], kind["required_actions"]))
    return {"cases": len(cases), "actions": actions, "required_actions": required, "compliant_actions": compliant,
            "compliance_rate": _rate(compliant, required), "by_kind": list(kinds.values()), "gaps": gaps,
            "unrecorded_actions": unrecorded}


def _custody(ws: Workspace, since: datetime, until: datetime) -> dict[str, Any]:
    kinds: Counter[str] = Counter()
    retrievals: Counter[tuple[str, str]] = Counter()
    holds = purges = purged_bytes = 0
    for event in trail(ws.custody.path, since=since):
        if datetime.fromisoformat(event["time"]) >= until:
            break
        action = str(event.get("action"))
        kinds[action] += 1
        details = event.get("details") if isinstance(event.get("details"), dict) else {}
        if action == "retrieve":
            retrievals[(actor_name(event), str(details.get("reason", "")))] += 1
        holds += action == "hold_add"
        if action == "purge":
            purges += 1
            purged_bytes += int(details.get("bytes") or 0)
    return {"custody_events": dict(sorted(kinds.items())),
            "retrievals": [{"user": user, "reason": reason, "count": n}
                           for (user, reason), n in sorted(retrievals.items())],
            "holds_placed": holds, "purged": purges, "purged_bytes": purged_bytes}


def _histogram(delays: list[float]) -> list[dict[str, Any]]:
    """Dock delays in bins people think in: within 1 h, 6 h, 24 h, 3 days, a week, later."""
    bins = [("≤1h", 1), ("≤6h", 6), ("≤24h", 24), ("≤3d", 72), ("≤7d", 168), (">7d", math.inf)]
    counts = Counter(next(label for label, top in bins if d <= top) for d in delays)
    return [{"bin": label, "count": counts.get(label, 0)} for label, _top in bins]


# Each CSV column as its reader calls it (the JSON keeps the keys).
CSV_HEADERS = {
    "since": N_("from"), "until": N_("until"), "month": N_("month"), "recorders": N_("recorders"),
    "recorder": N_("recorder"), "officer": N_("officer"), "recordings": N_("recordings"),
    "video_hours": N_("hours of video"), "audio_hours": N_("hours of audio"), "photos": N_("photos"),
    "bytes": N_("bytes"), "cases": N_("cases"), "actions": N_("enforcement actions"),
    "required_actions": N_("actions to be recorded"), "compliant_actions": N_("recorded without a gap"),
    "compliance_rate": N_("full-process recording rate"), "late_docks": N_("late docks"),
    "late_dock_hours": N_("late after (h)"), "verify_runs": N_("verify runs"), "verify_problems": N_("verify problems"),
    "holds_placed": N_("holds placed"), "purged": N_("recordings purged"), "purged_bytes": N_("bytes purged"),
    "case_no": N_("case number"), "stage": N_("enforcement step"), "start": N_("start"), "end": N_("end"),
    "seconds": N_("seconds"), "id": N_("recording"), "device": N_("recorder"), "ingested_at": N_("archived at"),
    "delay_hours": N_("delay (h)"), "action": N_("event"), "count": N_("count"), "user": N_("user"),
    "reason": N_("reason"), "kind": N_("kind of action"),
}


def csv_tables(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """One table per file for a spreadsheet, its columns named in the reader's language."""
    tables = {
        "summary": [{k: v for k, v in data.items() if not isinstance(v, list | dict)}],
        "months": data["months"],
        "recorders": [{"recorder": k, **v} for k, v in data["per_recorder"].items()],
        "officers": [{"officer": k, **v} for k, v in data["per_officer"].items()],
        "gaps": data["gaps"], "unrecorded_actions": data["unrecorded_actions"],
        "late_docks": data["late_dock_list"],
        "custody_events": [{"action": word(k), "count": v} for k, v in data["custody_events"].items()],
        "retrievals": data["retrievals"],
        "kinds": [{**k, "kind": _(KINDS[k["kind"]][1])} for k in data["by_kind"]],
    }
    return {name: [{_(CSV_HEADERS.get(key, key)): value for key, value in row.items()} for row in rows]
            for name, rows in tables.items()}


def table_text(rows: list[dict[str, Any]]) -> str:
    """One of `csv_tables` as a CSV file's text, with the BOM Excel needs to read it as UTF-8. Every text cell
    is data: one that a spreadsheet would take for a formula (a reason or a case number starting with `=`,
    `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`, as OWASP's rule for CSV injection says."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, list(rows[0]) if rows else ["-"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows({key: inert(value) for key, value in row.items()} for row in rows)
    return "\ufeff" + buffer.getvalue()


def inert(value: Any) -> Any:
    """A cell a spreadsheet shows as the text it is, never runs."""
    return "'" + value if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")) else value
