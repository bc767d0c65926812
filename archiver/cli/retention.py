"""Retention: `retention plan|requests|purge|approve`, and legal holds (`hold add|remove|list`)."""

from __future__ import annotations

import click

from archiver.cli import App
from archiver.cli.localized import Group
from archiver.cli.output import Column, echo_json, human_bytes, json_option, local_time, print_table
from archiver.i18n import N_, _
from archiver.i18n.words import word

# How the plan's reasons, a request's states and a purge's skips read (JSON keeps the codes).
REASONS = {"held": N_("held"), "not_backed_up": N_("not on every backup target"),
           "not_verified": N_("not verified lately")}
WORDS = (N_("requested"), N_("approved"), N_("purging"), N_("done"), N_("gone"), N_("no longer due"))


@click.group(cls=Group)
def retention() -> None:
    """How long footage is kept: what is due for purging, and the two-person purge
    (requested by an admin, approved by a different person with the auditor or legal role)."""


@retention.command()
@json_option("Print one JSON object: due_now, upcoming, blocked, classes.")
@click.pass_obj
def plan(app: App, as_json: bool) -> None:
    """What is due for purging today and what becomes due later, per class with bytes; and what is past
    its date but held back (held, not on every backup target, not verified lately)."""
    result, _files = app.call("retention plan")
    if as_json:
        echo_json(result)
        return
    print_table([Column(_("Class")), Column(_("Due now")), Column(_("Bytes")), Column(_("Later")),
                 Column(_("Bytes"))],
                [[word(name), str(c["due_now"]), human_bytes(c["due_now_bytes"]), str(c["upcoming"]),
                  human_bytes(c["upcoming_bytes"])] for name, c in result["classes"].items()])
    months: dict[str, list[int]] = {}
    for item in result["upcoming"]:
        month = months.setdefault(item["due"][:7], [0, 0])
        month[0], month[1] = month[0] + 1, month[1] + item["bytes"]
    if months:
        print_table([Column(_("Month")), Column(_("Becoming due")), Column(_("Bytes"))],
                    [[m, str(n), human_bytes(b)] for m, (n, b) in sorted(months.items())[:24]])
    for item in result["blocked"]:
        click.echo(_("held back: #{id} {archive_path} (due {due}): {reason}").format(
            id=item["id"], archive_path=item["archive_path"], due=item["due"], reason=_(REASONS[item["reason"]])))
    click.echo(_("{today}: {count} recording(s) due now, {bytes}; {later} later; {kept} kept for good as things "
                 "stand").format(today=result["today"], count=len(result["due_now"]),
                                 bytes=human_bytes(result["due_now_bytes"]), later=len(result["upcoming"]),
                                 kept=result["kept"]))


@retention.command()
@json_option("Print a JSON array.")
@click.pass_obj
def requests(app: App, as_json: bool) -> None:
    """Every purge request: who asked, who approved, its state, recordings and bytes."""
    rows, _files = app.call("retention requests")
    if as_json:
        echo_json(rows)
        return
    print_table([Column(_("ID")), Column(_("State")), Column(_("Requested by")), Column(_("Approved by")),
                 Column(_("Recordings")), Column(_("Bytes"))],
                [[str(r["id"]), word(r["state"]), r["requested_by"], r["approved_by"] or "-", str(r["recordings"]),
                  human_bytes(r["bytes"])] for r in rows])


@retention.command("purge")
@click.argument("request_id", type=int, required=False, metavar="[ID]")
@click.option("--request", "make_request", is_flag=True, help="Request a purge of everything due now.")
@json_option("Print the request or the result as JSON.")
@click.pass_obj
def purge_cmd(app: App, request_id: int | None, make_request: bool, as_json: bool) -> None:
    """With --request: record a request listing exactly the recordings due now (a signed custody event).
    With the ID of an approved request: purge what it lists and is still due (a hold added meanwhile
    wins); each purged recording keeps its catalog row as a tombstone. Run again, it finishes a purge
    that was killed."""
    result, _files = app.call("retention purge", {"request_id": request_id, "make_request": make_request})
    if as_json:
        echo_json(result)
        return
    if make_request:
        click.echo(_("purge request {id}: {count} recording(s), {bytes}; a different person (auditor or legal) "
                     "approves it with 'archiver retention approve {id}'").format(
            id=result["id"], count=result["recordings"], bytes=human_bytes(result["bytes"])))
        return
    if "done_at" in result:
        click.echo(_("purge request {id} was carried out already ({purged} recording(s) purged); a request is used "
                     "once: what it skipped needs a new request ('archiver retention purge --request')").format(
            id=request_id, purged=result["purged_before"]))
        return
    click.echo(_("purge request {id}: {purged} recording(s) purged ({bytes}), {skipped} skipped").format(
        id=request_id, purged=result["purged"], bytes=human_bytes(result["bytes"]), skipped=len(result["skipped"])))
    for item in result["skipped"]:
        click.echo(_("  skipped #{id}: {why}").format(id=item["id"], why=_(item["why"])))


@retention.command()
@click.argument("request_id", type=int, metavar="ID")
@click.pass_obj
def approve(app: App, request_id: int) -> None:
    """Approve a purge request (as a second person: never the one who requested it)."""
    done, _files = app.call("retention approve", {"request_id": request_id})
    click.echo(_("purge request {id} approved: {count} recording(s), {bytes}; run 'archiver retention purge {id}'")
               .format(id=request_id, count=done["recordings"], bytes=human_bytes(done["bytes"])))


@click.group(cls=Group)
def hold() -> None:
    """Legal holds: held footage is never purged, whatever its class."""


@hold.command("add")
@click.argument("refs", nargs=-1, metavar="[REF ...]")
@click.option("--case", "case_no", metavar="CASE_NO", help="Hold every recording of this case.")
@click.option("--reason", required=True, help="Why (a court order, an appeal): kept in the custody log.")
@click.pass_obj
def hold_add(app: App, refs: tuple[str, ...], case_no: str | None, reason: str) -> None:
    """Place a legal hold on recordings (ids or sha256 prefixes) or on a case."""
    done, _files = app.call("hold add", {"refs": list(refs), "case_no": case_no, "reason": reason})
    click.echo(_("{count} hold(s) placed").format(count=done["placed"]))


@hold.command("remove")
@click.argument("refs", nargs=-1, metavar="[REF ...]")
@click.option("--case", "case_no", metavar="CASE_NO", help="Lift the holds on this case.")
@click.option("--reason", required=True, help="Why the hold ends: kept in the custody log.")
@click.pass_obj
def hold_remove(app: App, refs: tuple[str, ...], case_no: str | None, reason: str) -> None:
    """Lift the legal holds on recordings or on a case."""
    done, _files = app.call("hold remove", {"refs": list(refs), "case_no": case_no, "reason": reason})
    click.echo(_("{count} hold(s) lifted").format(count=done["lifted"]))


@hold.command("list")
@json_option("Print a JSON array.")
@click.pass_obj
def hold_list(app: App, as_json: bool) -> None:
    """Every hold that stands: on what, why, by whom, since when."""
    rows, _files = app.call("hold list")
    if as_json:
        echo_json(rows)
        return
    print_table([Column(_("ID")), Column(_("On")), Column(_("Reason"), wrap=True), Column(_("By")),
                 Column(_("Since"))],
                [[str(r["id"]), r["case_no"] or f"#{r['recording']} {r['archive_path']}", r["reason"], r["placed_by"],
                  local_time(r["placed_at"])] for r in rows])
