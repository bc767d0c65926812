"""`archiver backup run|status|verify|restore`."""

from __future__ import annotations

from pathlib import Path

import click

from archiver.cli import App
from archiver.cli.files import hand_in, receive_tree
from archiver.cli.localized import Group
from archiver.cli.output import Column, echo_json, human_bytes, json_option, local_time, print_table
from archiver.i18n import _
from archiver.i18n.words import word


@click.group(cls=Group)
def backup() -> None:
    """Write-only encrypted backups (age format) to backup.targets, checks and restores."""


@backup.command()
@json_option("Print the counts as JSON.")
@click.pass_obj
def run(app: App, as_json: bool) -> None:
    """Encrypt every recording not yet on a target to backup.recipients, one .age object each; then, if
    anything changed since the newest snapshot, a snapshot of the catalog, custody log and station keys
    on every target, keeping the newest backup.keep_snapshots. Resumes where a killed run stopped. An
    archived file that no longer hashes as catalogued is not backed up: it is named, exit 1."""
    report, _files = app.call("backup run")
    if as_json:
        echo_json(report)
    else:
        for target, counts in report["targets"].items():
            snapshot = _("snapshot of {parts} part(s), {pruned} old snapshot(s) removed").format(
                parts=counts["snapshot_parts"], pruned=counts["snapshots_pruned"]) if counts["snapshot_parts"] \
                else _("no new snapshot: nothing changed since the last one")
            click.echo(_("{target}: {objects} new object(s), {bytes}; {snapshot}").format(
                target=target, objects=counts["objects"], bytes=human_bytes(counts["bytes"]), snapshot=snapshot))
        for item in report["not_backed_up"]:
            click.echo(_("NOT BACKED UP {path} to {target}: {detail}").format(
                         path=item['path'], target=item['target'], detail=item['detail']), err=True)
    click.get_current_context().exit(1 if report["not_backed_up"] else 0)


@backup.command()
@json_option("Print a JSON array, one entry per target.")
@click.pass_obj
def status(app: App, as_json: bool) -> None:
    """Per target: objects, bytes, last run, and the lag (recordings not yet there, the oldest of them)."""
    rows, _files = app.call("backup status")
    if as_json:
        echo_json(rows)
        return
    print_table([Column(_("Target"), shorten=True), Column(_("Present")), Column(_("Objects"), optional=True),
                 Column(_("Bytes"), optional=True), Column(_("Last run")), Column(_("Not backed up")),
                 Column(_("Oldest not backed up"))],
                [[r["target"], {True: _("yes"), False: _("NO"), None: "-"}[r["present"]], str(r["objects"]),
                  human_bytes(r["bytes"]),
                  local_time(r["last_run"]), _("{count} of {total}").format(count=r["not_backed_up"],
                                                                            total=r["recordings"]),
                  local_time(r["oldest_not_backed_up"])] for r in rows])


@backup.command()
@click.option("--identity", type=click.Path(path_type=Path, dir_okay=False),
              help="An age identity file: also decrypt every object and compare (a restore drill).")
@json_option("Print the result as JSON.")
@click.pass_obj
def verify(app: App, identity: Path | None, as_json: bool) -> None:
    """Check every object on every target against its manifest (presence, size, ciphertext SHA-256),
    needing no key; with --identity also decrypt and compare the plaintext. Exit 1 on any problem."""
    done, _files = app.call("backup verify", {"decrypt": identity is not None},
                            files=(lambda: hand_in(identity)) if identity else None)
    checked, problems = done["checked"], done["problems"]
    if as_json:
        echo_json(done)
    else:
        text = _("checked {checked} object(s), decrypted; {count} problem(s)") if identity else \
            _("checked {checked} object(s); {count} problem(s)")
        click.echo(text.format(checked=checked, count=len(problems)))
        for p in problems:
            click.echo(_("PROBLEM {kind} {path}: {detail}").format(
                         kind=word(p['kind']), path=p['path'], detail=p['detail']))
    click.get_current_context().exit(1 if problems else 0)


@backup.command()
@click.option("--identity", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="An age identity file of one of the recipients (yours alone: mode 0600).")
@click.option("--case", "case_no", metavar="CASE_NO", help="Restore the recordings of this case.")
@click.option("--all", "all_", is_flag=True, help="Restore a whole data dir: catalog, custody log, keys, archive.")
@click.option("--station-key", metavar="KEY", help="With --all: the station's public key, as ed25519:BASE64, a "
              "station.pub file, or an export made by the station; only a snapshot it signed is restored.")
@click.option("--trust-target", is_flag=True, help="With --all and no --station-key: restore the newest snapshot "
              "whatever key signed it. Whoever controls the target then decides what is restored.")
@click.option("--target", type=click.Path(path_type=Path, file_okay=False),
              help="The backup target to read (default: the first of backup.targets).")
@click.argument("args", nargs=-1, required=True, metavar="[REF ...] DEST")
@click.pass_obj
def restore(app: App, identity: Path, case_no: str | None, all_: bool, station_key: str | None, trust_target: bool,
            target: Path | None, args: tuple[str, ...]) -> None:
    """Restore recordings (REF: ids or sha256 prefixes, or --case) into DEST at their archive paths,
    checked against this station's catalog; or with --all a complete data dir on which `archiver
    verify` passes, from the newest snapshot signed by --station-key. Every path stays inside DEST;
    a whole station appears in DEST only once it is complete."""
    *refs, dest_text = args
    dest = Path(dest_text).absolute()
    done, files = app.call("backup restore", {
        "refs": refs, "dest": str(dest), "case_no": case_no, "all_": all_, "station_key": station_key,
        "trust_target": trust_target, "target": str(target.absolute()) if target else None},
        files=lambda: hand_in(identity))
    if app.served:
        receive_tree(dest, files)
    if not all_:
        click.echo(_("restored {count} recording(s) into {dest}").format(count=done["recordings"], dest=dest))
        return
    if not done["pinned"]:
        click.echo(_("WARNING: restored without a pinned key: the snapshot is signed by {fingerprint} "
                     "({text}); compare it with the station's key on paper before trusting it").format(
                     fingerprint=done["fingerprint"], text=done["key"]), err=True)
    click.echo(_("restored a complete data dir with {count} recording(s) from snapshot {stamp} into {dest}; "
                 "check it with 'archiver --data-dir {dest} verify'").format(
                 count=done["recordings"], stamp=done["snapshot"], dest=dest))
