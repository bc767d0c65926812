"""`archiver access show|check`: the roles, who holds them, and what each may do."""

from __future__ import annotations

import click
from rich.table import Table

from archiver.cli import App
from archiver.cli.output import console, echo_json
from archiver.errors import NotFoundError
from archiver.service import access as lib


@click.group()
def access() -> None:
    """People and roles: Unix groups named in [access.groups] give roles; the matrix says what each may do."""


@access.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
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
    roles = Table("Role", "Group", "Users", "For")
    for row in data["roles"]:
        roles.add_row(row["role"], row["group"], ", ".join(row["users"]) or "-", row["purpose"])
    matrix = Table("Command", *lib.ROLES)
    for command, who in data["commands"].items():
        marks = ["own" if r == "officer" and r in who and command in lib.OWN_ONLY else "yes" if r in who else ""
                 for r in lib.ROLES]
        matrix.add_row(command, *marks)
    out = console()
    out.print(roles)
    out.print(matrix)
    click.echo(f"root and {cfg.service_user} may run every command; 'own': an officer's own recordings and cases")


@access.command("check")
@click.argument("user")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def check(app: App, user: str, as_json: bool) -> None:
    """What one local USER may do: their roles (from their groups), officer number and commands."""
    try:
        person = lib.person_for(user, app.config.access)
    except KeyError:
        raise NotFoundError(f"no local user {user!r}: see /etc/passwd (people are the machine's own users)") from None
    commands = list(lib.MATRIX) if person.privileged else lib.allowed(person.roles)
    data = {"user": person.user, "uid": person.uid, "roles": list(person.roles), "officer_no": person.officer_no,
            "privileged": person.privileged, "commands": commands,
            "own_only": [c for c in commands if person.only_own(c)]}
    if as_json:
        echo_json(data)
        return
    what = "every right (root or the service user)" if person.privileged else \
        ", ".join(person.roles) or "no role: nothing"
    click.echo(f"{person.user} (uid {person.uid}): {what}; officer number {person.officer_no or '-'}")
    for command in commands:
        click.echo(f"  {command}{'  (own recordings and cases only)' if command in data['own_only'] else ''}")
