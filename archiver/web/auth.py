"""Passwords are the station's own users' (PAM). The web server runs as the service user, which cannot read
/etc/shadow; as Cockpit does (cockpit-session), a small privileged helper checks them: `archiver web` started
as root forks a child that keeps root for one thing only, answering "does this user have this password" through
PAM over a socket pair, while the server itself drops to the service user. Started as anyone else (or with no
service user on the machine), the server asks PAM itself."""

from __future__ import annotations

import os
import pwd
import socket
import struct
import threading

LIMIT = 4096  # bytes of a user name and a password together


def _pam_check(user: str, password: str) -> bool:
    import pam

    return bool(pam.pam().authenticate(user, password, service="login"))


class PasswordChecker:
    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def start_helper(self, service_user: str) -> bool:
        """As root with a service user: fork the helper, then drop this process to the service user. Whether
        this process now runs as the service user."""
        if os.geteuid() != 0:
            return False
        try:
            entry = pwd.getpwnam(service_user)
        except KeyError:
            return False
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if os.fork() == 0:  # the helper: root, PAM, nothing else
            ours.close()
            _serve(theirs)
            os._exit(0)
        theirs.close()
        self._sock = ours
        os.setgroups(os.getgrouplist(entry.pw_name, entry.pw_gid))
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
        return True

    def check(self, user: str, password: str) -> bool:
        data = user.encode() + b"\0" + password.encode()
        if not user or "\0" in user or "\0" in password or len(data) > LIMIT:
            return False
        if self._sock is None:
            return _pam_check(user, password)
        with self._lock:
            self._sock.send(data)
            answer = self._sock.recv(1)
        return answer == b"\1"


def _serve(sock: socket.socket) -> None:
    while True:
        try:
            data = sock.recv(LIMIT + 1)
        except OSError:
            return
        if not data:
            return
        user, _sep, password = data.partition(b"\0")
        try:
            ok = _pam_check(user.decode(), password.decode())
        except Exception:  # noqa: BLE001 - any failure is a "no"
            ok = False
        sock.send(struct.pack("B", ok))
