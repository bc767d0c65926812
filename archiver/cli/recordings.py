"""`archiver recordings list|show|get`."""

from __future__ import annotations

from pathlib import Path

import click

from archiver.cli import App
from archiver.cli.files import receive_into
from archiver.cli.localized import Group
from archiver.cli.output import (
    Column,
    echo_fields,
    echo_json,
    human_bytes,
    json_option,
    local_time,
    print_table,
    seconds,
)
from archiver.i18n import N_, _
from archiver.i18n.words import word, words


@click.group(cls=Group)
def recordings() -> None:
    """Look up archived recordings."""


@recordings.command("list")
@click.option("--device", metavar="SERIAL", help="Only this device.")
@click.option("--officer", metavar="NO", help="Only this officer (执法证号, however written).")
@click.option("--since", metavar="TIME", help="Only recordings running at or after TIME (2022-11-03, "
              "2022年11月3日9时30分, ISO 8601).")
@click.option("--until", metavar="TIME", help="Only recordings starting at or before TIME (as --since).")
@click.option("--case", "case_no", metavar="CASE_NO", help="Only recordings linked to this case.")
@json_option("Print a JSON array.")
@click.pass_obj
def list_(app: App, device, officer, since, until, case_no, as_json: bool) -> None:
    """List recordings, oldest first. Times without an offset are in the configured timezone."""
    rows, _files = app.call("recordings list", {"device": device, "officer": officer, "since": since,
                                                "until": until, "case_no": case_no})
    if as_json:
        echo_json(rows)
        return
    print_table([Column(_("ID")), Column(_("Start")), Column(_("Device")), Column(_("Officer")),
                 Column(_("Type"), optional=True), Column(_("Duration"), optional=True),
                 Column(_("Size"), optional=True), Column("SHA-256", prefix=True), Column(_("Flags"), wrap=True),
                 Column(_("Original path"), shorten=True)],
                [[str(r["id"]), local_time(r["start"]), r["device_serial"] or "-", r["officer_no"] or "-",
                  word(r["media_type"]), seconds(r["duration_s"]), human_bytes(r["size"]), r["sha256"][:12],
                  words(r["flags"], "、"), repr(r["original_path"])[1:-1]]
                 for r in rows])
    click.echo(_("{count} recording(s)").format(count=len(rows)))


@recordings.command()
@click.argument("ref")
@json_option("Print one JSON object.")
@click.pass_obj
def show(app: App, ref: str, as_json: bool) -> None:
    """Show one recording. REF is its id or a sha256 prefix of 8 or more hex digits."""
    data, _files = app.call("recordings show", {"ref": ref})
    if as_json:
        echo_json(data)
        return
    data["media_type"] = word(data["media_type"])
    data["flags"] = [word(f) for f in data["flags"]]
    for key in TIMES:
        data[key] = local_time(data[key]) if data.get(key) else None
    rows = [(_(FIELDS.get(key, key)), "-" if value in (None, []) else repr(value)[1:-1] if isinstance(value, str)
             else "、".join(value) if isinstance(value, list) else str(value))
            for key, value in data.items() if key not in ("media", "sightings")]
    media = data["media"] or {}
    if media:
        rows.append((_("media"), f"{media.get('format')}, " + "; ".join(
            f"{word(s.get('codec_type'))} {s.get('codec_name')}" for s in media.get("streams", []))))
    rows += [(_("seen"), _("{seen_at} {source} / {original_path!r} (run {ingest_run})").format(
        **{**s, "seen_at": local_time(s["seen_at"])})) for s in data["sightings"]]
    echo_fields(rows)


TIMES = ("start", "end", "ingested_at", "verified_at")
# How `recordings show` labels the fields of the JSON form.
FIELDS = {"id": N_("id"), "sha256": N_("sha256"), "sm3": N_("sm3"), "size": N_("size (bytes)"),
          "media_type": N_("media type"), "original_path": N_("original path"), "device_serial": N_("device"),
          "officer_no": N_("officer"), "start": N_("start"), "end": N_("end"), "duration_s": N_("duration (s)"),
          "archive_path": N_("archive path"), "ingested_at": N_("ingested at"), "verified_at": N_("verified at"),
          "flags": N_("flags"), "cases": N_("cases"), "original_path_b64": N_("original path (base64)")}


@recordings.command()
@click.argument("refs", nargs=-1, metavar="[REF ...]")
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@click.option("--reason", required=True, help="Why you retrieve it (调阅事由): kept in the custody log.")
@click.option("--case", "case_no", metavar="CASE_NO", help="Retrieve every recording linked to this case.")
@click.pass_obj
def get(app: App, refs: tuple[str, ...], dest: Path, reason: str, case_no: str | None) -> None:
    """Retrieve recordings (ids or sha256 prefixes, or --case) into the folder DEST (made if missing),
    each under its own file name; every copy is checked against the catalog's SHA-256. Each retrieval,
    with its reason and destination, is a custody event. A file already in DEST is kept if identical."""
    where = dest.absolute()
    handed, files = app.call("recordings get", {"refs": list(refs), "reason": reason, "case_no": case_no,
                                                "dest": str(where)})
    for rec, (_item, _sha256) in zip(handed, receive_into(where, files), strict=False):
        click.echo(_("#{id} {name}: {size}, sha256 {sha256} checked").format(
                     id=rec["id"], name=rec["name"], size=human_bytes(rec["size"]), sha256=rec["sha256"]))
    click.echo(_("retrieved {count} recording(s), {total}, into {dest}").format(
                 count=len(handed), total=human_bytes(sum(r["size"] for r in handed)), dest=dest))


@recordings.command()
@click.argument("ref")
@click.argument("retention_class", metavar="CLASS")
@click.option("--reason", required=True, help="Why this class: kept in the custody log.")
@click.pass_obj
def classify(app: App, ref: str, retention_class: str, reason: str) -> None:
    """Set a recording's retention class (one of retention.classes). The longest period that applies
    still wins; `invalid` (a file ingested by mistake) is refused on a recording linked to a case or held."""
    done, _files = app.call("recordings classify", {"ref": ref, "retention_class": retention_class,
                                                    "reason": reason})
    click.echo(_("recording #{id}: class {name}").format(id=done["id"], name=word(done["class"])))


@recordings.command("set-time")
@click.argument("ref")
@click.argument("start")
@click.option("--reason", required=True, help="Where the time comes from: kept in the custody log.")
@click.pass_obj
def set_time(app: App, ref: str, start: str, reason: str) -> None:
    """Give a recording whose file name carries no time (a 录音笔's 录音001.MP3) its START, e.g.
    '2022-03-15 09:02:00' or 2022年3月15日9时2分 (in the configured timezone). Its end follows from its
    duration, and it then covers case steps like any recording. The file's name and bytes stay as they
    are; who set the time, from what and why is a custody event. A time read from a file's name is refused."""
    done, _files = app.call("recordings set-time", {"ref": ref, "start": start, "reason": reason})
    click.echo(_("recording #{id}: starts {start}, ends {end}; cases {cases}").format(
        id=done["id"], start=local_time(done["start"]), end=local_time(done["end"]),
        cases=", ".join(done["cases"]) or "-"))
