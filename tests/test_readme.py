"""The README's five-minute tour, run as written (its own paths moved into a temporary folder) on a
fresh data dir: every output it shows (the `#   ` lines under a command) is what that command prints."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from pg_util import ENGINES
from s3_util import free_port

REPO = Path(__file__).resolve().parent.parent
MARK = "@@step@@"


def steps(heading: str) -> list[tuple[str, list[str]]]:
    """(command, the output lines the README shows for it) for each command of the first sh block under
    `heading`."""
    text = (REPO / "README.md").read_text()
    block = text.split(heading, 1)[1].split("```sh\n", 1)[1].split("\n```", 1)[0]
    found: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("#   "):
            found[-1][1].append(line[4:])
        elif line.strip() and not line.startswith("#"):
            found.append((line, []))
    return found


def run_and_compare(commands: list[tuple[str, list[str]]], moved: dict[str, str], env: dict[str, str]) -> None:
    """Run the commands in one bash, each path or value in `moved` replaced, and find every shown line,
    in order, in what its command printed (the replacements turned back)."""
    script = ["cd " + str(REPO), "exec 2>&1"]
    for command, _shown in commands:
        for old, new in moved.items():
            command = command.replace(old, new)
        script += [f"echo {MARK}", command]
    done = subprocess.run(["bash", "-c", "\n".join(script)], env=env, capture_output=True, text=True, timeout=600)
    outputs = done.stdout.split(MARK + "\n")[1:]
    assert len(outputs) == len(commands), done.stdout[-3000:]
    for (command, shown), output in zip(commands, outputs, strict=True):
        lines = output.splitlines()
        for old, new in moved.items():
            lines = [line.replace(new, old) for line in lines]
        at = 0
        for expected in shown:
            pattern = _pattern(expected)
            while at < len(lines) and not pattern.fullmatch(lines[at]):
                at += 1
            assert at < len(lines), f"{command!r} should print {expected!r}; it printed:\n{output}"
            at += 1


def _pattern(expected: str) -> re.Pattern[str]:
    """An expected line, with what changes from run to run left open: decimals and their binary units
    (sizes, seconds, rates), and whatever the README writes as '…' (a key)."""
    varying = r"\d+\.\d+(?: [KMGT]?i?B)?|…"
    parts = re.split(varying, expected.rstrip())
    found = re.findall(varying, expected.rstrip())
    open_ = [r".+?" if part == "…" else r"\d+\.\d+(?: [KMGT]?i?B)?" for part in found]
    body = re.escape(parts[0]) + "".join(gap + re.escape(part) for gap, part in zip(open_, parts[1:], strict=True))
    return re.compile(body + r"\s*")


def test_the_tour_in_the_readme_gives_what_the_readme_shows(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.fail("the tour mounts a card image: run the suite as root (scripts/test does)")
    tour = steps("## A five-minute tour")
    assert tour[0][0].startswith("scripts/test") and len(tour) > 15
    assert sum(len(shown) for _command, shown in tour) >= 20  # the tour shows what to expect
    # The tour's /tmp and /media become private folders; the daemon gets its own socket and mount root
    # (the station's own daemon may be running on this machine).
    media = tmp_path / "media"
    media.mkdir()
    config = tmp_path / "tour.toml"
    config.write_text(f'[dock]\nmount_roots = ["{media}"]\n[service]\nsocket = "{tmp_path}/tour.sock"\n')
    try:  # not scripts/test itself: it is what runs this
        run_and_compare(tour[1:], {"/tmp/": f"{tmp_path}/", "/media/": f"{media}/"},
                        _clean_env() | {"ARCHIVER_CONFIG": str(config)})
    finally:
        subprocess.run(["umount", "-l", str(media / "TB00002")], capture_output=True)


def test_the_county_demo_in_the_readme_gives_what_the_readme_shows():
    """Three stations, a centre on a real PostgreSQL, backups to a real radosgw: as the README says."""
    demo = steps("## Many stations, one county")
    assert len(demo) > 15 and sum(len(shown) for _command, shown in demo) >= 12
    # /tmp/county becomes a fresh folder the postgres user can reach; radosgw gets a free port.
    base = Path(tempfile.mkdtemp(prefix="arcv-county-", dir="/tmp"))
    base.chmod(0o755)
    try:
        run_and_compare(demo, {"/tmp/county": str(base), "7480": str(free_port())}, _clean_env())
    finally:
        subprocess.run([str(ENGINES), "rgw", "stop", str(base / "rgw")], capture_output=True)
        subprocess.run([str(ENGINES), "postgres", "kill", str(base / "pg")], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARCHIVER_", "LC_", "LANGUAGE", "AWS_"))}
    return env | {"LANG": "C.UTF-8"}
