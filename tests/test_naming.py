"""File-name parsing (pure)."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archiver.defaults import DEFAULT_NAME_PATTERN
from archiver.ingest.naming import parse_name

TZ = ZoneInfo("Asia/Shanghai")
PATTERNS = (re.compile(DEFAULT_NAME_PATTERN),)
FMT = "%Y%m%d%H%M%S"


def parse(name: str):
    return parse_name(name, PATTERNS, FMT, TZ)


def test_the_recorder_form():
    info = parse("RECORD/TA00716_JX0227_20170623093621.MOV")
    assert (info.serial, info.officer, info.parsed) == ("TA00716", "JX0227", True)
    assert info.start == datetime(2017, 6, 23, 9, 36, 21, tzinfo=TZ)
    assert info.start.isoformat() == "2017-06-23T09:36:21+08:00"


@pytest.mark.parametrize("name", ["VID_0001.MP4", "TA00716_JX0227.MP4", "TA00716_JX0227_2017062309.MP4",
                                  "", ".MP4", "TA00716 JX0227 20170623093621.MP4"])
def test_names_that_do_not_parse(name):
    info = parse(name)
    assert (info.serial, info.officer, info.start, info.parsed) == (None, None, None, False)


def test_impossible_time_keeps_the_fields_but_is_unparsed():
    info = parse("TA00716_JX0227_20171323093621.MP4")
    assert (info.serial, info.officer, info.start, info.parsed) == ("TA00716", "JX0227", None, False)


def test_placeholders_count_as_missing_and_suffixes_are_allowed():
    info = parse("99999_99999_20221103100000.WAV")
    assert (info.serial, info.officer, info.parsed) == (None, None, True)
    assert parse("TA00716_JX0227_20221103100000_0001.MP4").serial == "TA00716"
    assert parse("TA00716_JX0227_20221103100000").start == datetime(2022, 11, 3, 10, tzinfo=TZ)


def test_a_configured_pattern_is_used_in_order():
    vendor = re.compile(r"^(?P<start>\d{8}_\d{6})_(?P<serial>[A-Z0-9]+)$")
    info = parse_name("20221103_093621_DSJ01.mp4", (vendor, *PATTERNS), "%Y%m%d_%H%M%S", TZ)
    assert (info.serial, info.officer, info.start) == ("DSJ01", None, datetime(2022, 11, 3, 9, 36, 21, tzinfo=TZ))


@given(
    serial=st.from_regex(r"[A-Z]{2}[0-9]{5}", fullmatch=True),
    officer=st.from_regex(r"[A-Z]{2}[0-9]{4}", fullmatch=True),
    when=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
    ext=st.sampled_from(["MP4", "mov", "WAV", "JPG", "avi"]),
)
def test_round_trip(serial, officer, when, ext):
    when = when.replace(microsecond=0)
    info = parse(f"{serial}_{officer}_{when:%Y%m%d%H%M%S}.{ext}")
    assert (info.serial, info.officer, info.parsed) == (serial, officer, True)
    assert info.start == when.replace(tzinfo=TZ)


@given(st.text(max_size=80))
def test_any_name_parses_or_is_flagged_never_raises(name):
    info = parse(name)
    assert info.parsed or (info.start is None)
