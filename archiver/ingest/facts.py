"""What an `ingest` custody event says about a recording beyond its hash, so the event alone (signed)
is enough for a central catalog: officer, start, end, duration and media type. Events written before
these facts were added lack them; a sync then ships the station catalog's row beside the event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from archiver.catalog import Recording

FACT_KEYS = ("officer", "start", "end", "duration_s", "media_type")
MEDIA_TYPES = ("video", "audio", "photo", "other")


def signed_facts(rec: Recording) -> dict[str, Any]:
    """The facts of `rec`, as they go into its ingest event."""
    return {"officer": rec.officer_no, "start": _iso(rec.start), "end": _iso(rec.end),
            "duration_s": rec.duration_s, "media_type": rec.media_type}


def has_facts(details: dict[str, Any]) -> bool:
    return all(key in details for key in FACT_KEYS)


def read_facts(facts: dict[str, Any]) -> dict[str, Any]:
    """Recording fields from facts as `signed_facts` wrote them; anything malformed is left out."""
    def when(key: str) -> datetime | None:
        value = facts.get(key)
        try:
            parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            return None
        return parsed if parsed is not None and parsed.tzinfo is not None else None

    duration = facts.get("duration_s")
    officer, media_type = facts.get("officer"), facts.get("media_type")
    return {"officer_no": officer if isinstance(officer, str) and 0 < len(officer) <= 64 else None,
            "start": when("start"), "end": when("end"),
            "duration_s": float(duration) if isinstance(duration, (int, float)) else None,
            "media_type": media_type if media_type in MEDIA_TYPES else "other"}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
