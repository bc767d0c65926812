"""The same catalog on SQLite and on a real PostgreSQL server (started here): the migrations build exactly
the models, and imports, links, the full-process check and lookups give the same answers on both."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pg_util import new_database, postgres_server

from archiver.cases.casefile import ActionRecord, CaseRecord
from archiver.cases.links import (
    cases_for_recordings,
    check_cases,
    import_cases,
    list_cases,
    recording_ids_for_case,
    remove_case,
    resolve_case_no,
    set_manual_link,
)
from archiver.catalog import Catalog, Hold, PurgeRequest, Recording
from archiver.catalog.db import commit, head_revision
from archiver.catalog.lookup import RecordingFilter, find_recording, list_recordings
from archiver.catalog.models import Base
from archiver.config import LinkingConfig

TZ = ZoneInfo("Asia/Shanghai")
LINKING = LinkingConfig(clock_tolerance_s=30, max_gap_s=3)


@pytest.fixture(scope="module")
def postgres():
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request, tmp_path: Path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        url = new_database(request.getfixturevalue("postgres"))
    catalog = Catalog(url)
    catalog.upgrade()
    yield catalog
    catalog.close()


def test_migrations_build_exactly_the_models(catalog: Catalog):
    assert catalog.revision() == head_revision()
    with catalog.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def _recordings(catalog: Catalog) -> list[Recording]:
    """Two officers' footage of 3 November 2022: JX0227 09:00-09:10 and 09:12-09:20, JX0300 09:05-09:15."""
    spans = [("JX0227", "TA00716", 0, 10), ("JX0227", "TA00716", 12, 20), ("JX0300", "TB00002", 5, 15)]
    base = datetime(2022, 11, 3, 9, tzinfo=TZ)
    with catalog.session() as session:
        rows = []
        for i, (officer, device, start, end) in enumerate(spans, 1):
            rec = Recording(sha256=f"{i:x}" * 64, size=1000 * i, media_type="video", original_path=f"{i}.MP4",
                            device_serial=device, officer_no=officer, start=base + timedelta(minutes=start),
                            end=base + timedelta(minutes=end), duration_s=60.0 * (end - start),
                            archive_path=f"archive/2022/11/03/{device}/{i}.MP4", verified_at=base, flags=["x"],
                            media={"format": "mp4", "streams": []})
            session.add(rec)
            rows.append(rec)
        commit(session)
        return rows


def test_imports_links_checks_and_lookups_answer_alike(catalog: Catalog):
    recs = _recordings(catalog)
    base = datetime(2022, 11, 3, 9, tzinfo=TZ)
    records = [
        CaseRecord("叶城罚〔2023〕31号", "占道经营", [
            ActionRecord("调查取证", ("JX0227",), base, base + timedelta(minutes=20), True),
            ActionRecord("送达", ("JX0300",), base + timedelta(minutes=5), base + timedelta(minutes=15), True)],
            retention_class="case_10y", closed_at=base + timedelta(days=30)),
        CaseRecord("叶城罚〔2023〕32号", "other", [
            ActionRecord("执行", ("JX9999",), base, base + timedelta(minutes=1), False)]),
    ]
    result = import_cases(catalog, records, LINKING)
    assert (result.cases_created, result.actions_added, result.links) == (2, 3, 3)
    again = import_cases(catalog, records, LINKING)  # again: updates, never duplicates
    assert (again.cases_created, again.cases_updated, again.cases_unchanged, again.actions_added) == (0, 0, 2, 0)
    (checked,) = check_cases(catalog, ["叶城罚〔2023〕31号"], LINKING)
    first, second = checked.actions
    assert [(g.start, g.end) for g in first.coverage.gaps] == [(base + timedelta(minutes=10),
                                                                base + timedelta(minutes=12))]
    assert second.compliant and not checked.compliant
    assert resolve_case_no(catalog, "叶城罚[2023]31号") == "叶城罚〔2023〕31号"
    assert sorted(recording_ids_for_case(catalog, "叶城罚〔2023〕31号", LINKING)) == [r.id for r in recs]
    assert cases_for_recordings(catalog, [r.id for r in recs]) == {r.id: ["叶城罚〔2023〕31号"] for r in recs}
    set_manual_link(catalog, "叶城罚〔2023〕32号", [recs[2].id], "linked", "legal-li")
    assert cases_for_recordings(catalog, [recs[2].id]) == {recs[2].id: ["叶城罚〔2023〕31号", "叶城罚〔2023〕32号"]}
    assert [c["case_no"] for c in list_cases(catalog, "占道")] == ["叶城罚〔2023〕31号"]
    assert [c["case_no"] for c in list_cases(catalog, officer="JX0300")] == ["叶城罚〔2023〕31号"]
    found = list_recordings(catalog, RecordingFilter(officer="JX0227", since=base + timedelta(minutes=11)))
    assert [r.id for r in found] == [recs[1].id]
    assert find_recording(catalog, recs[2].sha256[:10]).id == recs[2].id
    assert find_recording(catalog, recs[2].sha256[:10]).start == recs[2].start  # times come back aware, equal
    with catalog.session() as session:
        session.add(Hold(recording_id=recs[0].id, reason="复议", placed_by="legal-li", placed_at=base))
        session.add(PurgeRequest(requested_by="admin", requested_at=base, items=[{"id": 1}], bytes=1,
                                 state="requested"))
        commit(session)
    number, actions, linked = remove_case(catalog, "叶城罚〔2023〕32号")
    assert (number, actions, linked) == ("叶城罚〔2023〕32号", 1, [recs[2].id])
