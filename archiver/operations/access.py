"""Who may do what: roles from Unix groups, and the permission matrix the station service enforces.

Pure: the people are the machine's own users, and their groups are looked up by the caller
(`person_for`), so the rules themselves are plain data, tested exhaustively. The service user and
root hold every right. An officer's rights reach only their own recordings and the cases they act in
(`OWN_ONLY`): the service narrows those commands to the officer number `access.officers` maps the user to.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass

from archiver.config import AccessConfig
from archiver.i18n import N_, _

ROLES = ("officer", "clerk", "legal", "auditor", "admin")

# What each role is for, as `archiver access show` prints it.
PURPOSE = {
    "officer": N_("looks up their own recordings and the cases they act in"),
    "clerk": N_("docks recorders and keeps the archive: devices, ingest, status, backup status, recording lists"),
    "legal": N_("case officers (法制审核): imports, links and checks cases; looks up and retrieves recordings"),
    "auditor": N_("discipline and outside auditors (纪委): reads everything, verifies, exports; never changes "
                  "anything"),
    "admin": N_("everything else: keys, backups and restores, device registration, the data dir itself"),
}

_ALL = frozenset(ROLES)
_READERS = frozenset({"legal", "auditor", "admin"})

# Every command of the CLI, and the roles that may run it. tests/test_access.py checks that each
# command has a row, so a new command cannot be added without deciding who may run it.
MATRIX: dict[str, frozenset[str]] = {
    "init": frozenset({"admin"}),
    "ingest": frozenset({"clerk", "admin"}),
    "daemon": frozenset({"admin"}),
    "devices add": frozenset({"admin"}),
    "devices list": frozenset({"clerk", "auditor", "admin"}),
    "recordings list": _ALL,
    "recordings show": frozenset({"officer"}) | _READERS,
    "recordings get": _READERS,
    "recordings view": frozenset({"officer"}) | _READERS,  # playback in the web view: a custody `view` event
    "cases import": frozenset({"legal", "admin"}),
    "cases link": frozenset({"legal", "admin"}),
    "cases unlink": frozenset({"legal", "admin"}),
    "cases remove": frozenset({"legal", "admin"}),
    "cases list": frozenset({"officer"}) | _READERS,
    "cases search": frozenset({"officer"}) | _READERS,
    "cases show": frozenset({"officer"}) | _READERS,
    "cases check": _READERS,
    "cases report": _READERS,
    "people import": frozenset({"clerk", "legal", "admin"}),
    "people list": frozenset({"clerk"}) | _READERS,
    "recordings set-time": frozenset({"legal", "admin"}),
    "verify": frozenset({"auditor", "admin"}),
    "verify-export": frozenset({"auditor", "admin"}),
    "status": frozenset({"clerk", "auditor", "admin"}),
    "export": frozenset({"auditor", "admin"}),
    "keys show": frozenset({"auditor", "admin"}),
    "custody show": frozenset({"auditor", "admin"}),
    "backup run": frozenset({"admin"}),
    "backup status": frozenset({"clerk", "auditor", "admin"}),
    "backup verify": frozenset({"auditor", "admin"}),
    "backup restore": frozenset({"admin"}),
    "rebuild-catalog": frozenset({"admin"}),
    "access show": frozenset({"auditor", "admin"}),
    "access check": frozenset({"auditor", "admin"}),
    "recordings classify": frozenset({"legal", "admin"}),
    "hold add": frozenset({"legal", "admin"}),
    "hold remove": frozenset({"legal", "admin"}),
    "hold list": _READERS,
    "retention plan": _READERS,
    "retention requests": _READERS,
    "retention purge": frozenset({"admin"}),  # requests a purge, and carries out an approved one
    "retention approve": frozenset({"auditor", "legal"}),  # never the person who requested it
    "report year": frozenset({"clerk", "legal", "auditor", "admin"}),  # the clerk writes the yearly figures
    "report period": frozenset({"clerk", "legal", "auditor", "admin"}),
    "sync": frozenset({"admin"}),
    "central": frozenset({"admin"}),  # the centre's own process, under its own unit
    "web": frozenset({"admin"}),  # the web view's process (started by the daemon or its own unit)
    "stations add": frozenset({"admin"}),
    "stations list": _READERS,
    "stations check": frozenset({"auditor", "admin"}),
}

# Commands an officer runs only over their own recordings and the cases they act in.
OWN_ONLY = frozenset({"recordings list", "recordings show", "recordings view", "cases list", "cases search",
                      "cases show"})

# Operations only the web view offers (a command line has nothing to play a recording in).
WEB_ONLY = frozenset({"recordings view"})

# Commands the running service does not run for anyone: it is the daemon.
NOT_SERVED = {"daemon": N_("the daemon is running already: the station service is part of it"),
              "central": N_("the centre's process runs under its own unit (archiver-central.service), not through a "
                            "station's service"),
              "web": N_("the web view runs as its own process (archiver web), not through the station service")}


@dataclass(frozen=True)
class Actor:
    """The person an operation is done for: who the kernel says called the station service, or whoever runs a
    command directly (root, the service user, or someone on a data dir of their own: every right)."""

    user: str
    uid: int
    roles: tuple[str, ...]  # in ROLES order
    officer_no: str | None  # from access.officers
    privileged: bool  # root, the service user, or a direct run: every right
    custody_role: str | None = None  # what a privileged person's events name as their role

    def may(self, command: str) -> bool:
        return self.privileged or bool(set(self.roles) & MATRIX.get(command, frozenset()))

    def only_own(self, command: str) -> bool:
        """Whether this person runs `command` as an officer alone (narrowed to their own footage)."""
        if self.privileged or command not in OWN_ONLY:
            return False
        return not (set(self.roles) - {"officer"}) & MATRIX[command]

    def role_for(self, command: str | None) -> str | None:
        """The role this person runs `command` with, as custody events name it."""
        if self.privileged:
            return self.custody_role
        return next((r for r in self.roles if command is None or r in MATRIX.get(command, ())), None)

    def actor(self, command: str | None) -> dict[str, object]:
        """Who did it, as the custody log keeps it."""
        return {"user": self.user, "uid": self.uid, "role": self.role_for(command)}

    def refusal(self, command: str | None, groups: dict[str, str]) -> str | None:
        """Why this person may not run `command` (None: help and usage), in one line; None if they may."""
        if not self.privileged and not self.roles:
            return _("{user} holds no archiver role: an administrator adds them to one (usermod -aG {group} {user}; "
                     "see 'archiver access show')").format(user=self.user, group=groups["clerk"])
        if command is None:
            return None
        if not self.may(command):
            needs = who_may(command)
            return _("{user} may not run '{command}': it needs the role {roles} (group {groups}); {user} holds "
                     "{held}").format(user=self.user, command=command, roles=_(" or ").join(needs),
                                      groups=_(" or ").join(groups[r] for r in needs), held=", ".join(self.roles))
        reason = NOT_SERVED.get(command)
        return _(reason) if reason else None


def roles_for(groups: set[str], access: AccessConfig) -> tuple[str, ...]:
    """The roles whose configured group is among `groups`."""
    return tuple(role for role in ROLES if access.groups[role] in groups)


def allowed(roles: tuple[str, ...]) -> list[str]:
    """The commands someone with these roles may run, in the matrix's order."""
    return [command for command, may in MATRIX.items() if set(roles) & may]


def who_may(command: str) -> tuple[str, ...]:
    return tuple(role for role in ROLES if role in MATRIX.get(command, frozenset()))


# -- the machine's users and groups (I/O) --------------------------------------------------------
def person_for(user: str, access: AccessConfig) -> Actor:
    """A local user as the service sees them. Raises KeyError if there is no such user."""
    return _person(pwd.getpwnam(user), access)


def person_for_uid(uid: int, access: AccessConfig) -> Actor:
    """The caller the kernel reported. A uid with no user name holds no role."""
    try:
        return _person(pwd.getpwuid(uid), access)
    except KeyError:
        return Actor(str(uid), uid, (), None, uid == 0, custody_role="root" if uid == 0 else None)


def running_actor(access: AccessConfig) -> Actor:
    """Whoever runs this process, for a command run directly: they hold the data dir, so every right."""
    uid = os.geteuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    role = "root" if uid == 0 else "service" if user == access.service_user else None
    return Actor(user, uid, (), None, True, custody_role=role)


def _person(entry: pwd.struct_passwd, access: AccessConfig) -> Actor:
    # Group membership is read now, not at login: `usermod -aG` takes effect on the next command.
    names = {g.gr_name for g in grp.getgrall() if entry.pw_name in g.gr_mem}
    try:
        names.add(grp.getgrgid(entry.pw_gid).gr_name)
    except KeyError:
        pass
    root, service = entry.pw_uid == 0, entry.pw_name == access.service_user
    return Actor(entry.pw_name, entry.pw_uid, roles_for(names, access), access.officers.get(entry.pw_name),
                 root or service, "root" if root else "service" if service else None)


def holders(access: AccessConfig) -> dict[str, list[str]]:
    """role -> the users in its group (members listed in /etc/group, and those for whom it is primary)."""
    found: dict[str, list[str]] = {}
    for role in ROLES:
        try:
            group = grp.getgrnam(access.groups[role])
        except KeyError:
            found[role] = []
            continue
        members = set(group.gr_mem) | {u.pw_name for u in pwd.getpwall() if u.pw_gid == group.gr_gid}
        found[role] = sorted(members)
    return found


def current_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())
