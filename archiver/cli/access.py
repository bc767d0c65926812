"""`archiver access show|check`: the roles, who holds them, and what each may do."""

from __future__ import annotations

import click

from archiver.cli import App
from archiver.cli.localized import Group
from archiver.cli.output import Column, echo_json, json_option, print_table
from archiver.errors import NotFoundError
from archiver.i18n import _
from archiver.service import access as lib


@click.group(cls=Group)
def access() -> None:
    """People and roles: Unix groups named in [access.groups] give roles; the matrix says what each may do."""


@access.command("show")
@json_option("Print one JSON object.")
@click.pass_obj
def show(app: App, as_json: bool) -> None:
    """Every role: its group, the users in it and what it is for; then every command and the roles
    that may run it. Root and the service user hold every right."""
    cfg = app.config.access
    holders = lib.holders(cfg)
    data = {
        "service_user": cfg.service_user,
        "roles": [{"role": r, "group": cfg.groups[r], "users": holders[r], "purpose": lib.PURPOSE[r]}
                  for r in lib.ROLES],
        "commands": {command: list(lib.who_may(command)) for command in lib.MATRIX},
        "officers": dict(sorted(cfg.officers.items())),
        "own_only": sorted(lib.OWN_ONLY),
    }
    if as_json:
        echo_json(data)
        return
    print_table([Column(_("Role")), Column(_("Group")), Column(_("Users"), wrap=True), Column(_("For"), wrap=True)],
                [[row["role"], row["group"], ", ".join(row["users"]) or "-", _(row["purpose"])]
                 for row in data["roles"]])
    print_table([Column(_("Command")), *(Column(role) for role in lib.ROLES)],
                [[command, *(_("own") if r == "officer" and r in who and command in lib.OWN_ONLY
                             else _("yes") if r in who else "" for r in lib.ROLES)]
                 for command, who in data["commands"].items()])
    click.echo(_("root and {service_user} may run every command; 'own': an officer's own recordings and cases").format(
                 service_user=cfg.service_user))


@access.command("check")
@click.argument("user")
@json_option("Print one JSON object.")
@click.pass_obj
def check(app: App, user: str, as_json: bool) -> None:
    """What one local USER may do: their roles (from their groups), officer number and commands."""
    try:
        person = lib.person_for(user, app.config.access)
    except KeyError:
        raise NotFoundError(_("no local user {user!r}: see /etc/passwd (people are the machine's own users)").format(
                              user=user)) from None
    commands = list(lib.MATRIX) if person.privileged else lib.allowed(person.roles)
    data = {"user": person.user, "uid": person.uid, "roles": list(person.roles), "officer_no": person.officer_no,
            "privileged": person.privileged, "commands": commands,
            "own_only": [c for c in commands if person.only_own(c)]}
    if as_json:
        echo_json(data)
        return
    what = _("every right (root or the service user)") if person.privileged else \
        ", ".join(person.roles) or _("no role: nothing")
    click.echo(_("{user} (uid {uid}): {what}; officer number {value}").format(
                 user=person.user, uid=person.uid, what=what, value=person.officer_no or '-'))
    for command in commands:
        own = _("  (own recordings and cases only)") if command in data["own_only"] else ""
        click.echo(f"  {command}{own}")
