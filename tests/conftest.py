"""Shared fixtures: real media made once by ffmpeg, real folders, real mounts, a real SQLite catalog."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from archiver.archive.copying import DEEP
from archiver.cli import main
from archiver.dock.simulate import RecorderSpec, make_recorder

REPO = Path(__file__).resolve().parent.parent

# Every `archiver` the tests start speaks English unless a test asks otherwise (tests/test_i18n.py does),
# whatever the locale of the machine running the suite.
for _name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
    os.environ.pop(_name, None)
os.environ["LANG"] = "C.UTF-8"


# The files that take longest, longest first (seconds on this 2-core machine, `--durations=0`, summed per file):
# scripts/test hands files to its workers in this order (`--no-loadscope-reorder`), so no long file starts last
# and keeps one worker busy while the others idle.
LONGEST_FIRST = ("test_service.py", "test_web.py", "test_readme.py", "test_faults.py", "test_dock.py",
                 "test_central.py", "test_s3.py", "test_i18n.py", "test_attacks.py", "test_retention.py",
                 "test_backup.py", "test_ingest.py", "test_security.py", "test_report.py", "test_cases.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's own order is kept


@pytest.fixture(scope="session")
def card(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated recorder card (3 video segments, 1 audio, 2 photos, device files), made once."""
    root = tmp_path_factory.mktemp("card")
    make_recorder(root, RecorderSpec())
    return root


@pytest.fixture
def recorder(card: Path, tmp_path: Path) -> Path:
    """A private copy of the card (bytes and mtimes kept) that a test may change."""
    dest = tmp_path / "recorder"
    shutil.copytree(card, dest, symlinks=True)
    return dest


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def cli(data_dir: Path, tmp_path: Path):
    """Run the real `archiver` command in-process against `data_dir`, with no system config."""
    empty = tmp_path / "empty.toml"
    empty.write_text("")

    def run(*args: str, config: Path | None = None, data: Path | None = None) -> Result:
        env = {"ARCHIVER_DATA_DIR": str(data or data_dir), "ARCHIVER_CONFIG": str(config or empty)}
        return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)

    return run


def tree_state(root: Path) -> dict[str, tuple]:
    """Every entry under root (not following symlinks): type, bytes' sha256, size, mtime_ns, mode."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                state[rel] = ("file", digest, st.st_size, st.st_mtime_ns, st.st_mode)
            elif stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", os.readlink(path), st.st_mtime_ns)
            else:
                state[rel] = ("dir", st.st_mtime_ns, st.st_mode)
    return state


def files_state(root: Path) -> dict[str, tuple]:
    """tree_state without folders (whose mtimes move when temp files come and go)."""
    return {k: v for k, v in tree_state(root).items() if v[0] != "dir"}


def archive_problems(data_dir: Path) -> list[str]:
    """Everything that would make archive and catalog disagree; empty when consistent. A purged
    recording (a tombstone) must be gone from the archive and from its day's manifests."""
    import sqlite3

    problems = []
    db = sqlite3.connect(data_dir / "catalog.db")
    rows = db.execute("select archive_path, sha256, size from recordings where purged_at is null").fetchall()
    for (rel,) in db.execute("select archive_path from recordings where purged_at is not null"):
        if (data_dir / rel).exists():
            problems.append(f"purged but still there {rel}")
    db.close()
    catalogued = set()
    for rel, sha256, size in rows:
        path = data_dir / rel
        catalogued.add(rel)
        if not path.is_file():
            problems.append(f"missing {rel}")
            continue
        if hashlib.sha256(path.read_bytes()).hexdigest() != sha256 or path.stat().st_size != size:
            problems.append(f"mismatch {rel}")
        if path.stat().st_mode & 0o227:
            problems.append(f"writable or world-readable {rel}")
    for path in (data_dir / "archive").rglob("*"):
        rel = str(path.relative_to(data_dir))
        if path.name.startswith(".tmp-"):
            problems.append(f"temp left {rel}")
        elif path.is_file() and not path.name.startswith("manifest-") and rel not in catalogued:
            problems.append(f"not catalogued {rel}")
    for manifest in (data_dir / "archive").rglob("manifest-sha256.txt"):
        check = subprocess.run(["sha256sum", "--quiet", "-c", manifest.name], cwd=manifest.parent,
                               capture_output=True, text=True)
        if check.returncode != 0:
            problems.append(f"manifest {manifest}: {check.stdout}{check.stderr}")
    return problems


def chromium() -> str:
    """Headless Chromium, to screenshot the HTML reports."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    pytest.fail("chromium is missing: scripts/test installs Debian's chromium")


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def umount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator:
    """Mount tmpfs filesystems of a given size (or ramfs: unbounded, and no O_DIRECT); all are unmounted at the
    end of the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    mounted: list[Path] = []

    def make(name: str, size: str, fstype: str = "tmpfs") -> Path:
        target = tmp_path / name
        target.mkdir(parents=True, exist_ok=True)
        options = "mode=0755" if fstype == "ramfs" else f"size={size},mode=0755"  # a disk root: not 1777
        mount("-t", fstype, "-o", options, fstype, str(target))
        mounted.append(target)
        return target

    yield make
    for target in reversed(mounted):
        umount(target)


# -- backups: real age keys, two targets --------------------------------------------------
def _age_keygen(path: Path) -> str:
    if not shutil.which("age-keygen"):
        pytest.fail("age is missing: scripts/test installs Debian's age")
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    return subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, object]:
    office, escrow = tmp_path / "office.key", tmp_path / "escrow.key"
    return {"office": office, "escrow": escrow, "recipients": [_age_keygen(office), _age_keygen(escrow)]}


@pytest.fixture
def backed(cli, recorder: Path, tmp_path: Path, keys):
    """A data dir with the card ingested and a config with two targets and two recipients."""
    targets = [tmp_path / "t1", tmp_path / "t2"]
    for t in targets:
        t.mkdir()
    config = tmp_path / "backup.toml"
    config.write_text(f"[backup]\ntargets = {[str(t) for t in targets]!r}\nrecipients = {keys['recipients']!r}\n")
    assert cli("ingest", recorder).exit_code == 0

    def run(*args):
        return cli(*args, config=config)

    return {"run": run, "targets": targets, "config": config, **keys}


def padded_recording(small: Path, dest: Path) -> Path:
    """`small` (a real MP4) with a `free` box after its own: the same media, as big as a deep copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    pad = DEEP + 4096
    dest.write_bytes(small.read_bytes() + pad.to_bytes(4, "big") + b"free" + bytes(pad - 8))
    return dest
