"""Who owns what: the reader group given to what others may read, and the owner and mode checks for the files
others must not be able to change (or, for a secret, read)."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path

from archiver.errors import InsecureError, UnsafePathError
from archiver.i18n import _


def give_group(fd: int, gid: int) -> None:
    """A file for the reader group (where the folder's setgid does not already see to it)."""
    try:
        os.fchown(fd, -1, gid)
    except PermissionError:
        pass  # not root and not in that group: the file keeps the creator's group


def make_shared(path: Path, gid: int | None) -> None:
    """A folder the archiver made for others to read (an export): 0750, and the reader group's."""
    os.chmod(path, 0o750)
    if gid is not None:
        chgrp(str(path), gid)


def chgrp(name: str, gid: int, dir_fd: int | None = None) -> None:
    """Hand a folder to the reader group, with setgid so what is created inside inherits it."""
    try:
        os.chown(name, -1, gid, dir_fd=dir_fd, follow_symlinks=False)
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        os.chmod(name, stat.S_IMODE(st.st_mode) | stat.S_ISGID, dir_fd=dir_fd)
    except PermissionError:
        pass  # not root and not in that group: the folder keeps the creator's group


def reader_gid(group: str) -> int | None:
    """The reader group's id, or None if there is no such group on this machine."""
    if not group:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


def user_uid(user: str) -> int | None:
    try:
        return pwd.getpwnam(user).pw_uid if user else None
    except KeyError:
        return None


def check_private(path: Path, what: str, owners: set[int], *, secret: bool = False, follow: bool = True,
                  st: os.stat_result | None = None) -> None:
    """Refuse `path` unless it is owned by one of `owners` and nobody else may change it (or, for a
    `secret`, read it). With `follow=False` a symlink in its place is refused as planted."""
    try:
        st = st or (os.stat(path) if follow else os.lstat(path))
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePathError(_("{what} {path} is a symlink: refusing to follow it; remove it (and find out who "
                                "put it there)").format(what=what, path=path))
    names = ", ".join(sorted(_user_name(uid) for uid in owners))
    if st.st_uid not in owners:
        raise InsecureError(_("{what} {path} belongs to {st_uid}, not to {names}: refused; check who made it, "
                              "then chown it to {value}").format(
                              what=what, path=path, st_uid=_user_name(st.st_uid), names=names,
                              value=names.split(', ')[0]))
    loose = 0o077 if secret else 0o022
    if stat.S_IMODE(st.st_mode) & loose:
        fix = "chmod 600" if secret else "chmod go-w"
        can = _("read or changed") if secret else _("changed")
        raise InsecureError(_("{what} {path} has mode {s_imode:04o}: others could have {can} it; refused until "
                              "fixed ({fix} {path})").format(
                              what=what, path=path, s_imode=stat.S_IMODE(st.st_mode), can=can, fix=fix))


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"
