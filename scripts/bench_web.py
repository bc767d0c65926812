"""The web view under load, on this machine: a case page with 50 recordings (the target: at most 200 ms; its first
view, which makes the 50 strips of frames, reported apart), and a card docking while 20 viewers stream recordings
with HTTP Range (the target: the ingest within 1.10x of the same ingest with nobody watching). A real `archiver web`
(as root: its password helper and a server as a throwaway service user), a throwaway user with a password, real
footage made by ffmpeg; the two ingests alternated in one run, medians of three, each into a data dir of its own,
the page cache dropped before each. The viewers stand for office PCs: their own reading runs in a process of its
own at the idle CPU policy, so that what is measured is the station's server, not the clients sharing its cores."""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from archiver.dock.simulate import RecorderSpec, make_recorder

ARCHIVER = str(Path(sys.executable).parent / "archiver")
CASE = "后叶罚〔2024〕50号"
PASSWORD = "bench horse 9"


def port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def run(env: dict, *args: str, cold: bool = False) -> float:
    if cold:
        drop_caches()
    began = time.perf_counter()
    done = subprocess.run([ARCHIVER, *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"archiver {' '.join(args)}: {done.stderr.strip()}")
    return time.perf_counter() - began


def session(base: str, user: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(base + "/login").read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"user": user, "password": PASSWORD, "csrf": csrf}).encode()
    opener.open(base + "/login", form).read()
    return opener


def stream(url: str, user: str, recording: str, viewers: int) -> None:
    """The viewers (`--stream`): each the whole recording, again and again, in ranges as a player asks, until
    stdin closes; then the bytes served, on stdout."""
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    served = [0] * viewers

    def viewer(index: int) -> None:
        mine = session(url, user)
        while True:
            request = urllib.request.Request(url + f"/media/{recording}", headers={"Range": "bytes=0-"})
            with mine.open(request) as response:
                while chunk := response.read(1 << 16):
                    served[index] += len(chunk)

    for i in range(viewers):
        threading.Thread(target=viewer, args=(i,), daemon=True).start()
    sys.stdin.read()
    print(sum(served))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--card-mib", type=int, default=600, help="the docked card's size")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stream", nargs=3, metavar=("URL", "USER", "RECORDING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream:
        return stream(*args.stream, args.viewers)
    if os.geteuid() != 0:
        raise SystemExit("run as root: the bench adds a throwaway user and drops the page cache")
    base = Path(os.environ.get("BENCH_DIR", "/var/tmp/archiver-bench")) / "web"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    base.chmod(0o755)
    tag = str(os.getpid() % 10000)
    user, svc, group = f"arcv-bweb-{tag}", f"arcv-bsvc-{tag}", f"arcv-bleg-{tag}"
    server = None
    try:
        subprocess.run(["groupadd", group], check=True)
        subprocess.run(["useradd", "-M", "-N", "-G", group, "-s", "/usr/sbin/nologin", user], check=True)
        subprocess.run(["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", svc], check=True)
        subprocess.run(["chpasswd"], input=f"{user}:{PASSWORD}\n", text=True, check=True)
        config = base / "archiver.toml"
        config.write_text(f'[access]\nservice_user = "{svc}"\ngroups = {{ legal = "{group}" }}\n')
        config.chmod(0o644)
        env = {**os.environ, "ARCHIVER_CONFIG": str(config), "ARCHIVER_DATA_DIR": str(base / "data")}
        # 50 recordings of one officer, one step covering them all
        make_recorder(base / "fifty", RecorderSpec(serial="TA00050", officer="JX0050", segments=50,
                                                   segment_seconds=2, audio=0, photos=0, device_files=False))
        run(env, "ingest", str(base / "fifty"))
        (base / "case.csv").write_text("案件编号,案件名称,执法环节,执法人员,开始时间,结束时间\n"
                                       f"{CASE},占道经营,调查取证,JX0050,2022-11-03 09:36,2022-11-03 09:40\n")
        run(env, "cases", "import", str(base / "case.csv"))
        # the card that docks, alone and while the viewers stream
        make_recorder(base / "card", RecorderSpec(serial="TB00001", officer="JX0060",
                                                  segments=max(1, args.card_mib // 60), segment_seconds=20,
                                                  bitrate="24M", audio=0, photos=0, device_files=False, noise=True))
        subprocess.run(["chown", "-R", svc, str(base / "data")], check=True)
        listen = port()
        url = f"http://127.0.0.1:{listen}"
        server = subprocess.Popen([ARCHIVER, "web", "--listen", f"127.0.0.1:{listen}"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=(base / "web.log").open("wb"))
        for _try in range(100):
            try:
                socket.create_connection(("127.0.0.1", listen), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        opener = session(url, user)
        page = url + "/cases/" + urllib.parse.quote(CASE)
        began = time.perf_counter()
        body = opener.open(page).read().decode()
        first = time.perf_counter() - began
        times = []
        for _i in range(30):
            began = time.perf_counter()
            body = opener.open(page).read().decode()
            times.append(time.perf_counter() - began)
        shown = body.count('href="/recordings/')
        print(f"case page with {shown} recordings: median {1000 * statistics.median(times):.0f} ms, "
              f"worst {1000 * max(times):.0f} ms over {len(times)} loads (target: at most 200 ms); "
              f"its first view, making the strips of frames: {1000 * first:.0f} ms")

        # a recording of the station to stream: archived before the viewers start
        big = re.search(r'href="/recordings/(\d+)"', body).group(1)
        alone, watched, served = [], [], 0
        for round_ in range(args.runs):
            alone.append(run({**env, "ARCHIVER_DATA_DIR": str(base / f"alone-{round_}")}, "ingest",
                             str(base / "card"), cold=True))
            viewers = subprocess.Popen([sys.executable, __file__, "--stream", url, user, big, "--viewers",
                                        str(args.viewers)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            time.sleep(1)
            watched.append(run({**env, "ARCHIVER_DATA_DIR": str(base / f"watched-{round_}")}, "ingest",
                               str(base / "card"), cold=True))
            served += int(viewers.communicate("")[0] or 0)
        size = sum(f.stat().st_size for f in (base / "card").rglob("*") if f.is_file())
        a, w = statistics.median(alone), statistics.median(watched)
        print(f"a card of {size / 2**20:.0f} MiB docking, medians of {args.runs}: alone {a:.2f} s "
              f"({', '.join(f'{t:.2f}' for t in alone)}); while {args.viewers} viewers streamed "
              f"{served / 2**20:.0f} MiB: {w:.2f} s ({', '.join(f'{t:.2f}' for t in watched)}) = {w / a:.2f}x "
              f"(target: at most 1.10x)")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        for name in (user, svc):
            subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", group], capture_output=True)


if __name__ == "__main__":
    main()
