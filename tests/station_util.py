"""A station for tests of the station service: a data dir with footage and cases, served by a real daemon
(run as root), and one real local user per role (useradd), each with a home of their own."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import _age_keygen
from daemon_util import DaemonProcess
from runner import ARCHIVER

from archiver.dock.simulate import RecorderSpec, make_recorder
from archiver.operations.access import ROLES

_TAGS = itertools.count()

CASE_A, CASE_B, CASE_WRONG = "后叶罚〔2022〕12号", "后叶罚〔2022〕13号", "后叶罚〔2022〕99号"
CASES = ("case_no,title,stage,officers,start,end,recording_required\n"
         f"{CASE_A},占道经营,调查取证,JX0227,2022-11-03T09:36:21,2022-11-03T09:36:45,是\n"
         f"{CASE_B},噪声扰民,调查取证,JX0555,2022-12-01T10:00:00,2022-12-01T10:00:10,是\n"
         f"{CASE_WRONG},导入错误,调查取证,JX0999,2022-12-02T10:00:00,2022-12-02T10:00:10,否\n")
BIG = "TA00999_JX0227_20230101090000.MP4"


class Station:
    """A data dir served by a real daemon (run as root), and one real local user per role."""

    def __init__(self, base: Path, tag: str) -> None:
        self.base, self.tag = base, tag
        self.users = {role: f"arcv-{role[:3]}-{tag}" for role in ROLES}
        self.users["officer2"] = f"arcv-of2-{tag}"
        self.users["stranger"] = f"arcv-str-{tag}"
        self.groups = {role: f"arcv-g{role[:3]}-{tag}" for role in ROLES}
        self.data, self.inbox = base / "data", base / "inbox"
        self.daemon: DaemonProcess | None = None

    def home(self, who: str) -> Path:
        return self.base / "home" / who

    def run(self, who: str, *args: object, cwd: Path | None = None, timeout: float = 120,
            check_output: bool = False, lang: str = "C.UTF-8") -> subprocess.CompletedProcess:
        """The real `archiver` command, run by a real user (runuser: their own uid and groups)."""
        assert self.daemon is not None
        env = ["env", "-i", f"PATH={os.environ['PATH']}", f"LANG={lang}", f"ARCHIVER_CONFIG={self.daemon.config}"]
        result = subprocess.run(["runuser", "-u", self.users[who], "--", *env, ARCHIVER, *map(str, args)],
                                cwd=cwd or self.home(who), capture_output=True, text=True, timeout=timeout)
        if check_output:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def root(self, *args: object) -> subprocess.CompletedProcess:
        """The same command run directly by root (the station's administrator, no service)."""
        assert self.daemon is not None
        return subprocess.run([ARCHIVER, "--config", str(self.daemon.config), "--data-dir", str(self.data),
                               *map(str, args)], capture_output=True, text=True, timeout=120)

    def events(self) -> list[dict]:
        return [json.loads(line) for line in (self.data / "custody.jsonl").read_text().splitlines()]


def serve_station(card: Path, service: str = "") -> Iterator[Station]:
    """A station with its users, served by a real daemon, for a module-scoped fixture; `service`: more lines of
    its [service] section."""
    if os.geteuid() != 0:
        pytest.skip("needs root to add users")
    umask = os.umask(0o022)  # folders the users pass through, whatever an in-process command set before
    base = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="archiver-svc-"))
    base.chmod(0o755)  # as /var/lib and /home are: every user passes through
    st = Station(base, f"{os.getpid() % 10000}{next(_TAGS)}")
    for group in st.groups.values():
        subprocess.run(["groupadd", group], check=True)
    for who, user in st.users.items():
        groups = ["-G", st.groups[who]] if who in st.groups else ["-G", st.groups["officer"]] \
            if who == "officer2" else []
        subprocess.run(["useradd", "-M", "-N", *groups, "-s", "/usr/sbin/nologin", user], check=True)
        home = st.home(who)
        home.mkdir(parents=True)
        shutil.chown(home, user)
        home.chmod(0o700)
    try:
        probe = subprocess.run(["runuser", "-u", st.users["stranger"], "--", ARCHIVER, "--version"],
                               capture_output=True, text=True, cwd="/")
        if probe.returncode != 0:
            pytest.fail(f"{ARCHIVER} cannot be run by other users (the checkout or its virtualenv is not readable "
                        f"and searchable by them): {probe.stderr.strip()[-300:]}")
        _prepare(st, card, service)
        yield st
    finally:
        if st.daemon is not None:
            st.daemon.stop()
        for user in st.users.values():
            subprocess.run(["userdel", user], check=False, capture_output=True)
        for group in st.groups.values():
            subprocess.run(["groupdel", group], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
        os.umask(umask)


def _prepare(st: Station, card: Path, more: str) -> None:
    base = st.base
    target = base / "target"
    target.mkdir()
    target.chmod(0o755)
    identity = base / "admin.key"
    recipient = _age_keygen(identity)
    admin_key = st.home("admin") / "identity.txt"
    shutil.copy(identity, admin_key)
    shutil.chown(admin_key, st.users["admin"])
    admin_key.chmod(0o600)
    groups = ", ".join(f'{role} = "{group}"' for role, group in st.groups.items())
    extra = (f'[service]\nsocket = "{base}/run/archiver.sock"\n{more}'
             f'[access]\ngroups = {{ {groups} }}\n'
             f'officers = {{ "{st.users["officer"]}" = "JX0227", "{st.users["officer2"]}" = "JX0555" }}\n'
             f'[backup]\ntargets = ["{target}"]\nrecipients = ["{recipient}"]\n')
    # The footage: the shared card (officer JX0227), a second officer's recorder, one large recording.
    cards = base / "cards"
    shutil.copytree(card, cards / "one")
    make_recorder(cards / "two", RecorderSpec(serial="TA00555", officer="JX0555",
                                              start=RecorderSpec.start.replace(month=12, day=1, hour=10, minute=0)))
    (cards / "big").mkdir()
    with (cards / "big" / BIG).open("wb") as fh:
        for _ in range(96):
            fh.write(os.urandom(1 << 20))
    subprocess.run(["chmod", "-R", "a+rX", str(cards)], check=True)
    st.inbox.mkdir()
    config = base / "bootstrap.toml"
    config.write_text(extra)
    for source in ("one", "two", "big"):
        done = subprocess.run([ARCHIVER, "--config", str(config), "--data-dir", str(st.data), "ingest",
                               str(cards / source)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    (base / "cases.csv").write_text(CASES)
    assert subprocess.run([ARCHIVER, "--config", str(config), "--data-dir", str(st.data), "cases", "import",
                           str(base / "cases.csv")], capture_output=True).returncode == 0
    st.daemon = DaemonProcess(base, st.data, [], [st.inbox], extra=extra)
    st.daemon.config.chmod(0o644)  # the people's clients read it to find the socket (whatever pytest's umask)
    assert (base / "run" / "archiver.sock").exists()
