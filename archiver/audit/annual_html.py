"""The year's figures as one self-contained page (inline CSS and SVG, no scripts), in the interface
language, printable on A4: recordings and hours per month, compliance per month, dock delays."""

from __future__ import annotations

from html import escape
from typing import Any

from archiver.cases.casefile import KINDS
from archiver.cases.times import span_text
from archiver.i18n import _, current

BAR = "#1f77b4"  # the colour of every bar (tests find the bars by it)
_CSS = """
@page { size: A4; margin: 14mm; }
body { font-family: "Noto Sans CJK SC", "WenQuanYi Zen Hei", "Microsoft YaHei", sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 16px; margin: 22px 0 6px; page-break-after: avoid; }
table { border-collapse: collapse; font-size: 12px; margin: 6px 0; page-break-inside: avoid; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
svg { border: 1px solid #ddd; background: #fafafa; page-break-inside: avoid; }
.figures td { text-align: left; }
.unit { font-size: 15px; } .signature { margin-top: 36px; font-size: 13px; white-space: pre-wrap; }
"""


def _chart(title: str, points: list[tuple[str, float | None]], chart_id: str) -> str:
    """A bar chart: one bar per point, heights in proportion to the values (the tallest fills the plot); a point
    with no value (a month with nothing to record) has no bar and reads "—"."""
    width, height, left, bottom = 720, 180, 40, 30
    top = max((v for _l, v in points if v is not None), default=0) or 1
    step = (width - left - 10) / max(1, len(points))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="{chart_id}" width="{width}" height="{height + bottom}" '
             f'role="img" aria-label="{escape(title)}">']
    for i, (label, value) in enumerate(points):
        if value is None:
            parts.append(f'<text class="none" x="{left + i * step + step * 0.5:.1f}" y="{height - 4}" font-size="11" '
                         f'text-anchor="middle">—</text>')
            parts.append(f'<text x="{left + i * step + step * 0.5:.1f}" y="{height + 14}" font-size="9" '
                         f'text-anchor="middle">{escape(label[-2:] if len(label) == 7 else label)}</text>')
            continue
        h = (height - 10) * value / top
        x = left + i * step + step * 0.15
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{height - h:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" '
                     f'fill="{BAR}" data-value="{value:g}"><title>{escape(label)}: {value:g}</title></rect>')
        parts.append(f'<text x="{x + step * 0.35:.1f}" y="{height + 14}" font-size="9" text-anchor="middle">'
                     f'{escape(label[-2:] if len(label) == 7 else label)}</text>')
    parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{height}" y2="{height}" stroke="#444"/>')
    parts.append(f'<text x="4" y="14" font-size="10">{top:g}</text></svg>')
    return _heading(title) + "".join(parts)


def _heading(text: str) -> str:
    return f"<h2>{escape(text)}</h2>"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def percent(rate: float | None) -> str:
    """A rate as the report shows it; "—" when there was nothing to count."""
    return "—" if rate is None else f"{rate:.1%}"


def _summary(data: dict[str, Any]) -> list[tuple[str, Any]]:
    """The figures at the head of the page, each with its label."""
    rate = data["compliance_rate"]
    delay = data["dock_delay_hours"]
    return [
        (_("Recorders in use"), data["recorders"]), (_("Recordings"), data["recordings"]),
        (_("Hours of video"), data["video_hours"]), (_("Hours of audio"), data["audio_hours"]),
        (_("Photos"), data["photos"]), (_("Cases"), data["cases"]), (_("Enforcement actions"), data["actions"]),
        (_("Actions that had to be recorded"), data["required_actions"]),
        (_("Of those, recorded without a gap"), data["compliant_actions"]),
        (_("Full-process recording rate"), percent(rate)),
        (_("Required actions with no footage at all"), len(data["unrecorded_actions"])),
        (_("Docked later than {hours} h after recording").format(hours=data["late_dock_hours"]), data["late_docks"]),
        (_("Median delay to docking"), span_text(delay["median"])),
        (_("95% docked within"), span_text(delay["p95"])),
        (_("Recordings not yet on every backup target"), data["backups"]["not_on_every_target"]),
        (_("Verify runs"), data["verify_runs"]), (_("Problems verify found"), data["verify_problems"]),
        (_("Retrievals"), sum(r["count"] for r in data["retrievals"])),
        (_("Holds placed"), data["holds_placed"]), (_("Recordings purged"), data["purged"]),
    ]


def render(data: dict[str, Any], title: str, unit: str = "") -> str:
    """The page; `unit` heads it and its signature line."""
    months = data["months"]
    summary = _summary(data)
    lang = "zh-CN" if current().startswith("zh") else "en"
    parts = [
        "<!DOCTYPE html>", f'<html lang="{lang}"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="unit">{escape(unit)}</p>' if unit else "",
        f'<p>{escape(data["since"][:10])} – {escape(data["until"][:10])}</p>',
        '<table class="figures">' + "".join(f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>"
                                            for k, v in summary) + "</table>",
        _chart(_("Recordings per month"), [(m["month"], m["recordings"]) for m in months], "recordings-per-month"),
        _chart(_("Hours of video per month"), [(m["month"], m["video_hours"]) for m in months], "hours-per-month"),
        _chart(_("Full-process recording rate per month (%; — : nothing to record)"),
               [(m["month"], None if m["compliance_rate"] is None else round(100 * m["compliance_rate"], 1))
                for m in months], "compliance-per-month"),
        _chart(_("Delay from recording to docking"),
               [(b["bin"], b["count"]) for b in data["dock_delay_hours"]["histogram"]], "dock-delay"),
        _heading(_("By kind of action")),
        _table([_("Kind"), _("Cases"), _("Enforcement actions"), _("Required actions"), _("Without a gap"),
                _("Rate")],
               [[_(KINDS[k["kind"]][1]), k["cases"], k["actions"], k["required_actions"], k["compliant_actions"],
                 percent(k["compliance_rate"])] for k in data["by_kind"]]),
        _heading(_("Per month")),
        _table([_("Month"), _("Recordings"), _("Hours of video"), _("Cases"), _("Required actions"),
                _("Without a gap"), _("Rate"), _("Late docks")],
               [[m["month"], m["recordings"], m["video_hours"], m["cases"], m["required_actions"],
                 m["compliant_actions"], percent(m["compliance_rate"]), m["late_docks"]] for m in months]),
        _heading(_("Per recorder")),
        _table([_("Recorder"), _("Recordings"), _("Hours of video"), _("Late docks")],
               [[k, v["recordings"], v["video_hours"], v["late_docks"]] for k, v in data["per_recorder"].items()]),
        _heading(_("Per officer")),
        _table([_("Officer"), _("Recordings"), _("Hours of video"), _("Late docks")],
               [[k, v["recordings"], v["video_hours"], v["late_docks"]] for k, v in data["per_officer"].items()]),
        _heading(_("Recording gaps")),
        _table([_("Case"), _("Stage"), _("From"), _("To")],
               [[g["case_no"], g["stage"], g["start"][:19].replace("T", " "), g["end"][:19].replace("T", " ")]
                for g in data["gaps"]]),
        _heading(_("Retrievals")),
        _table([_("User"), _("Reason"), _("Count")],
               [[r["user"], r["reason"], r["count"]] for r in data["retrievals"]]),
        '<p class="signature">' + escape(_("Unit: {unit}").format(unit=unit or "____________")) + "&emsp;"
        + escape(_("Prepared by: ____________  Reviewed by: ____________  Date: ____________")) + "</p>",
        "</body></html>",
    ]
    return "\n".join(parts)
