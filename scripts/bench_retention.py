"""A year of footage for six recorders, kept with and without retention: a synthetic catalog (the files
themselves are not written: their sizes are), and the real plan, request, approval and purge code run at
the end of every month, with the clock set by ARCHIVER_NOW's library equivalent (`now` passed in).

    scripts/bench retention [--per-day N] [--gib-per-hour G] [--linked F] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from archiver.archive.workspace import open_workspace
from archiver.catalog import Case, CaseLink, Recording
from archiver.catalog.db import commit
from archiver.config import load_config
from archiver.retention import purge as lib

TZ = ZoneInfo("Asia/Shanghai")
ADMIN = {"user": "admin-li", "uid": 2001, "role": "admin"}
AUDITOR = {"user": "auditor-wang", "uid": 2002, "role": "auditor"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-day", type=int, default=3, help="recordings per recorder per day (30 min each)")
    parser.add_argument("--gib-per-hour", type=float, default=2.0, help="1080p body camera: about 2 GiB an hour")
    parser.add_argument("--linked", type=float, default=0.2, help="share of recordings that belong to a case")
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("BENCH_DIR", "/var/tmp/archiver-bench")))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="retention-", dir=args.dir))
    ws = open_workspace(load_config(None, data, system_file=Path("/nonexistent")), upgrade=True)
    rng = random.Random(2022)
    size = int(args.gib_per_hour * (1 << 30) / 2)
    start = datetime(2022, 1, 1, tzinfo=TZ)
    months = [datetime(2022 + (m // 12), m % 12 + 1, 1, tzinfo=TZ) for m in range(1, 25)]
    print("month     recordings  kept without retention  kept with retention  purged this month  purge s")
    day, total, serial = start, 0, 0
    for month_end in months:
        with ws.catalog.session() as session:
            while day < month_end:
                for recorder in range(6):
                    for k in range(args.per_day):
                        serial += 1
                        begin = day + timedelta(hours=8 + 3 * k, minutes=rng.randrange(60))
                        rec = Recording(sha256=f"{serial:064x}", size=size, media_type="video",
                                        original_path=f"REC{serial}.MP4", device_serial=f"TA{recorder:05d}",
                                        officer_no=f"JX{recorder:04d}", start=begin,
                                        end=begin + timedelta(minutes=30), duration_s=1800.0,
                                        archive_path=f"archive/{begin:%Y/%m/%d}/TA{recorder:05d}/REC{serial}.MP4",
                                        ingested_at=begin + timedelta(hours=10), verified_at=month_end, flags=[])
                        session.add(rec)
                        if rng.random() < args.linked:
                            session.flush()
                            case = Case(case_no=f"后叶罚〔{begin.year}〕{serial}号", title="sim",
                                        closed_at=begin + timedelta(days=60))
                            session.add(case)
                            session.flush()
                            session.add(CaseLink(case_id=case.id, recording_id=rec.id, kind="linked", by="sim"))
                        total += size
                day += timedelta(days=1)
            commit(session)
        with ws.catalog.session() as session:  # every copy was verified at the month's end
            session.query(Recording).filter(Recording.purged_at.is_(None)).update({"verified_at": month_end})
            commit(session)
        now = month_end
        started = time.monotonic()
        purged = 0
        try:
            request = lib.request_purge(ws.acting(ADMIN), now)
        except lib.RetentionError:
            request = None
        if request is not None:
            lib.approve(ws.acting(AUDITOR), request.id, now)
            purged = lib.purge(ws.acting(ADMIN), request.id, now)["bytes"]
        seconds = time.monotonic() - started
        with ws.catalog.reading() as session:
            from sqlalchemy import func, select

            kept = session.scalar(select(func.coalesce(func.sum(Recording.size), 0))
                                  .where(Recording.purged_at.is_(None)))
            count = session.scalar(select(func.count()).select_from(Recording))
        label = (month_end - timedelta(days=1)).strftime("%Y-%m")
        print(f"{label}  {count:10d}  {total / (1 << 40):18.2f} TiB  {kept / (1 << 40):15.2f} TiB  "
              f"{purged / (1 << 40):13.2f} TiB  {seconds:7.1f}")
    ws.close()


if __name__ == "__main__":
    main()
