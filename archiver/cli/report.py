"""`report year|period`: the rule-of-law report's figures, as text, JSON, CSV tables or one HTML page."""

from __future__ import annotations

from pathlib import Path

import click

from archiver.audit.annual_html import percent
from archiver.cases.casefile import KINDS
from archiver.cases.times import span_text
from archiver.cli import App
from archiver.cli.localized import Group
from archiver.cli.output import echo_fields, echo_json, json_option
from archiver.fs import make_dirs, relative_name, write_atomic
from archiver.i18n import _


@click.group(cls=Group)
def report() -> None:
    """The year at a glance: recorders, recordings, cases, the full-process recording rate, docking
    discipline, backups, verify runs and the custody log, per year and month. These are the figures of
    the yearly rule-of-law report (法治政府建设工作报告)."""


def _outputs(f):
    f = click.option("--html", "html_file", type=click.Path(path_type=Path, dir_okay=False),
                     help="Also write one self-contained HTML page (prints on A4).")(f)
    f = click.option("--csv", "csv_dir", type=click.Path(path_type=Path, file_okay=False),
                     help="Also write one CSV table per file into this folder (UTF-8 with BOM, for Excel).")(f)
    return json_option("Print every figure as one JSON object.")(f)


@report.command()
@click.argument("year", type=click.IntRange(2000, 2100))
@_outputs
@click.pass_obj
def year(app: App, year: int, html_file: Path | None, csv_dir: Path | None, as_json: bool) -> None:
    """The figures of one calendar YEAR, in the configured time zone."""
    _report(app, "report year", {"year": year}, html_file, csv_dir, as_json)


@report.command()
@click.option("--since", required=True, metavar="TIME", help="From this time (ISO 8601, or a date).")
@click.option("--until", required=True, metavar="TIME", help="Up to this time, not included.")
@_outputs
@click.pass_obj
def period(app: App, since: str, until: str, html_file: Path | None, csv_dir: Path | None, as_json: bool) -> None:
    """The figures of any period [--since, --until)."""
    _report(app, "report period", {"since": since, "until": until}, html_file, csv_dir, as_json)


def _report(app: App, command: str, args: dict, html_file: Path | None, csv_dir: Path | None,
            as_json: bool) -> None:
    done, _files = app.call(command, {**args, "html": html_file is not None, "csv": csv_dir is not None})
    data, title = done["figures"], done["title"]
    if html_file is not None:
        write_atomic(html_file.absolute(), done["html"].encode(), mode=0o644)
    if csv_dir is not None:
        where = csv_dir.absolute()
        make_dirs(where)
        for name, text in done["csv"].items():  # names the operation chose: plain file names, checked
            write_atomic(where / relative_name(name, inside=False), text.encode(), mode=0o644)
    if as_json:
        echo_json(data)
        return
    rate = data["compliance_rate"]
    click.echo(title)
    echo_fields([
        (_("recorders"), str(data["recorders"])),
        (_("recordings"), _("{count}: {video} h of video, {audio} h of audio, {photos} photo(s)").format(
            count=data["recordings"], video=data["video_hours"], audio=data["audio_hours"], photos=data["photos"])),
        (_("cases"), _("{cases}, {actions} action(s), {required} to be recorded, {compliant} without a gap "
                       "({rate})").format(cases=data["cases"], actions=data["actions"],
                                          required=data["required_actions"], compliant=data["compliant_actions"],
                                          rate=percent(rate))),
        *[(_(KINDS[k["kind"]][1]), _("{cases} case(s), {actions} action(s), {required} to be recorded, {compliant} "
                                     "without a gap ({rate})").format(
            cases=k["cases"], actions=k["actions"], required=k["required_actions"], compliant=k["compliant_actions"],
            rate=percent(k["compliance_rate"]))) for k in data["by_kind"] if k["actions"]],
        (_("docking"), _("median {median}, 95% within {p95}; {late} later than {hours} h").format(
            median=span_text(data["dock_delay_hours"]["median"]), p95=span_text(data["dock_delay_hours"]["p95"]),
            late=data["late_docks"], hours=f'{data["late_dock_hours"]:g}')),
        (_("backups"), _("{count} recording(s) not yet on every target").format(
            count=data["backups"]["not_on_every_target"])),
        (_("verify"), _("{runs} run(s), {problems} problem(s)").format(runs=data["verify_runs"],
                                                                        problems=data["verify_problems"])),
    ])
