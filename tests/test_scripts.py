"""The project's own scripts, run as a user would: make-recorder, run, and --help everywhere."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import click
from click.testing import CliRunner
from conftest import REPO

from archiver.cli import main


def _script(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "scripts" / name), *args], capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def test_make_recorder_then_run_ingests_the_inbox(tmp_path: Path):
    inbox = tmp_path / "inbox"
    made = _script("make-recorder", str(inbox / "card"), "--serial", "TC00003", "--officer", "JX0444",
                   "--segments", "2", "--segment-seconds", "2", "--audio", "0", "--photos", "1",
                   "--layout", "dcim", "--start", "2023-01-02T03:04:05")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("made 3 recordings")
    names = sorted(p.name for p in (inbox / "card/DCIM/100MEDIA").iterdir())
    assert names == ["TC00003_JX0444_20230102030405.MP4", "TC00003_JX0444_20230102030407.MP4",
                     "TC00003_JX0444_20230102030410.JPG"]

    config = tmp_path / "run.toml"
    config.write_text(f'[dock]\ninboxes = ["{inbox}"]\nmount_roots = ["{tmp_path / "no-mounts"}"]\n')
    data = tmp_path / "data"
    ran = _script("run", "--once", env={"ARCHIVER_CONFIG": str(config), "ARCHIVER_DATA_DIR": str(data)})
    assert ran.returncode == 0, ran.stderr
    assert f"drop recordings into: {inbox}" in ran.stderr
    assert f"{inbox}: 3 archived" in ran.stderr
    listed = subprocess.run([str(REPO / ".venv/bin/archiver"), "--data-dir", str(data), "recordings", "list",
                             "--json"], capture_output=True, text=True, env={**os.environ,
                                                                            "ARCHIVER_CONFIG": str(config)})
    assert {r["device_serial"] for r in json.loads(listed.stdout)} == {"TC00003"}


def test_every_command_has_help():
    ctx = click.Context(main)

    def walk(group, path):
        if not isinstance(group, click.Group):
            return
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            yield path + [name], command
            yield from walk(command, path + [name])

    commands = list(walk(main, []))
    assert len(commands) >= 30  # every lazily loaded group and command is reached
    for path, command in commands:
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0, path
        assert (command.help or "").strip(), f"{' '.join(path)} has no help text"


def test_progress_shows_on_a_terminal_and_not_in_pipes(card: Path, tmp_path: Path):
    env = {**os.environ, "ARCHIVER_DATA_DIR": str(tmp_path / "data"), "ARCHIVER_CONFIG": str(tmp_path / "c.toml"),
           "COLUMNS": "120"}
    (tmp_path / "c.toml").write_text("")
    command = f"{REPO / '.venv/bin/archiver'} ingest {card}"
    on_tty = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, env=env,
                            stdin=subprocess.DEVNULL, timeout=120)
    assert on_tty.returncode == 0, on_tty.stdout
    assert "ingest 6/6 files" in on_tty.stdout and "KiB" in on_tty.stdout
    piped = subprocess.run(command.split(), capture_output=True, text=True, env=env, timeout=120)
    assert piped.returncode == 0 and "files" not in piped.stderr and "\x1b[" not in piped.stdout


def test_scripts_run_installs_the_font_the_reports_name():
    """The HTML reports print in Chinese on the station itself: scripts/run installs the font they name, and that
    font is what this machine finds for the name."""
    installs = next(line for line in (REPO / "scripts/run").read_text().splitlines() if line.startswith("ensure_debs"))
    assert "fonts-wqy-zenhei" in installs.split("#")[0].split()
    for page in ("archiver/audit/annual_html.py", "archiver/cases/report.py"):
        assert 'font-family: "Noto Sans CJK SC", "WenQuanYi Zen Hei"' in (REPO / page).read_text()
    found = subprocess.run(["fc-match", "-f", "%{family}", "WenQuanYi Zen Hei"], capture_output=True, text=True)
    assert "WenQuanYi Zen Hei" in found.stdout


def test_a_closed_checkout_refuses_a_suite_copy_folder_another_user_made_first(tmp_path: Path):
    """scripts/test runs a checkout others cannot enter from /var/tmp/archiver-suite-<hash>, as root: a folder
    of that name made first by someone else (to plant code root would run) is refused, and nothing is copied."""
    import hashlib
    import shutil
    import tempfile

    if os.geteuid() != 0:
        import pytest
        pytest.skip("needs root: the copy is made only for root")
    closed = Path(tempfile.mkdtemp(prefix="archiver-closed-"))
    closed.chmod(0o700)
    clone = closed / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    shutil.copy2(REPO / "scripts" / "test", clone / "scripts" / "test")  # the script as it is here
    planted = Path(f"/var/tmp/archiver-suite-{hashlib.sha256(str(clone).encode()).hexdigest()[:12]}")
    planted.mkdir()
    try:
        os.chown(planted, 65534, 65534)  # nobody's
        env = {k: v for k, v in os.environ.items() if k != "ARCHIVER_SUITE_COPY"}  # this suite may run from one
        done = subprocess.run([str(clone / "scripts" / "test"), "-k", "nothing"], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=300, env=env)
        assert done.returncode == 2 and "is not root's own folder" in done.stderr
        assert list(planted.iterdir()) == []
    finally:
        shutil.rmtree(planted, ignore_errors=True)
        shutil.rmtree(closed, ignore_errors=True)
