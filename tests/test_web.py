"""The web view in a real browser: Playwright driving Debian's Chromium against a real `archiver web` (started as
root: its password helper keeps root, the server drops to the service user), real users with passwords checked
by PAM, and real footage made by ffmpeg."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import chromium
from runner import ARCHIVER

from archiver.dock.simulate import RecorderSpec, make_recorder

CASE = "后叶罚〔2022〕12号"
PASSWORD = "correct horse 7"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def site(card: Path):
    """A station's data dir owned by a throwaway service user, a legal officer and an officer with passwords, and
    the web view serving it on a free loopback port."""
    if os.geteuid() != 0:
        pytest.skip("needs root to add users")
    tag = f"{os.getpid() % 10000}"
    users = {who: f"arcv-w{who[:3]}-{tag}" for who in ("svc", "legal", "officer", "stranger", "boss")}
    groups = {"legal": f"arcv-gw-leg-{tag}", "officer": f"arcv-gw-off-{tag}", "admin": f"arcv-gw-adm-{tag}"}
    base = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="archiver-web-"))
    base.chmod(0o755)
    server = None
    try:
        for group in groups.values():
            subprocess.run(["groupadd", group], check=True)
        for who, user in users.items():
            extra = ["-G", groups[who]] if who in groups else \
                ["-G", f'{groups["admin"]},{groups["legal"]}'] if who == "boss" else []
            subprocess.run(["useradd", "-M", "-N", *extra, "-s", "/usr/sbin/nologin", user], check=True)
            subprocess.run(["chpasswd"], input=f"{user}:{PASSWORD}\n", text=True, check=True)
        config = base / "archiver.toml"
        config.write_text(f'[access]\nservice_user = "{users["svc"]}"\n'
                          f'groups = {{ legal = "{groups["legal"]}", officer = "{groups["officer"]}", '
                          f'admin = "{groups["admin"]}" }}\n'
                          f'officers = {{ "{users["officer"]}" = "JX0999" }}\n[web]\nidle_minutes = 0.15\n')
        config.chmod(0o644)
        env = {**os.environ, "ARCHIVER_CONFIG": str(config), "ARCHIVER_DATA_DIR": str(base / "data")}
        make_recorder(base / "other", RecorderSpec(serial="TA00555", officer="JX0555", segments=1, audio=0,
                                                   photos=0, device_files=False))
        for args in (["ingest", str(card)], ["ingest", str(base / "other")], ["cases", "import",
                     str(base / "cases.csv")], ["verify"]):
            if args[0] == "cases":
                (base / "cases.csv").write_text("案件编号,案件名称,当事人,执法环节,执法人员,开始时间,结束时间\n"
                                                f"{CASE},占道经营,王某,调查取证,JX0227,2022-11-03 09:36,"
                                                "2022-11-03 09:37\n")
            done = subprocess.run([str(ARCHIVER), *args], env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
        subprocess.run(["chown", "-R", users["svc"], str(base / "data")], check=True)
        port = _free_port()
        log = (base / "web.log").open("wb")
        server = subprocess.Popen([str(ARCHIVER), "web", "--listen", f"127.0.0.1:{port}"], env=env, stdout=log,
                                  stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert server.poll() is None, (base / "web.log").read_text()
                time.sleep(0.1)
        yield {"url": f"http://127.0.0.1:{port}", "users": users, "data": base / "data", "env": env,
               "log": base / "web.log", "config": config}
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        for user in users.values():
            subprocess.run(["userdel", user], capture_output=True)
        for group in groups.values():
            subprocess.run(["groupdel", group], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=shutil.which(chromium()),
                                      args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        yield launched
        launched.close()


def _login(browser, site, who: str, password: str = PASSWORD, lang: str = "en-US"):
    page = browser.new_context(locale=lang, extra_http_headers={"Accept-Language": lang}).new_page()
    page.goto(site["url"] + "/login")
    page.fill("input[name=user]", site["users"][who])
    page.fill("input[name=password]", password)
    _follow(page, "#login")
    return page


def _follow(page, selector: str, **click) -> None:
    """Click what leads to another page and wait for that page to load: a click returns once the next page has
    started, before its body is all there (a CI run found no player on a recording's page read that early)."""
    page.click(selector, **click)
    page.wait_for_load_state("load")


def _events(site, action: str) -> list[dict]:
    lines = (site["data"] / "custody.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["action"] == action]


def test_a_legal_officer_finds_a_case_sees_its_gap_and_plays_a_recording(site, browser):
    page = _login(browser, site, "legal")
    assert page.url.rstrip("/") == site["url"]
    page.fill("input[name=q]", "后叶罚[2022]12号")  # brackets as typed, not as stored
    _follow(page, "#search")
    _follow(page, f"text={CASE}")
    assert page.inner_text("#case").startswith(CASE)
    assert page.locator(".timeline .gap").count() >= 1  # the step runs to 09:37; footage ends at 09:36:33
    assert page.locator("img.thumbnail").count() == 3  # a strip of frames for each of the three videos
    assert page.evaluate("() => [...document.querySelectorAll('img.thumbnail')].every(i => i.naturalWidth > 0)")
    _follow(page, "a[href^='/recordings/']:has-text('#')", timeout=5000)
    assert page.locator("video#player").count() == 1, page.inner_text("body")
    page.evaluate("() => { const v = document.querySelector('video'); v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.querySelector('video').currentTime > 0.5", timeout=20000)
    views = _events(site, "view")
    assert views and views[-1]["actor"]["user"] == site["users"]["legal"]
    assert [e["actor"]["user"] for e in _events(site, "web_login")][-1] == site["users"]["legal"]


def test_an_officer_sees_only_their_own_and_anothers_recording_is_answered_as_missing(site, browser):
    page = _login(browser, site, "officer")
    page.goto(site["url"] + "/?q=后叶罚")
    assert page.locator("#cases a").count() == 0  # JX0999 acts in no case
    other = page.goto(site["url"] + "/recordings/1")
    missing = page.goto(site["url"] + "/recordings/99999")
    assert other.status == missing.status == 404
    shown, absent = page.goto(site["url"] + "/recordings/1").text(), page.goto(site["url"] + "/recordings/99999")
    assert "no recording with id or sha256 prefix 1" in shown and absent.status == 404
    assert page.goto(site["url"] + "/media/1").status == 404
    assert not [e for e in _events(site, "view") if e["actor"]["user"] == site["users"]["officer"]]
    sha = _events(site, "ingest")[0]["subject"]["sha256"]
    page.goto(site["url"] + "/?q=" + sha[:12])  # a search by another's sha256: nothing, as for none at all
    assert page.locator("#recordings").count() == 0
    legal = _login(browser, site, "legal")
    legal.goto(site["url"] + "/?q=" + sha[:12].upper())
    assert legal.locator("#recordings a[href^='/recordings/']").count() == 1


def test_forms_without_their_token_an_idle_session_and_guessed_passwords_are_refused(site, browser):
    page = _login(browser, site, "legal")
    forged = page.request.post(site["url"] + "/logout", form={"csrf": "guessed"})
    assert forged.status == 403
    time.sleep(9.5)  # web.idle_minutes = 0.15: nine seconds
    page.goto(site["url"] + "/")
    assert page.url.endswith("/login")
    for _attempt in range(5):
        wrong = _login(browser, site, "stranger", "not it")
        assert "wrong user name or password" in wrong.inner_text("#message")
    blocked = _login(browser, site, "stranger")  # the right password, after five wrong ones
    assert "too many failed logins" in blocked.inner_text("#message")
    assert len([e for e in _events(site, "web_login_failed") if e["subject"]["user"] ==
                site["users"]["stranger"]]) == 6


def test_the_pages_speak_chinese_to_a_chinese_browser(site, browser, tmp_path_factory):
    """Every page a legal officer opens, in zh_CN: no English word the CLI would translate; screenshots kept."""
    from test_i18n import _english_words

    page = _login(browser, site, "legal", lang="zh-CN")
    shots = tmp_path_factory.mktemp("web-screenshots")
    page.goto(site["url"] + "/?q=后叶罚")
    assert "搜索" in page.inner_text("body") and "当事人" in page.inner_text("#cases")
    pages = {"home": page.inner_text("body")}
    _follow(page, f"text={CASE}")
    pages["case"] = page.inner_text("body")
    page.screenshot(path=str(shots / "case-zh.png"), full_page=True)
    _follow(page, "a[href^='/recordings/']:has-text('#')")
    pages["recording"] = page.inner_text("body")
    page.goto(site["url"] + "/retention")
    pages["retention"] = page.inner_text("body")
    pages = {name: text.replace(site["users"]["legal"], "") for name, text in pages.items()}  # a name is a name
    english = {name: _english_words(text) for name, text in pages.items() if _english_words(text)}
    assert not english, english
    assert (shots / "case-zh.png").stat().st_size > 10_000


def test_a_listener_off_loopback_without_tls_is_refused(site):
    done = subprocess.run([str(ARCHIVER), "web", "--listen", "0.0.0.0:8481"], env=site["env"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "only with TLS" in done.stderr and done.stderr.count("\n") == 1


def test_the_server_runs_as_the_service_user_and_only_its_helper_keeps_root(site):
    pids = subprocess.run(["pgrep", "-f", "archiver web --listen 127.0.0.1"], capture_output=True, text=True)
    owners = {subprocess.run(["ps", "-o", "user=", "-p", pid], capture_output=True, text=True).stdout.strip()
              for pid in pids.stdout.split()}
    assert owners == {"root", site["users"]["svc"]}, owners


def test_a_second_person_approves_a_purge_in_the_browser_and_the_requester_cannot(site, browser):
    """The boss (admin and legal) requests a purge of the unlinked footage; in the browser the boss's own approval
    is refused, the legal officer's goes through."""
    from archiver.archive.workspace import open_workspace
    from archiver.config import load_config
    from archiver.operations.access import person_for
    from archiver.operations.core import Context, run

    cfg = load_config(site["config"], site["data"])
    ws = open_workspace(cfg, upgrade=False)
    try:
        ctx = Context(cfg, person_for(site["users"]["boss"], cfg.access), lambda _upgrade: ws)
        made = run(ctx, "retention purge", {"make_request": True})
    finally:
        ws.close()
    subprocess.run(["chown", "-R", site["users"]["svc"], str(site["data"])], check=True)
    assert made["recordings"] >= 1
    own = _login(browser, site, "boss")
    own.goto(site["url"] + "/retention")
    _follow(own, "button.approve")
    assert f"requested purge {made['id']}" in own.inner_text("#message")
    token = own.get_attribute("input[name=csrf]", "value")  # a hand-made form: a plain refusal, no traceback
    assert own.request.post(site["url"] + "/retention", form={"csrf": token, "request": "x1"}).status == 404
    other = _login(browser, site, "legal")
    other.goto(site["url"] + "/retention")
    _follow(other, "button.approve")
    assert f"purge request {made['id']} approved" in other.inner_text("#message")
    (approval,) = [e for e in _events(site, "purge_approve") if e["subject"]["request"] == made["id"]]
    assert approval["actor"]["user"] == site["users"]["legal"]


def test_an_auditor_page_and_the_year_render_and_are_kept_as_screenshots(site, browser, tmp_path_factory):
    """The year's figures and the custody trail as the pages show them (PNG kept as test artefacts); an officer
    is refused the year, as by the CLI."""
    shots = tmp_path_factory.mktemp("web-year")
    page = _login(browser, site, "legal")
    year = page.goto(site["url"] + "/year/2022")
    assert year.status == 200 and "Recordings per month" in page.inner_text("body")
    page.screenshot(path=str(shots / "year.png"), full_page=True)
    assert (shots / "year.png").stat().st_size > 10_000
    assert page.goto(site["url"] + "/custody").status == 403  # the custody trail is the auditor's and admin's
    admin = _login(browser, site, "boss")
    trail = admin.goto(site["url"] + "/custody")
    assert trail.status == 200 and "web_login" in admin.inner_text("#custody")
    state = admin.goto(site["url"] + "/state")  # the verify state (the fixture ran one) and the backup targets
    assert state.status == 200 and "ok: " in admin.inner_text("#verify")
    assert page.goto(site["url"] + "/state").status == 403  # not the legal officer's to see, as `status`
    admin.goto(site["url"] + "/recordings/1")  # a recording's own trail: its events alone
    sha = admin.inner_text("code").strip()
    rows = admin.locator("#custody tr").all_inner_texts()[1:]
    assert len(rows) >= 2 and all(sha in row for row in rows) and "ingest" in rows[0]
    page.goto(site["url"] + "/recordings/1")
    assert page.locator("#custody").count() == 0  # not the legal officer's
    assert page.goto(site["url"] + "/holds").status == 200 and page.locator("#holds").count() == 1
    officer = _login(browser, site, "officer")
    assert officer.goto(site["url"] + "/year/2022").status == 403
    assert "may not run 'report year'" in officer.inner_text("#message")


def test_a_download_is_a_retrieval_with_its_reason(site, browser):
    page = _login(browser, site, "legal")
    page.goto(site["url"] + "/recordings/1")
    page.fill("input[name=reason]", "复议材料")
    with page.expect_download() as caught:
        page.click("#download")
    kept = caught.value.path()
    (event,) = [e for e in _events(site, "retrieve") if e["details"]["reason"] == "复议材料"]
    assert event["actor"]["user"] == site["users"]["legal"]
    assert hashlib.sha256(Path(kept).read_bytes()).hexdigest() == event["subject"]["sha256"]
    officer = _login(browser, site, "officer")  # with the session's own token: refused by the role, not the form
    token = officer.get_attribute("input[name=csrf]", "value")
    refused = officer.request.post(site["url"] + "/download/1", form={"reason": "x", "csrf": token})
    assert refused.status == 403 and "may not run &#39;recordings get&#39;" in refused.text()


def test_a_legal_officer_places_and_lifts_a_case_hold_in_the_browser(site, browser):
    page = _login(browser, site, "legal")
    page.goto(site["url"] + "/cases/" + CASE)
    page.fill("input[name=reason]", "行政复议")
    _follow(page, "#hold")
    assert "1 hold(s) placed" in page.inner_text("#message") and CASE in page.inner_text("#holds")
    (placed,) = [e for e in _events(site, "hold_add") if e["details"]["reason"] == "行政复议"]
    assert placed["actor"]["user"] == site["users"]["legal"]
    page.fill("#holds input[name=reason]", "复议已决")
    _follow(page, "button.lift")
    assert "1 hold(s) lifted" in page.inner_text("#message") and CASE not in page.inner_text("#holds")
    officer = _login(browser, site, "officer")
    token = officer.get_attribute("input[name=csrf]", "value")
    refused = officer.request.post(site["url"] + "/holds", form={"csrf": token, "case_no": CASE, "reason": "x"})
    assert refused.status == 403


def test_the_daemon_starts_the_web_view_as_its_child_below_the_ingest_and_stops_it(site):
    """`web.with_daemon`: the daemon's child serves the pages, checks passwords with its helper as root, runs as
    the service user at nice 10, and is gone when the daemon stops."""
    import http.cookiejar
    import re
    import urllib.parse
    import urllib.request

    from daemon_util import DaemonProcess, wait_for
    base = site["data"].parent
    data = base / "daemon-data"
    subprocess.run(["cp", "-a", str(site["data"]), str(data)], check=True)
    port = _free_port()
    extra = site["config"].read_text().replace("[web]\n", f'[web]\nlisten = "127.0.0.1:{port}"\nwith_daemon = true\n')
    daemon = DaemonProcess(base, data, [base / "no-mounts"], extra=extra)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(url + "/login"), 30, "the web view")
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        csrf = re.search(r'name="csrf" value="([^"]+)"', opener.open(url + "/login").read().decode()).group(1)
        form = {"user": site["users"]["legal"], "password": PASSWORD, "csrf": csrf}
        home = opener.open(url + "/login", urllib.parse.urlencode(form).encode()).read().decode()
        assert 'name="q"' in home and "browse the archive at: http://127.0.0.1" in daemon.log()
        (child,) = subprocess.run(["pgrep", "-P", str(daemon.proc.pid)], capture_output=True,
                                  text=True).stdout.split()
        fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(fields[16]) == 10  # nice, as the unit's Nice=10
        assert subprocess.run(["ps", "-o", "user=", "-p", child], capture_output=True,
                              text=True).stdout.strip() == site["users"]["svc"]
        assert daemon.stop() == 0
        assert not Path(f"/proc/{child}").exists() and not _answers(url + "/login")
    finally:
        daemon.stop()


def _answers(url: str) -> bool:
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def test_the_daemons_web_child_is_started_again_when_it_ends_and_stopped_with_the_daemon(tmp_path: Path):
    import threading

    from daemon_util import wait_for

    from archiver.dock.child import WebChild
    starts = tmp_path / "starts"
    stop = threading.Event()
    child = WebChild(stop, ["sh", "-c", f"echo started >> {starts}; exit 3"], restart_after_s=0.05)
    child.start()
    wait_for(lambda: starts.exists() and len(starts.read_text().splitlines()) >= 3, 10, "three starts")
    stop.set()
    child.stop()
    counted = len(starts.read_text().splitlines())
    time.sleep(0.2)
    assert len(starts.read_text().splitlines()) == counted  # none after the stop

    stop = threading.Event()
    child = WebChild(stop, ["sleep", "60"])
    child.start()
    wait_for(lambda: child._proc is not None, 10, "the child")
    began = time.monotonic()
    stop.set()
    child.stop()
    assert child._proc.poll() is not None and time.monotonic() - began < 5
