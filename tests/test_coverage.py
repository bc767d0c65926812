"""The interval logic of the full-process check, against an independent second-by-second reference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.cases.coverage import Span, coverage, overlaps, union

BASE = datetime(2022, 11, 3, 23, 50, tzinfo=ZoneInfo("Asia/Shanghai"))  # windows here cross midnight


def at(seconds: int, base: datetime = BASE) -> datetime:
    return base + timedelta(seconds=seconds)


def span(a: int, b: int) -> Span:
    return Span(at(a), at(b))


def reference(window: tuple[int, int], spans: list[tuple[int, int]], max_gap: int):
    """Covered seconds and gaps by looking at every second of the window."""
    covered = [any(a <= t < b for a, b in spans) for t in range(window[0], window[1])]
    gaps, run_start = [], None
    for offset, is_covered in enumerate(covered + [True]):
        t = window[0] + offset
        if not is_covered and run_start is None:
            run_start = t
        elif is_covered and run_start is not None:
            if t - run_start > max_gap:
                gaps.append((run_start, t))
            run_start = None
    return sum(covered), gaps


intervals = st.tuples(st.integers(-200, 1200), st.integers(0, 400)).map(lambda t: (t[0], t[0] + t[1]))


@settings(max_examples=400)
@given(window=intervals, spans=st.lists(intervals, max_size=12), max_gap=st.integers(0, 30))
def test_matches_the_second_by_second_reference(window, spans, max_gap):
    result = coverage(span(*window), [span(a, b) for a, b in spans], max_gap)
    covered, gaps = reference(window, spans, max_gap)
    assert result.covered_s == covered
    assert [(g.start, g.end) for g in result.gaps] == [(at(a), at(b)) for a, b in gaps]
    assert 0.0 <= result.ratio <= 1.0
    if window[1] > window[0]:
        assert result.ratio == pytest.approx(covered / (window[1] - window[0]))


@given(spans=st.lists(intervals, max_size=15))
def test_union_is_sorted_disjoint_and_keeps_every_second(spans):
    merged = union(span(a, b) for a, b in spans)
    assert all(x.end < y.start for x, y in zip(merged, merged[1:], strict=False))
    for a, b in spans:
        assert any(m.start <= at(a) and at(b) <= m.end for m in merged)
    assert union(merged) == merged


def test_overlapping_nested_adjacent_and_outside_spans():
    window = span(0, 100)
    result = coverage(window, [span(0, 30), span(10, 20), span(30, 50), span(-50, -10), span(120, 150)], 3)
    assert result.covered_s == 50  # nested counted once, adjacent joined, outside ignored
    assert [(g.start, g.end) for g in result.gaps] == [(at(50), at(100))]


def test_gap_exactly_at_the_limit_is_allowed_and_one_more_second_is_not():
    window = span(0, 20)
    assert coverage(window, [span(0, 10), span(13, 20)], 3).gaps == ()
    assert len(coverage(window, [span(0, 10), span(14, 20)], 3).gaps) == 1


def test_zero_durations():
    assert coverage(span(0, 10), [span(5, 5)], 3).covered_s == 0  # a photo is an instant, not coverage
    empty = coverage(span(7, 7), [], 3)
    assert (empty.covered_s, empty.gaps, empty.ratio) == (0, (), 1.0)


def test_window_crossing_midnight_and_time_zones_compare_instants():
    start = datetime(2022, 11, 3, 23, 59, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    window = Span(start, start + timedelta(minutes=2))
    # the same instants written in UTC and in another zone
    utc = Span(datetime(2022, 11, 3, 15, 59, 30, tzinfo=UTC), datetime(2022, 11, 3, 16, 1, 0, tzinfo=UTC))
    result = coverage(window, [utc], 3)
    assert result.covered_s == 90
    assert [(g.start, g.end) for g in result.gaps] == [(start, start + timedelta(seconds=30))]
    tokyo = utc.start.astimezone(ZoneInfo("Asia/Tokyo")), utc.end.astimezone(ZoneInfo("Asia/Tokyo"))
    assert coverage(window, [Span(*tokyo)], 3) == result


@given(s=intervals, w=intervals, tolerance=st.integers(0, 120))
def test_overlap_with_tolerance(s, w, tolerance):
    result = overlaps(span(*s), span(*w), tolerance)
    assert result == (s[0] <= w[1] + tolerance and s[1] >= w[0] - tolerance)
    if overlaps(span(*s), span(*w), 0):
        assert result  # more tolerance never loses a link


def test_tolerance_boundaries():
    window = span(100, 200)
    assert overlaps(span(0, 70), window, 30)  # ends exactly 30 s before the window
    assert not overlaps(span(0, 69), window, 30)
    assert overlaps(span(230, 300), window, 30) and not overlaps(span(231, 300), window, 30)


def test_bad_spans_are_refused():
    with pytest.raises(ValueError):
        coverage(span(10, 0), [], 3)
    with pytest.raises(ValueError):
        union([span(5, 1)])
