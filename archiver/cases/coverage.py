"""Full-process recording coverage: which parts of an action's window are recorded. Pure: no I/O.

Times are aware datetimes; all arithmetic is on absolute instants, so windows crossing midnight
or spans given in different time zones need no special handling.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Span:
    start: datetime
    end: datetime  # == start for an instant (a photo)


@dataclass(frozen=True)
class Coverage:
    window: Span
    covered_s: float  # seconds of the window inside the union of the spans
    gaps: tuple[Span, ...]  # uncovered stretches longer than the allowed gap, in order

    @property
    def duration_s(self) -> float:
        return (self.window.end - self.window.start).total_seconds()

    @property
    def ratio(self) -> float:
        return 1.0 if self.duration_s <= 0 else min(1.0, self.covered_s / self.duration_s)


def overlaps(span: Span, window: Span, tolerance_s: float = 0.0) -> bool:
    """Whether a recording belongs to an action window, allowing `tolerance_s` of clock drift."""
    slack = timedelta(seconds=tolerance_s)
    return span.start <= window.end + slack and span.end >= window.start - slack


def union(spans: Iterable[Span]) -> list[Span]:
    """Merge spans into disjoint, sorted spans (touching spans merge)."""
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if span.end < span.start:
            raise ValueError(f"span ends before it starts: {span}")
        if merged and span.start <= merged[-1].end:
            if span.end > merged[-1].end:
                merged[-1] = Span(merged[-1].start, span.end)
        else:
            merged.append(span)
    return merged


def coverage(window: Span, spans: Iterable[Span], max_gap_s: float) -> Coverage:
    """Covered seconds of `window` and every uncovered stretch longer than `max_gap_s`."""
    if window.end < window.start:
        raise ValueError(f"window ends before it starts: {window}")
    clipped = [Span(max(s.start, window.start), min(s.end, window.end))
               for s in spans if s.end > window.start and s.start < window.end and s.end > s.start]
    covered = union(clipped)
    covered_s = sum((s.end - s.start).total_seconds() for s in covered)
    holes: list[Span] = []
    cursor = window.start
    for span in covered:
        if span.start > cursor:
            holes.append(Span(cursor, span.start))
        cursor = max(cursor, span.end)
    if cursor < window.end:
        holes.append(Span(cursor, window.end))
    gaps = tuple(h for h in holes if (h.end - h.start).total_seconds() > max_gap_s)
    return Coverage(window, covered_s, gaps)
