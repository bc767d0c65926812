"""Roles from Unix groups and the permission matrix: every command has its row, every role its
rights (checked exhaustively), and `access show|check` against real throwaway users and groups."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import click
import pytest

from archiver.cli import main
from archiver.config import load_config
from archiver.errors import ConfigError
from archiver.operations.access import MATRIX, OWN_ONLY, ROLES, WEB_ONLY, Actor, allowed, roles_for

# Commands that change the archive, the catalog, the log's subjects or the backups.
CHANGES = {"init", "ingest", "daemon", "devices add", "cases import", "cases link", "cases unlink", "cases remove",
           "backup run",
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
    assert set(MATRIX) - WEB_ONLY == _commands()
    assert OWN_ONLY <= set(MATRIX) and all("officer" in MATRIX[c] for c in OWN_ONLY)


def _person(*roles: str, privileged: bool = False) -> Actor:
    return Actor("someone", 4242, tuple(roles), None, privileged)


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


# -- the pure parts of the station service -----------------------------------------------------------
def test_every_row_of_the_matrix_is_one_operation_and_nothing_else_is():
    """The service carries operations by the matrix's names: each resolves to a function of the operations
    registry (loaded on first use), and a name that is not a row is no operation at all."""
    import inspect

    from archiver.operations.core import MODULES, find

    assert set(MODULES) == set(MATRIX)
    for command in MATRIX:
        fn = find(command)
        assert next(iter(inspect.signature(fn).parameters)) == "ctx", command
    from archiver.errors import NotFoundError

    with pytest.raises(NotFoundError):
        find("cases drop-everything")


def test_refusals_name_the_person_the_command_and_the_roles_it_needs():
    groups = {role: f"archiver-{role}" for role in ROLES}
    clerk = Actor("wangwu", 1001, ("clerk",), None, False)
    assert clerk.refusal("ingest", groups) is None and clerk.refusal(None, groups) is None
    assert clerk.refusal("cases link", groups) == (
        "wangwu may not run 'cases link': it needs the role legal or admin (group archiver-legal or "
        "archiver-admin); wangwu holds clerk")
    nobody = Actor("x", 1002, (), None, False)
    assert nobody.refusal(None, groups).startswith("x holds no archiver role")
    admin = Actor("root", 0, (), None, True, "root")
    assert admin.refusal("daemon", groups) == "the daemon is running already: the station service is part of it"
    assert admin.role_for("status") == "root" and clerk.role_for("status") == "clerk"
    assert Actor("a", 5, ("officer", "legal"), "JX1", False).role_for("recordings get") == "legal"


def test_frames_carry_one_descriptor_and_refuse_what_is_not_a_frame(tmp_path: Path):
    import array
    import socket
    import struct

    from archiver.service import protocol as wire

    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    a, b = wire.Connection(left), wire.Connection(right)
    secret = tmp_path / "f"
    secret.write_bytes(b"evidence")
    fd = os.open(secret, os.O_RDONLY)
    a.send(wire.PUT, {"name": "x", "size": 8}, fd)
    kind, data, got = b.receive()
    assert (kind, data) == (wire.PUT, {"name": "x", "size": 8}) and os.pread(got, 100, 0) == b"evidence"
    os.close(got)
    before = len(os.listdir("/proc/self/fd"))
    extra = [os.open(secret, os.O_RDONLY) for _ in range(3)]
    frame = json.dumps({"name": "y"}).encode()
    left.sendmsg([struct.pack(">Ic", len(frame), wire.INPUT) + frame],
                 [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", extra))])
    for extra_fd in extra:
        os.close(extra_fd)
    kind, data, got = b.receive()  # one kept, the rest closed on arrival
    assert kind == wire.INPUT and got is not None
    os.close(got)
    assert len(os.listdir("/proc/self/fd")) == before
    a.send(wire.RESULT, {"value": "表" * 20000})
    assert b.receive()[1] == {"value": "表" * 20000}
    left.sendall(struct.pack(">Ic", wire.MAX_CALL + 1, b"C"))
    with pytest.raises(wire.ProtocolError, match="at most"):
        b.receive(wire.MAX_CALL)
    left.sendall(struct.pack(">Ic", 3, b"R") + b"[1]")
    with pytest.raises(wire.ProtocolError, match="JSON object"):
        b.receive()
    b.deadline = time.monotonic() + 0.3
    left.sendall(struct.pack(">Ic", 10, b"C") + b"{")
    with pytest.raises(wire.ProtocolError, match="too slow"):
        b.receive()
    b.deadline = None
    left.sendall(b"abc")
    left.close()
    with pytest.raises(wire.ProtocolError, match="middle of a frame"):
        b.receive()
    with pytest.raises(EOFError):
        b.receive()
    right.close()


def test_the_readme_shows_the_matrix_the_service_enforces():
    from conftest import REPO

    text = (REPO / "README.md").read_text()
    table = text[text.index("<!-- matrix:"):text.index("<!-- /matrix -->")].splitlines()[3:]
    shown = {}
    for row in table:
        command, *cells = [c.strip() for c in row.strip("|").split("|")]
        shown[command.strip("`")] = {role for role, cell in zip(ROLES, cells, strict=True) if cell}
        assert all(cell in ("", "✓", "own") for cell in cells), row
        assert ("own" in cells) == (command.strip("`") in OWN_ONLY and "officer" in MATRIX[command.strip("`")])
    assert shown == {command: set(who) for command, who in MATRIX.items()}
