"""How long the archive disk lasts: free space, the average daily growth over the last 30 days, the days
until full at that rate, and what retention will free in that time."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from archiver.archive import datadir
from archiver.archive.workspace import Workspace
from archiver.catalog import Recording
from archiver.retention.plan import make_plan

WINDOW_DAYS = 30


def free_bytes(ws: Workspace) -> int:
    return datadir.free_bytes(ws.archive.root)


def low_space(ws: Workspace) -> bool:
    """Below capacity.min_free: cards are not cleared, so footage stays on the recorder."""
    return free_bytes(ws) < ws.cfg.capacity.min_free


def capacity(ws: Workspace, now: datetime) -> dict[str, Any]:
    free = free_bytes(ws)
    with ws.catalog.reading() as session:
        added = session.scalar(select(func.coalesce(func.sum(Recording.size), 0))
                               .where(Recording.ingested_at >= now - timedelta(days=WINDOW_DAYS))) or 0
    daily = int(added) // WINDOW_DAYS
    days = None if daily == 0 else free // daily
    freed = None
    if days is not None:
        plan = make_plan(ws, now)
        horizon = (now.astimezone(ws.cfg.timezone).date() + timedelta(days=min(days, 36500))).isoformat()
        freed = sum(i["bytes"] for i in plan.due_now) + sum(i["bytes"] for i in plan.upcoming if i["due"] <= horizon)
    return {"free_bytes": free, "daily_growth_bytes": daily, "days_until_full": days,
            "retention_frees_bytes": freed, "warn_days": ws.cfg.capacity.warn_days,
            "min_free_bytes": ws.cfg.capacity.min_free, "low": days is not None and days < ws.cfg.capacity.warn_days,
            "reserve": os.path.lexists(ws.cfg.data_dir / datadir.RESERVE_NAME)}
