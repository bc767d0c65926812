"""Roles from Unix groups and the permission matrix: every command has its row, every role its
rights (checked exhaustively), and `access show|check` against real throwaway users and groups."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import click
import pytest

from archiver.cli import main
from archiver.config import load_config
from archiver.errors import ConfigError
from archiver.service.access import MATRIX, OWN_ONLY, ROLES, Person, allowed, roles_for

# Commands that change the archive, the catalog, the log's subjects or the backups.
CHANGES = {"init", "ingest", "daemon", "devices add", "cases import", "cases link", "cases unlink", "backup run",
           "backup restore", "rebuild-catalog"}


def _commands() -> set[str]:
    ctx = click.Context(main)
    found = set()

    def walk(group: click.Group, prefix: str) -> None:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if isinstance(command, click.Group):
                walk(command, f"{prefix}{name} ")
            else:
                found.add(prefix + name)

    walk(main, "")
    return found


def test_every_command_has_a_row_and_every_row_a_command():
    assert set(MATRIX) == _commands()
    assert OWN_ONLY <= set(MATRIX) and all("officer" in MATRIX[c] for c in OWN_ONLY)


def _person(*roles: str, privileged: bool = False) -> Person:
    return Person("someone", 4242, tuple(roles), None, privileged)


def test_each_role_may_run_exactly_its_row():
    for role in ROLES:
        person = _person(role)
        for command, who in MATRIX.items():
            assert person.may(command) == (role in who), (role, command)
    assert not any(_person().may(c) for c in MATRIX)  # no role: nothing
    assert all(_person(privileged=True).may(c) for c in MATRIX)  # root and the service user: everything


def test_the_roles_keep_to_their_purpose():
    assert not set(allowed(("auditor",))) & CHANGES  # read-only on everything
    assert {"verify", "export", "cases show", "recordings show", "access show"} <= set(allowed(("auditor",)))
    assert not {"cases link", "cases unlink", "cases import"} & set(allowed(("clerk",)))  # docks, never relinks
    assert {"ingest", "devices list", "status", "backup status", "recordings list"} <= set(allowed(("clerk",)))
    assert set(allowed(("officer",))) == OWN_ONLY
    assert {"backup restore", "backup run", "devices add", "init"} <= set(allowed(("admin",)))
    assert not {"backup restore", "backup run", "keys show"} & set(allowed(("legal",)))


def test_an_officer_is_narrowed_to_their_own_unless_another_role_covers_the_command():
    officer = _person("officer")
    assert all(officer.only_own(c) for c in OWN_ONLY)
    both = _person("officer", "legal")
    assert not any(both.only_own(c) for c in OWN_ONLY)
    clerk_officer = _person("officer", "clerk")
    assert not clerk_officer.only_own("recordings list") and clerk_officer.only_own("recordings show")
    assert not _person("officer", privileged=True).only_own("recordings show")


def test_roles_come_from_the_configured_groups(tmp_path: Path):
    config = tmp_path / "a.toml"
    config.write_text('[access]\ngroups = { legal = "fazhi" }\nofficers = { zhangsan = "JX0227" }\n')
    access = load_config(config, None, system_file=Path("/nonexistent")).access
    assert roles_for({"fazhi", "archiver-clerk", "wheel"}, access) == ("clerk", "legal")
    assert access.officers == {"zhangsan": "JX0227"}
    config.write_text('[access]\nofficers = { zhangsan = 227 }\n')
    with pytest.raises(ConfigError, match="access.officers.zhangsan' .* must be a non-empty string"):
        load_config(config, None, system_file=Path("/nonexistent"))


@pytest.fixture
def staff(tmp_path: Path):
    """A legal officer and an officer, as real local users in real groups; a config naming the groups."""
    if os.geteuid() != 0:
        pytest.skip("needs root to add users")
    tag = os.getpid() % 100000
    legal_group, officer_group = f"arcv-lg-{tag}", f"arcv-of-{tag}"
    lisi, zhangsan = f"arcv-li-{tag}", f"arcv-zh-{tag}"
    for group in (legal_group, officer_group):
        subprocess.run(["groupadd", group], check=True)
    subprocess.run(["useradd", "-M", "-N", "-G", legal_group, "-s", "/usr/sbin/nologin", lisi], check=True)
    subprocess.run(["useradd", "-M", "-N", "-G", officer_group, "-s", "/usr/sbin/nologin", zhangsan], check=True)
    config = tmp_path / "access.toml"
    config.write_text(f'[access]\ngroups = {{ legal = "{legal_group}", officer = "{officer_group}" }}\n'
                      f'officers = {{ {zhangsan} = "JX0227" }}\n')
    yield {"config": config, "lisi": lisi, "zhangsan": zhangsan}
    for user in (lisi, zhangsan):
        subprocess.run(["userdel", user], check=False)
    for group in (legal_group, officer_group):
        subprocess.run(["groupdel", group], check=False)


def test_access_check_and_show_name_real_users_and_their_rights(cli, staff):
    config = staff["config"]
    legal = json.loads(cli("access", "check", staff["lisi"], "--json", config=config).stdout)
    assert legal["roles"] == ["legal"] and not legal["privileged"] and legal["own_only"] == []
    assert set(legal["commands"]) == {c for c, who in MATRIX.items() if "legal" in who}
    officer = json.loads(cli("access", "check", staff["zhangsan"], "--json", config=config).stdout)
    assert officer["roles"] == ["officer"] and officer["officer_no"] == "JX0227"
    assert sorted(officer["own_only"]) == sorted(OWN_ONLY) == sorted(officer["commands"])
    root = json.loads(cli("access", "check", "root", "--json", config=config).stdout)
    assert root["privileged"] and root["commands"] == list(MATRIX)
    shown = json.loads(cli("access", "show", "--json", config=config).stdout)
    users = {row["role"]: row["users"] for row in shown["roles"]}
    assert users["legal"] == [staff["lisi"]] and users["officer"] == [staff["zhangsan"]] and users["admin"] == []
    assert shown["commands"]["cases link"] == ["legal", "admin"]
    text = cli("access", "check", staff["zhangsan"], config=config).stdout
    assert "officer number JX0227" in text and "recordings show  (own recordings and cases only)" in text
    nobody = cli("access", "check", "no-such-person-here", config=config)
    assert nobody.exit_code == 2 and nobody.stderr.startswith("Error: no local user 'no-such-person-here'")
