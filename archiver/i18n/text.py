"""Text measured as a terminal shows it: a Chinese character takes two columns, a Latin letter one."""

from __future__ import annotations

import functools
import re
import unicodedata

_WIDE = "\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6"
_OPEN = "（《「『〔【“‘"
_CLOSE = "，。、；：！？）》」』〕】”’"
# Where a line may break: before a wide character or a run of narrow ones, keeping opening brackets with
# what follows them and closing punctuation with what precedes it (no line starts with "，" or ends with "（").


@functools.cache
def _pieces() -> re.Pattern[str]:  # compiled on first use: a lookup that prints no help never needs it
    return re.compile(f"[{_OPEN}]*(?:[{_WIDE}][{_CLOSE}]*|[^{_WIDE}]+[{_CLOSE}]*)|[{_OPEN}]+")


def cells(text: str) -> int:
    """Columns `text` takes on a terminal."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in "WF" else 1
    return width


def break_points(chunk: str) -> list[str]:
    """`chunk` cut where a line may break: between Chinese characters, never inside a Latin word."""
    return _pieces().findall(chunk) or [chunk]


def shorten_middle(text: str, width: int) -> str:
    """`text` in at most `width` columns, its middle replaced by "…": a path keeps its start and its file name."""
    if cells(text) <= width:
        return text
    if width < 2:
        return "…"[:width]
    tail_budget = (width - 1) * 2 // 3
    start = head(text, width - 1 - tail_budget)
    tail = head(text[::-1], width - 1 - cells(start))[::-1]
    return f"{start}…{tail}"


def head(text: str, width: int) -> str:
    """The start of `text` that fits in `width` columns."""
    used = 0
    for i, char in enumerate(text):
        used += cells(char)
        if used > width:
            return text[:i]
    return text
