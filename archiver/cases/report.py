"""`cases report`: one self-contained HTML page per case for an auditor (no scripts, no network).

For each action: a timeline of its window with a bar per recording and every gap in red, then a
table of the recordings with their full SHA-256 and archive paths.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from html import escape

from archiver.cases.links import CaseCheck
from archiver.i18n import _, current

GAP_COLOUR = "#d62728"
_COLOURS = {"video": "#1f77b4", "audio": "#2ca02c", "photo": "#9467bd", "other": "#7f7f7f"}
_WIDTH, _LEFT, _RIGHT, _ROW = 960, 20, 940, 18

_CSS = f"""
body {{ font-family: "Noto Sans CJK SC", "WenQuanYi Zen Hei", "Microsoft YaHei", sans-serif; margin: 24px;
        color: #222; }}
h1 {{ font-size: 22px; margin-bottom: 4px; }} h2 {{ font-size: 17px; margin: 28px 0 6px; }}
.ok {{ color: #1a7f37; font-weight: bold; }} .bad {{ color: {GAP_COLOUR}; font-weight: bold; }}
table {{ border-collapse: collapse; font-size: 12px; margin-top: 8px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }}
code {{ font-size: 11px; word-break: break-all; }} .meta {{ color: #555; font-size: 13px; }}
svg {{ border: 1px solid #ddd; background: #fafafa; }} img.frames {{ height: 60px; }}
"""


def _t(value: datetime | None, tz: tzinfo) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def render_case(check: CaseCheck, tz: tzinfo, generated: datetime,
                pictures: dict[int, str | None] | None = None) -> str:
    """The page; `pictures`: per video recording, a data: URI of its frames, or None (ffmpeg could not
    read it: a note says so)."""
    pictures = pictures or {}
    case = check.case
    verdict = _("compliant") if check.compliant else _("NOT compliant: recording gaps")
    lang = "zh-CN" if current().startswith("zh") else "en"
    parts = [
        "<!DOCTYPE html>", f'<html lang="{lang}"><head><meta charset="utf-8">',
        f"<title>{escape(case.case_no)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(case.case_no)}</h1>",
        f'<div class="meta">{escape(case.title)}</div>',
        f'<p class="{"ok" if check.compliant else "bad"}" id="verdict">{escape(verdict)}</p>',
        '<div class="meta">{}</div>'.format(escape(_("Full-process recording check, generated {time} ({zone}).")
                                                 .format(time=_t(generated, tz), zone=tz))),
    ]
    for index, item in enumerate(check.actions, 1):
        action, cov = item.action, item.coverage
        status = (_("compliant") if item.compliant else _("{count} gap(s)").format(count=len(cov.gaps))) \
            if action.recording_required else _("recording not required")
        parts.append(f"<h2>{index}. {escape(action.stage)} · {_t(action.start, tz)} – {_t(action.end, tz)}</h2>")
        summary = _("officers {officers} · covered {covered:.0f} of {duration:.0f} s ({ratio:.1%})").format(
            officers=", ".join(item.officers) or "-", covered=cov.covered_s, duration=cov.duration_s, ratio=cov.ratio)
        parts.append(f'<div class="meta">{escape(summary)} · '
                     f'<span class="{"ok" if item.compliant else "bad"}">{escape(status)}</span></div>')
        parts.append(_timeline(item.recordings, action.start, action.end, cov.gaps, tz, index))
        parts.append(_table(item.recordings, tz, item.manual, pictures))
    if check.linked_only:
        parts.append("<h2>{}</h2>".format(escape(_("Linked by hand, outside every action window"))))
        parts.append(_table(check.linked_only, tz, {r.id for r in check.linked_only}, pictures))
    if check.unlinked:
        parts.append("<h2>{}</h2>".format(escape(_("Unlinked by hand (not counted)"))))
        parts.append(_table(check.unlinked, tz, set(), pictures))
    parts.append("</body></html>")
    return "\n".join(parts)


def _timeline(recordings: list, start: datetime, end: datetime, gaps, tz: tzinfo, index: int) -> str:
    """The window (shaded) on an axis wide enough for every linked recording; gaps in red."""
    times = [start, end] + [t for r in recordings for t in (r.start, r.end) if t is not None]
    lo, hi = min(times), max(times)
    total = max((hi - lo).total_seconds(), 1e-9)

    def x(when: datetime) -> float:
        return _LEFT + (when - lo).total_seconds() / total * (_RIGHT - _LEFT)

    rows = max(1, len(recordings))
    axis = 12 + _ROW * rows
    height = axis + 40
    body = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
            'role="img" aria-label="{}">'.format(escape(_("timeline of action {index}").format(index=index))),
            f'<rect x="{x(start):.1f}" y="2" width="{max(1.0, x(end) - x(start)):.1f}" height="{axis - 2}" '
            'fill="#e3ebf6"><title>{}</title></rect>'.format(escape(_("action window")))]
    for gap in gaps:
        left, width = x(gap.start), max(2.0, x(gap.end) - x(gap.start))
        tip = "<title>{}</title>".format(escape(_("gap {start} – {end}").format(start=_t(gap.start, tz),
                                                                                end=_t(gap.end, tz))))
        body.append(f'<rect x="{left:.1f}" y="2" width="{width:.1f}" height="{axis - 2}" fill="{GAP_COLOUR}" '
                    f'fill-opacity="0.18">{tip}</rect>')
        body.append(f'<rect class="gap" x="{left:.1f}" y="{axis + 1}" width="{width:.1f}" height="9" '
                    f'fill="{GAP_COLOUR}">{tip}</rect>')
    for row, rec in enumerate(recordings):
        if rec.start is None:
            continue
        y = 8 + row * _ROW
        colour = _COLOURS.get(rec.media_type, _COLOURS["other"])
        kind = _(rec.media_type)
        label = escape(f"#{rec.id} {kind} {_t(rec.start, tz)} – {_t(rec.end, tz)}")
        if rec.media_type == "photo" or not rec.end or rec.end <= rec.start:
            body.append(f'<circle cx="{x(rec.start):.1f}" cy="{y + 6}" r="5" fill="{colour}"><title>{label}</title>'
                        "</circle>")
        else:
            body.append(f'<rect class="recording" x="{x(rec.start):.1f}" y="{y}" '
                        f'width="{max(1.0, x(rec.end) - x(rec.start)):.1f}" height="12" fill="{colour}">'
                        f"<title>{label}</title></rect>")
    body.append(f'<line x1="{_LEFT}" x2="{_RIGHT}" y1="{axis}" y2="{axis}" stroke="#444"/>')
    anchor = "end" if x(start) > _WIDTH / 2 else "start"
    body.append(f'<text x="{x(start):.1f}" y="{axis + 24}" font-size="11" text-anchor="{anchor}">▲ {_t(start, tz)}'
                "</text>")
    body.append(f'<text x="{x(end):.1f}" y="{axis + 36}" font-size="11" text-anchor="end">{_t(end, tz)} ▲</text>')
    body.append("</svg>")
    return "".join(body)


def _table(recordings: list, tz: tzinfo, manual: set[int], pictures: dict[int, str | None]) -> str:
    if not recordings:
        return '<p class="bad">{}</p>'.format(escape(_("No recordings.")))
    headers = ("#", _("type"), _("officer"), _("device"), _("start"), _("end"), _("link"), "SHA-256", _("archive path"))
    rows = ["<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr>"]
    for r in recordings:
        kind, link = _(r.media_type), _("manual") if r.id in manual else _("automatic")
        rows.append(
            f"<tr><td>{r.id}</td><td>{escape(kind)}</td><td>{escape(r.officer_no or '-')}</td>"
            f"<td>{escape(r.device_serial or '-')}</td><td>{_t(r.start, tz)}</td><td>{_t(r.end, tz)}</td>"
            f"<td>{escape(link)}</td><td><code>{r.sha256}</code></td>"
            f"<td><code>{escape(r.archive_path)}</code></td></tr>")
        if r.id in pictures:
            picture = pictures[r.id]
            shown = (f'<img class="frames" alt="#{r.id}" src="{picture}">' if picture else
                     '<span class="bad">{}</span>'.format(escape(_("no pictures: ffmpeg cannot read this file"))))
            rows.append(f'<tr><td></td><td colspan="8">{shown}</td></tr>')
    rows.append("</table>")
    return "".join(rows)
