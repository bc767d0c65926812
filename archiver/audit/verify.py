"""`archiver verify`: re-hash the archive, compare with catalog and manifests, check the custody log.

Every problem is reported, not the first one. Files are read from the disk (O_DIRECT where the
filesystem allows) by two workers; with a time budget the least recently verified files go first
and each file's verification time is remembered, so nightly runs cover a large archive in turns.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from archiver.archive.manifests import day_entries, parse_manifest
from archiver.archive.store import Archive
from archiver.archive.workspace import Workspace
from archiver.cases.links import recording_ids_for_case
from archiver.catalog import Receipt, Recording, VerifyRun
from archiver.catalog.db import commit
from archiver.catalog.models import utcnow
from archiver.fs import TEMP_PREFIX
from archiver.i18n import N_, _
from archiver.ledger.anchor import HEAD_ANCHOR, read_anchor
from archiver.ledger.custody import LOG_NAME, Head, catalog_head, check_log
from archiver.ledger.keys import PublicKey
from archiver.ledger.receipts import receipt_head
from archiver.problems import Finding, Kind

WORKERS = 2


@dataclass
class VerifyReport:
    checked: int = 0
    ok: int = 0
    remaining: int = 0  # selected files left for a later (budgeted) run
    bytes: int = 0
    seconds: float = 0.0
    problems: list[Finding] = field(default_factory=list)
    custody_events: int = 0
    anchors: list[dict[str, Any]] = field(default_factory=list)  # the heads the log was checked against
    run_id: int | None = None

    def problem(self, kind: Kind, path: str, text: str, expected: str | None = None, found: str | None = None,
                **values: Any) -> None:
        self.problems.append(Finding(kind, path, text, values, expected, found))

    def to_json(self) -> dict[str, Any]:
        return {"checked": self.checked, "ok": self.ok, "problems": [p.to_json() for p in self.problems],
                "remaining": self.remaining,
                "bytes": self.bytes, "seconds": round(self.seconds, 3), "custody_events": self.custody_events,
                "anchors": self.anchors, "run_id": self.run_id}


def verify(ws: Workspace, case_no: str | None = None, since: datetime | None = None,
           max_minutes: float | None = None, progress=None, heads: Iterable[Head] = ()) -> VerifyReport:
    started = time.monotonic()
    deadline = None if max_minutes is None else started + max_minutes * 60
    report = VerifyReport()
    query = select(Recording).order_by(Recording.verified_at, Recording.id)
    if case_no is not None:
        query = query.where(Recording.id.in_(recording_ids_for_case(ws.catalog, case_no, ws.cfg.linking)))
    if since is not None:
        query = query.where(Recording.ingested_at >= since)
    with ws.catalog.session() as session:
        selected = list(session.scalars(query))
    everything = case_no is None and since is None
    # a purged recording (a tombstone) is expected gone: not hashed, not listed, its file unexpected
    live = [r for r in selected if r.purged_at is None]
    if progress is not None:
        progress.begin(len(live), sum(r.size for r in live))
    checked, verified = _hash_all(ws.archive, live, deadline, report, progress)
    _remember(ws, verified)
    report.remaining = len(live) - len(checked)
    if progress is not None:
        progress.end()

    days = {Path(r.archive_path).parts[:4] for r in (selected if everything else checked)}
    _check_manifests(ws, days, report)
    if everything:
        _find_unexpected(ws, {r.archive_path for r in live},
                         {r.archive_path: r.purge_request_id for r in selected if r.purged_at is not None}, report)
    _check_custody(ws, selected, everything, list(heads), report)
    report.seconds = time.monotonic() - started
    scope = "all" if everything else f"case {case_no}" if case_no else f"since {since.isoformat()}"
    if max_minutes is not None:
        scope += f", budget {max_minutes:g} min"
    with ws.catalog.session() as session:
        run = VerifyRun(scope=scope, finished_at=utcnow(), checked=report.checked, ok=report.ok,
                        remaining=report.remaining, problems=[p.to_json() for p in report.problems])
        session.add(run)
        commit(session)
        report.run_id = run.id
    ws.custody.append("verify", {"scope": scope}, {"run": report.run_id, "checked": report.checked,
                                                    "ok": report.ok, "problems": len(report.problems),
                                                    "remaining": report.remaining})
    return report


def _hash_all(archive: Archive, selected: list[Recording], deadline: float | None, report: VerifyReport,
              progress) -> tuple[list[Recording], list[int]]:
    """Hash the selected files with two workers; stop taking new ones once the budget is spent.

    Returns the recordings checked and the ids of those that matched.
    """
    done: list[Recording] = []
    verified: list[int] = []
    pending: dict[Future, Recording] = {}
    queue = iter(selected)
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="verify") as pool:
        while True:
            # at least one file per run, however small the budget
            while len(pending) < WORKERS * 2 and (deadline is None or time.monotonic() < deadline
                                                  or not (done or pending)):
                rec = next(queue, None)
                if rec is None:
                    break
                algorithms = ["sha256"] + (["sm3"] if rec.sm3 else [])
                pending[pool.submit(archive.read_back, archive.data_dir / rec.archive_path, algorithms)] = rec
            if not pending:
                break
            finished, _pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                rec = pending.pop(future)
                done.append(rec)
                if _judge(rec, future, report):
                    verified.append(rec.id)
                if progress is not None:
                    progress.advance(rec.size)
                    progress.file_done(rec.archive_path, "ok")
    report.checked, report.ok = len(done), len(verified)
    return done, verified


def _remember(ws: Workspace, verified: list[int]) -> None:
    """Note when each file was last found intact: budgeted runs take the oldest first."""
    now = utcnow()
    with ws.catalog.session() as session:
        for i in range(0, len(verified), 500):
            session.execute(update(Recording).where(Recording.id.in_(verified[i:i + 500])).values(verified_at=now))
        commit(session)


def _judge(rec: Recording, future: Future, report: VerifyReport) -> bool:
    try:
        digests = future.result()
    except FileNotFoundError:
        report.problem(Kind.MISSING, rec.archive_path, N_("recording #{id} (sha256 {sha256}) is not in the archive"),
                       id=rec.id, sha256=rec.sha256)
        return False
    except OSError as exc:
        report.problem(Kind.UNREADABLE, rec.archive_path, N_("recording #{id}: {value}"), id=rec.id,
                       value=str(exc.strerror or exc))
        return False
    report.bytes += rec.size
    if digests["sha256"] != rec.sha256:
        report.problem(Kind.MISMATCH, rec.archive_path, N_("recording #{id}: sha256 is {found}, the catalog says "
                                                           "{expected}"), rec.sha256, digests["sha256"], id=rec.id)
        return False
    if rec.sm3 and digests.get("sm3") != rec.sm3:
        report.problem(Kind.MISMATCH, rec.archive_path, N_("recording #{id}: sm3 is {found}, the catalog says "
                                                           "{expected}"), rec.sm3, digests.get("sm3"), id=rec.id)
        return False
    return True


def _check_manifests(ws: Workspace, days: set[tuple[str, ...]], report: VerifyReport) -> None:
    """Each day's manifests against the catalog: every file listed with its hash, nothing more."""
    for day in sorted(days):
        folder = ws.archive.data_dir.joinpath(*day)
        for algorithm, expected in day_entries(ws.archive, ws.catalog, folder, ws.cfg.hashes).items():
            manifest = folder / f"manifest-{algorithm}.txt"
            shown = ws.archive.relative(manifest)
            try:
                with ws.archive.open(manifest) as fh:
                    listed = parse_manifest(fh.read().decode("utf-8", "replace"))
            except FileNotFoundError:
                if expected:
                    report.problem(Kind.MANIFEST, shown, N_("missing; it should list {count} file(s)"),
                                   count=len(expected))
                continue
            for rel, digest in sorted(expected.items()):
                if rel not in listed:
                    report.problem(Kind.MANIFEST, shown, N_("does not list {rel}"), rel=rel)
                elif listed[rel] != digest:
                    report.problem(Kind.MANIFEST, shown, N_("lists {rel} with {found}, the catalog has {expected}"),
                                   digest, listed[rel], rel=rel)
            for rel in sorted(set(listed) - set(expected)):
                report.problem(Kind.MANIFEST, shown, N_("lists {rel}, which the catalog does not have"), rel=rel)


def _find_unexpected(ws: Workspace, known: set[str], purged: dict[str, int | None], report: VerifyReport) -> None:
    """Entries in the archive that the catalog does not know (planted, or left by a crash); symlinks are
    reported, never followed."""
    root = ws.archive.root
    for dirpath, dirs, files in os.walk(root):
        folder = Path(dirpath)
        depth = len(folder.relative_to(root).parts)
        for name in sorted(dirs + files):
            path = folder / name
            rel = ws.archive.relative(path)
            if path.is_symlink():
                report.problem(Kind.UNEXPECTED, rel, N_("a symlink (to {readlink!r}), never followed: planted"),
                               readlink=os.readlink(path))
            elif name in files and rel not in known and not (depth == 3 and name.startswith("manifest-")):
                if rel in purged:
                    report.problem(Kind.UNEXPECTED, rel, N_("purged (request {id}) but still in the archive: run "
                                                            "'archiver retention purge {id}' to finish"),
                                   id=purged[rel])
                elif name.startswith(TEMP_PREFIX):
                    report.problem(Kind.UNEXPECTED, rel, N_("a temp file left by an interrupted write"))
                else:
                    report.problem(Kind.UNEXPECTED, rel, N_("not in the catalog"))


def _receipt(ws: Workspace, report: VerifyReport) -> list[tuple[str, Head]]:
    """The centre's latest receipt for this station's log, as an anchor (checked against [central] key)."""
    with ws.catalog.reading() as session:
        kept = session.scalar(select(Receipt).where(Receipt.station == ws.cfg.station_id)
                              .order_by(Receipt.seq.desc()).limit(1))
    if kept is None:
        return []
    head = receipt_head(kept.receipt, ws.cfg.station_id, PublicKey.parse(ws.cfg.central.key) if ws.cfg.central.key
                        else None)
    if head is None or head != Head(kept.seq, kept.hash):
        report.problem(Kind.CUSTODY_ANCHOR, "receipts", N_("seq {seq}: the centre's receipt kept here does not "
                                                           "verify with central.key"), seq=kept.seq)
        return []
    return [(_("the centre's receipt"), head)]


def _check_custody(ws: Workspace, selected: list[Recording], everything: bool, heads: list[Head],
                   report: VerifyReport) -> None:
    """The log's chain and signatures; its tail against every anchor (the catalog's head, the signed heads
    on the backup targets, heads given with --head); an ingest event for every recording and, on a full
    verify, a recording for every ingest event (deleted evidence leaves its event behind)."""
    key = ws.station_key.public
    anchors: list[tuple[str, Head]] = [("the catalog", catalog_head(ws.catalog))]
    for target in ws.cfg.backup.targets:
        head, why = read_anchor(target, key) if target.is_dir() else (None, None)
        if why:
            report.problem(Kind.CUSTODY_ANCHOR, str(target / HEAD_ANCHOR),
                           N_("seq ?: the head on this target is {why}"), why=why)
        anchors.append((f"backup target {target}", head))
    anchors += [("the head given with --head", head) for head in heads]
    anchors += _receipt(ws, report)
    result = check_log(ws.custody.path, key, anchors)
    report.problems.extend(result.problems)
    report.custody_events = result.events
    report.anchors = [{"source": source, "seq": head.seq, "hash": head.hash} for source, head in anchors if head]
    for rec in selected:
        if rec.purged_at is not None and rec.sha256 not in result.purged:
            report.problem(Kind.CUSTODY_MISSING_EVENT, LOG_NAME,
                           N_("recording #{id} ({archive_path}) is marked purged, but no purge event in the log "
                              "says so: deleted evidence, hidden as a purge"), id=rec.id, archive_path=rec.archive_path)
        if rec.sha256 not in result.ingested:
            report.problem(Kind.CUSTODY_MISSING_EVENT, LOG_NAME,
                           N_("recording #{id} ({archive_path}) has no ingest event"), id=rec.id,
                           archive_path=rec.archive_path)
    if not everything:
        return
    catalogued = {rec.sha256 for rec in selected}  # every recording, when nothing narrowed the selection
    for sha256, seq in sorted(result.ingested.items(), key=lambda item: item[1]):
        if sha256 not in catalogued:
            report.problem(Kind.CUSTODY_ORPHAN_EVENT, LOG_NAME,
                           N_("seq {seq}: recording {sha256} was ingested, but the catalog has no such recording "
                              "(deleted evidence, or an ingest killed before it catalogued the file and never "
                              "rerun)"), seq=seq, sha256=sha256)
