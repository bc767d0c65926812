"""The time retention and capacity reckon with: now, unless ARCHIVER_NOW (ISO 8601, tests only) says
otherwise, so a test can step a station through years without waiting for them."""

from __future__ import annotations

import os
from datetime import UTC, datetime


def now() -> datetime:
    text = os.environ.get("ARCHIVER_NOW")
    if not text:
        return datetime.now(UTC)
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)
