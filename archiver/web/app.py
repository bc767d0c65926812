"""The web view's pages: a Starlette app over the operations. Every page runs operations as the logged-in person
(`operations.core.run`), so who may see what is decided where it is for the CLI and the service; the pages
hold no rule and no SQL. Playback streams the archived file itself with HTTP Range; its start is a custody
`view` event."""

from __future__ import annotations

import logging
import mimetypes
import os
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from archiver.errors import ArchiverError, InternalError, NotFoundError, RefusedError
from archiver.i18n import CHINESE, ENGLISH, N_, _, speaking
from archiver.i18n.words import word
from archiver.operations.access import person_for
from archiver.operations.core import Context, run
from archiver.web.auth import PasswordChecker
from archiver.web.sessions import RateLimit, Sessions, plain

log = logging.getLogger(__name__)
COOKIE = "archiver_session"
LOGIN_COOKIE = "archiver_login"
CHUNK = 256 << 10
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_RECORDING = re.compile(r"\d{1,18}|[0-9a-fA-F]{8,64}")
# The words of the templates (translated where they are shown, as the CLI's are).
PAGE_WORDS = (N_("Evidence archive"), N_("Search"), N_("Purge requests"), N_("Log out"), N_("User"), N_("Password"),
              N_("Log in"), N_("Case number, party, officer or recording"), N_("Recording"), N_("covered"),
              N_("Approve"), N_("Custody trail"), N_("Download"), N_("Archive state"), N_("Holds"), N_("last verify"),
              N_("Target"), N_("Objects"), N_("Not backed up"), N_("Placed by"), N_("Place a hold"), N_("Lift"))


class WebView:
    def __init__(self, ws: Any, checker: PasswordChecker, idle_s: float, secure: bool) -> None:
        self.ws, self.checker, self.secure = ws, checker, secure
        self.sessions, self.limit = Sessions(idle_s), RateLimit()
        self.templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                                     autoescape=select_autoescape(["html"]))
        self.templates.globals.update(_=lambda text: _(text), word=word)

    # -- plumbing ---------------------------------------------------------------------------------
    def language(self, request: Request) -> str:
        return CHINESE if request.headers.get("accept-language", "").lower().startswith("zh") else ENGLISH

    def page(self, request: Request, template: str, code: int = 200, **values: Any) -> HTMLResponse:
        html = self.templates.get_template(template).render(lang="zh-CN" if self.language(request) == CHINESE
                                                            else "en", **values)
        return HTMLResponse(html, status_code=code, headers={"Cache-Control": "no-store",
                                                             "Content-Security-Policy": "default-src 'self'; "
                                                                                        "img-src 'self' data:"})

    def call(self, user: str, name: str, args: dict[str, Any]) -> tuple[Any, Context]:
        ctx = Context(self.ws.cfg, person_for(user, self.ws.cfg.access), lambda _upgrade: self.ws)
        return run(ctx, name, args), ctx

    def person(self, request: Request) -> Any:
        return self.sessions.get(request.cookies.get(COOKIE), time.monotonic())

    def event(self, user: str, action: str, details: dict[str, Any]) -> None:
        actor = {"user": user, "uid": None, "role": "web"}
        self.ws.custody.as_actor(actor).append(action, {"user": user}, details)

    def app(self) -> Starlette:
        routes = [Route("/login", self.login, methods=["GET", "POST"]), Route("/logout", self.logout, methods=["POST"]),
                  Route("/", self.home), Route("/cases/{case_no:path}", self.case),
                  Route("/recordings/{ref}", self.recording), Route("/media/{ref}", self.media),
                  Route("/download/{ref}", self.download, methods=["POST"]),
                  Route("/retention", self.retention, methods=["GET", "POST"]), Route("/year/{year:int}", self.year),
                  Route("/custody", self.custody), Route("/state", self.state),
                  Route("/holds", self.holds, methods=["GET", "POST"])]
        return Starlette(routes=routes)

    async def _guard(self, request: Request, handler) -> Response:
        with speaking(self.language(request)):
            session = self.person(request)
            if session is None:
                return RedirectResponse("/login", status_code=303)
            if request.method == "POST":
                form = await request.form()
                if not form.get("csrf") or form.get("csrf") != session.csrf:
                    return self.page(request, "error.html", 403, session=session,
                                     message=_("this form is out of date (its token does not match): open the page "
                                               "again"))
                request.state.form = form
            try:
                return await handler(request, session)
            except NotFoundError as exc:
                return self.page(request, "error.html", 404, session=session, message=str(exc))
            except RefusedError as exc:
                return self.page(request, "error.html", 403, session=session, message=str(exc))
            except InternalError as exc:  # a bug: its traceback in the log, one line on the page
                log.error("web page failed path=%s", request.url.path, exc_info=exc)
                return self.page(request, "error.html", 500, session=session, message=str(exc))
            except ArchiverError as exc:
                return self.page(request, "error.html", 400, session=session, message=str(exc))

    # -- login ------------------------------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        with speaking(self.language(request)):
            if request.method == "GET":
                token = os.urandom(16).hex()
                response = self.page(request, "login.html", csrf=token, message=None)
                response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=self.secure)
                return response
            form = await request.form()
            user, password = plain(form.get("user")), str(form.get("password") or "")
            address = request.client.host if request.client else "?"
            keys, now = [f"user:{user}", f"address:{address}"], time.monotonic()
            if not form.get("csrf") or form.get("csrf") != request.cookies.get(LOGIN_COOKIE):
                return self.page(request, "login.html", 403, csrf="", message=_(
                    "this form is out of date (its token does not match): open the page again"))
            if self.limit.blocked(keys, now):
                self.event(user, "web_login_failed", {"address": address, "why": "rate limit"})
                return self.page(request, "login.html", 429, csrf=form.get("csrf"), message=_(
                    "too many failed logins: wait a few minutes and try again"))
            try:
                person = person_for(user, self.ws.cfg.access)
            except KeyError:
                person = None
            if person is None or not self.checker.check(user, password) or not person.roles:
                self.limit.failed(keys, now)
                self.event(user, "web_login_failed", {"address": address})
                return self.page(request, "login.html", 401, csrf=form.get("csrf"), message=_(
                    "wrong user name or password, or no archiver role"))
            self.limit.passed(keys)
            token, _session = self.sessions.open(user, now)
            self.event(user, "web_login", {"address": address, "roles": list(person.roles)})
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=self.secure)
            response.delete_cookie(LOGIN_COOKIE)
            return response

    async def logout(self, request: Request) -> Response:
        async def handler(request: Request, session) -> Response:
            self.sessions.drop(request.cookies.get(COOKIE))
            self.event(session.user, "web_logout", {})
            response = RedirectResponse("/login", status_code=303)
            response.delete_cookie(COOKIE)
            return response
        return await self._guard(request, handler)

    def _recording(self, user: str, text: str) -> list[dict[str, Any]]:
        """A search text that names a recording (#id, id, or a sha256 prefix): that recording, if the person may
        see it; another's is answered as one that does not exist, with nothing shown."""
        ref = text.lstrip("#＃")
        if not _RECORDING.fullmatch(ref):
            return []
        try:
            return [self.call(user, "recordings show", {"ref": ref})[0]]
        except NotFoundError:
            return []

    # -- pages ------------------------------------------------------------------------------------------
    async def home(self, request: Request) -> Response:
        async def handler(request: Request, session) -> Response:
            text = plain(request.query_params.get("q"))
            found, _ctx = self.call(session.user, "cases search" if text else "cases list",
                                    {"text": text} if text else {})
            return self.page(request, "home.html", session=session, q=text, cases=found,
                             recordings=self._recording(session.user, text))
        return await self._guard(request, handler)

    async def case(self, request: Request) -> Response:
        async def handler(request: Request, session) -> Response:
            data, _ctx = self.call(session.user, "cases show", {"case_no": request.path_params["case_no"],
                                                                "thumbnails": True})
            for action in data["actions"]:
                action["bars"] = _bars(action)
            return self.page(request, "case.html", session=session, case=data)
        return await self._guard(request, handler)

    async def recording(self, request: Request) -> Response:
        async def handler(request: Request, session) -> Response:
            data, ctx = self.call(session.user, "recordings show", {"ref": request.path_params["ref"]})
            trail = None
            if ctx.actor.may("custody show"):  # its own custody trail, for auditors and admins
                found, _ctx = self.call(session.user, "custody show", {"recording": str(data["id"])})
                trail = _trail(found)
            return self.page(request, "recording.html", session=session, rec=data, events=trail)
        return await self._guard(request, handler)

    async def retention(self, request: Request) -> Response:
        async def handler(request: Request, session) -> Response:
            message = None
            if request.method == "POST":
                wanted = plain(request.state.form.get("request"))
                if not wanted.isdigit():  # a hand-made form: answered as a request that does not exist
                    raise NotFoundError(_("no purge request {id}").format(id=wanted[:20]))
                done, _ctx = self.call(session.user, "retention approve", {"request_id": int(wanted)})
                message = _("purge request {id} approved: {count} recording(s)").format(
                    id=done["id"], count=done["recordings"])
            rows, _ctx = self.call(session.user, "retention requests", {})
            return self.page(request, "retention.html", session=session, requests=rows, message=message)
        return await self._guard(request, handler)

    async def download(self, request: Request) -> Response:
        """A copy to keep: a retrieval, with its reason, as `recordings get` (readers only)."""
        async def handler(request: Request, session) -> Response:
            reason = plain(request.state.form.get("reason"))
            done, ctx = self.call(session.user, "recordings get", {"refs": [request.path_params["ref"]],
                                                                    "reason": reason, "dest": "web download"})
            (item,) = done
            handed = ctx.handbacks[0]
            headers = {"Content-Disposition": f'attachment; filename="{item["name"]}"',
                       "Cache-Control": "no-store"}
            size = item["size"]

            def chunks():
                try:
                    at = 0
                    while at < size and (data := os.pread(handed.fd, CHUNK, at)):
                        at += len(data)
                        yield data
                finally:
                    os.close(handed.fd)
            return StreamingResponse(chunks(), headers={**headers, "Content-Length": str(size)},
                                     media_type="application/octet-stream")
        return await self._guard(request, handler)

    async def year(self, request: Request) -> Response:
        async def handler(request: Request, session) -> Response:
            done, _ctx = self.call(session.user, "report year", {"year": request.path_params["year"], "html": True})
            return HTMLResponse(done["html"], headers={"Cache-Control": "no-store",
                                                       "Content-Security-Policy": "default-src 'none'; "
                                                                                  "style-src 'unsafe-inline'"})
        return await self._guard(request, handler)

    async def state(self, request: Request) -> Response:
        """The archive's state: counts, the last verify and its result, the backup targets (auditor, admin)."""
        async def handler(request: Request, session) -> Response:
            status, _ctx = self.call(session.user, "status", {})
            targets, _ctx = self.call(session.user, "backup status", {})
            return self.page(request, "state.html", session=session, state=status, targets=targets)
        return await self._guard(request, handler)

    async def holds(self, request: Request) -> Response:
        """The standing holds; a case's hold placed or lifted, with its reason (legal, admin, as `hold add|remove`)."""
        async def handler(request: Request, session) -> Response:
            message = None
            if request.method == "POST":
                form = request.state.form
                lift = form.get("do") == "lift"
                done, _ctx = self.call(session.user, "hold remove" if lift else "hold add",
                                       {"refs": [], "case_no": plain(form.get("case_no")),
                                        "reason": plain(form.get("reason"))})
                message = (_("{count} hold(s) lifted") if lift else _("{count} hold(s) placed")).format(
                    count=done["lifted" if lift else "placed"])
            rows, _ctx = self.call(session.user, "hold list", {})
            return self.page(request, "holds.html", session=session, holds=rows, message=message)
        return await self._guard(request, handler)

    async def custody(self, request: Request) -> Response:
        async def handler(request: Request, session) -> Response:
            found, _ctx = self.call(session.user, "custody show", {"user": plain(request.query_params.get("user"))
                                                                   or None})
            return self.page(request, "custody.html", session=session, events=_trail(found)[-500:])
        return await self._guard(request, handler)

    async def media(self, request: Request) -> Response:
        async def handler(request: Request, session) -> Response:
            ref = request.path_params["ref"]
            if not ref.isdigit():
                raise NotFoundError(_("no recording with id or sha256 prefix {ref}: see 'archiver recordings "
                                      "list'").format(ref=ref))
            held = session.playing.get(int(ref))
            if held is None:  # a playback start: the operation decides, and records the view
                done, ctx = self.call(session.user, "recordings view", {"ref": ref})
                handed = ctx.handbacks[0]
                held = session.playing[int(ref)] = (handed.fd, done["size"],
                                                    mimetypes.guess_type(done["name"])[0] or "application/octet-stream")
            return _ranged(request, *held)
        return await self._guard(request, handler)


def _bars(action: dict[str, Any]) -> list[dict[str, Any]]:
    """The covered stretches and the gaps of an action as fractions of its window, for its timeline."""
    start, end = datetime.fromisoformat(action["start"]), datetime.fromisoformat(action["end"])
    span = max((end - start).total_seconds(), 1)

    def place(a: str, b: str) -> tuple[float, float]:
        left = max(0.0, (datetime.fromisoformat(a) - start).total_seconds() / span)
        right = min(1.0, (datetime.fromisoformat(b) - start).total_seconds() / span)
        return round(100 * left, 2), round(100 * max(0.0, right - left), 2)

    bars = [{"kind": "gap", "x": x, "w": w, "start": g["start"], "end": g["end"]}
            for g in action["gaps"] for x, w in [place(g["start"], g["end"])]]
    return bars


def _ranged(request: Request, fd: int, size: int, mime: str) -> Response:
    """The file (an open descriptor) or the byte range asked for."""
    first, last = 0, size - 1
    status = 200
    asked = _RANGE.match(request.headers.get("range", ""))
    if asked and (asked.group(1) or asked.group(2)):
        if asked.group(1):
            first = int(asked.group(1))
            last = min(int(asked.group(2)), size - 1) if asked.group(2) else size - 1
        else:
            first = max(0, size - int(asked.group(2)))
        if first > last or first >= size:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        status = 206

    def chunks():
        at = first
        while at <= last:
            data = os.pread(fd, min(CHUNK, last - at + 1), at)
            if not data:
                return
            at += len(data)
            yield data

    headers = {"Accept-Ranges": "bytes", "Content-Length": str(last - first + 1), "Cache-Control": "no-store"}
    if status == 206:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return StreamingResponse(chunks(), status_code=status, headers=headers, media_type=mime)


def _trail(found: dict[str, Any]) -> list[dict[str, Any]]:
    """`custody show`'s events, each with the local time and the user shown."""
    return [{**event, **shown} for event, shown in zip(found["events"], found["shown"], strict=True)]
