"""`archiver access show|check`: the roles, who holds them, and what each may do."""

from __future__ import annotations

import click

from archiver.cli import App
from archiver.cli.localized import Group
from archiver.cli.output import Column, echo_json, json_option, print_table
from archiver.i18n import _
from archiver.i18n.words import word, words


@click.group(cls=Group)
def access() -> None:
    """People and roles: Unix groups named in [access.groups] give roles; the matrix says what each may do."""


@access.command("show")
@json_option("Print one JSON object.")
@click.pass_obj
def show(app: App, as_json: bool) -> None:
    """Every role: its group, the users in it and what it is for; then every command and the roles
    that may run it. Root and the service user hold every right."""
    data, _files = app.call("access show")
    roles = [row["role"] for row in data["roles"]]
    if as_json:
        echo_json(data)
        return
    print_table([Column(_("Role")), Column(_("Group")), Column(_("Users"), wrap=True), Column(_("For"), wrap=True)],
                [[word(row["role"]), row["group"], ", ".join(row["users"]) or "-", _(row["purpose"])]
                 for row in data["roles"]])
    print_table([Column(_("Command")), *(Column(word(role)) for role in roles)],
                [[command, *(_("own") if r == "officer" and r in who and command in data["own_only"]
                             else _("yes") if r in who else "" for r in roles)]
                 for command, who in data["commands"].items()])
    click.echo(_("root and {service_user} may run every command; 'own': an officer's own recordings and cases").format(
                 service_user=data["service_user"]))


@access.command("check")
@click.argument("user")
@json_option("Print one JSON object.")
@click.pass_obj
def check(app: App, user: str, as_json: bool) -> None:
    """What one local USER may do: their roles (from their groups), officer number and commands."""
    data, _files = app.call("access check", {"user": user})
    if as_json:
        echo_json(data)
        return
    what = _("every right (root or the service user)") if data["privileged"] else \
        words(data["roles"]) if data["roles"] else _("no role: nothing")
    click.echo(_("{user} (uid {uid}): {what}; officer number {value}").format(
                 user=data["user"], uid=data["uid"], what=what, value=data["officer_no"] or '-'))
    for command in data["commands"]:
        own = _("  (own recordings and cases only)") if command in data["own_only"] else ""
        click.echo(f"  {command}{own}")
