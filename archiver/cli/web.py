"""`archiver web`: the web view's process."""

from __future__ import annotations

import ipaddress
import logging
import os

import click

from archiver.cli import App, log_to_stderr
from archiver.cli.localized import Command
from archiver.errors import ConfigError
from archiver.i18n import _

_IOPRIO_SET = {"x86_64": 251, "aarch64": 30}  # the ioprio_set system call's number


def _below_ingest() -> None:
    """CPU and disk below the ingest: nice 10 and the idle I/O class (the unit sets both too)."""
    import ctypes
    import platform

    try:
        os.nice(10)
    except OSError:
        pass
    number = _IOPRIO_SET.get(platform.machine())
    if number is not None:  # ioprio_set(IOPRIO_WHO_PROCESS, this process, IOPRIO_CLASS_IDLE)
        ctypes.CDLL(None, use_errno=True).syscall(number, 1, 0, 3 << 13)


@click.command(cls=Command)
@click.option("--listen", metavar="HOST:PORT", help="Where to listen (default: web.listen, 127.0.0.1:8480).")
@click.pass_obj
def web(app: App, listen: str | None) -> None:
    """Serve the web view: search, cases with each step's coverage and gaps, playback straight from the archive
    (HTTP Range; each playback start a custody event), purge approvals. People log in with their station
    account's password (PAM); what each sees is what their roles let the operations show. Started as root,
    a small helper keeps root only to check passwords and the server drops to the service user. On any
    address but loopback only with TLS (web.tls_cert, web.tls_key). Runs at a lower priority than ingest."""
    import uvicorn

    from archiver.web.app import WebView
    from archiver.web.auth import PasswordChecker

    if app.served:
        app.call("web")
    cfg = app.config
    host, _sep, port = (listen or cfg.web.listen).rpartition(":")
    host = host.strip("[]")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    tls = cfg.web.tls_cert is not None and cfg.web.tls_key is not None
    if not loopback and not tls:
        raise ConfigError(_("the web view listens on {host} only with TLS: set web.tls_cert and web.tls_key, or "
                            "listen on 127.0.0.1").format(host=host))
    if not port.isdigit():
        raise ConfigError(_("give --listen as HOST:PORT, e.g. 127.0.0.1:8480"))
    log_to_stderr(app.verbose)
    logging.getLogger().setLevel(logging.INFO)
    checker = PasswordChecker()
    ws = app.workspace(upgrade=False)
    checker.start_helper(cfg.access.service_user)
    _below_ingest()
    view = WebView(ws, checker, cfg.web.idle_minutes * 60, secure=tls)
    click.echo(_("web view on {scheme}://{host}:{port}/").format(scheme="https" if tls else "http", host=host,
                                                                  port=port), err=True)
    uvicorn.run(view.app(), host=host, port=int(port), log_level="warning",
                ssl_certfile=str(cfg.web.tls_cert) if tls else None, ssl_keyfile=str(cfg.web.tls_key) if tls else None)
