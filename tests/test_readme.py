"""The README's five-minute tour, run as written (its own paths moved into a temporary folder) on a
fresh data dir: every output it shows (the `#   ` lines under a command) is what that command prints."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MARK = "@@step@@"


def tour() -> list[tuple[str, list[str]]]:
    """(command, the output lines the README shows for it) for each command of the tour."""
    text = (REPO / "README.md").read_text()
    block = text.split("## A five-minute tour", 1)[1].split("```sh\n", 1)[1].split("\n```", 1)[0]
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("#   "):
            steps[-1][1].append(line[4:])
        elif line.strip() and not line.startswith("#"):
            steps.append((line, []))
    return steps


def _pattern(expected: str) -> re.Pattern[str]:
    """An expected line, with what changes from run to run (sizes, seconds, rates: decimals and their
    binary units) left open."""
    varying = r"\d+\.\d+(?: [KMGT]?i?B)?"
    parts = re.split(varying, expected.rstrip())
    return re.compile(varying.join(re.escape(p) for p in parts) + r"\s*")


def test_the_tour_in_the_readme_gives_what_the_readme_shows(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.fail("the tour mounts a card image: run the suite as root (scripts/test does)")
    steps = tour()
    assert steps[0][0].startswith("scripts/test") and len(steps) > 15
    assert sum(len(shown) for _command, shown in steps) >= 20  # the tour shows what to expect
    # The tour's /tmp and /media become private folders; the daemon gets its own socket and mount root
    # (the station's own daemon may be running on this machine).
    media = tmp_path / "media"
    media.mkdir()
    config = tmp_path / "tour.toml"
    config.write_text(f'[dock]\nmount_roots = ["{media}"]\n[service]\nsocket = "{tmp_path}/tour.sock"\n')
    script = ["cd " + str(REPO), "exec 2>&1"]
    for command, _shown in steps[1:]:  # not scripts/test itself: it is what runs this
        moved = command.replace("/tmp/", f"{tmp_path}/").replace("/media/", f"{media}/")
        script += [f"echo {MARK}", moved]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARCHIVER_", "LC_", "LANGUAGE"))}
    env |= {"LANG": "C.UTF-8", "ARCHIVER_CONFIG": str(config)}
    try:
        done = subprocess.run(["bash", "-c", "\n".join(script)], env=env, capture_output=True, text=True,
                              timeout=600)
    finally:
        subprocess.run(["umount", "-l", str(media / "TB00002")], capture_output=True)
    outputs = done.stdout.split(MARK + "\n")[1:]
    assert len(outputs) == len(steps) - 1, done.stdout[-3000:]
    for (command, shown), output in zip(steps[1:], outputs, strict=True):
        lines = [line.replace(str(tmp_path) + "/", "/tmp/") for line in output.splitlines()]
        at = 0
        for expected in shown:
            pattern = _pattern(expected)
            while at < len(lines) and not pattern.fullmatch(lines[at]):
                at += 1
            assert at < len(lines), f"{command!r} should print {expected!r}; it printed:\n{output}"
            at += 1
