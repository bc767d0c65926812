"""The interface's language: English, or Simplified Chinese (zh_CN).

Messages for people are written in English in the code and marked `_("...")` (or `N_` where the text
is kept and translated where it is shown: click's help texts). The translations are gettext catalogs:
`locale/zh_CN/LC_MESSAGES/archiver.po` in the repository, compiled to `.mo` when the package is
installed (setup.py), with the terms fixed in `locale/glossary.md`.

The language is chosen once per process (`install`, from `ui.language` or the locale) and, in the
station service, per request (`speaking`): each person gets their own language. JSON output is
always English (`--json` switches the command to English), as are log fields, exit codes and config keys.
"""

from __future__ import annotations

import gettext
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path

DOMAIN = "archiver"
LOCALE_DIR = Path(__file__).parent / "locale"
ENGLISH = "en"
CHINESE = "zh_CN"
LANGUAGES = (ENGLISH, CHINESE)
SETTINGS = ("auto", *LANGUAGES)  # the values `ui.language` takes

# The request's language where one was chosen (a served request, a --json command); else the process's.
_request: ContextVar[str | None] = ContextVar("archiver_language", default=None)
# Process-wide like the C locale it stands in for: set once at start-up by the entry point.
_process = {"language": ENGLISH}


def choose(environ: Mapping[str, str], configured: str | None = None) -> str:
    """The language for a person: `ui.language` when it names one, else their locale, as gettext reads it
    (LANGUAGE, LC_ALL, LC_MESSAGES, LANG: the first set). Any Chinese locale gets zh_CN, anything else English."""
    if configured in LANGUAGES:
        return configured
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "")
        if value:
            first = value.split(":")[0].lower()
            return CHINESE if first.startswith("zh") else ENGLISH
    return ENGLISH


def install(language: str) -> None:
    """This process's language (an entry point calls it once, before anything prints)."""
    _process["language"] = language if language in LANGUAGES else ENGLISH


def current() -> str:
    return _request.get() or _process["language"]


@contextmanager
def speaking(language: str) -> Iterator[None]:
    """Within the block (in this thread or task), messages are in `language`."""
    token = _request.set(language if language in LANGUAGES else ENGLISH)
    try:
        yield
    finally:
        _request.reset(token)


def use_english() -> None:
    """For the rest of the current `speaking` block: English (what a --json command prints)."""
    _request.set(ENGLISH)


@cache
def translations(language: str) -> gettext.NullTranslations:
    if language == ENGLISH:
        return gettext.NullTranslations()
    try:
        return gettext.translation(DOMAIN, LOCALE_DIR, languages=[language])
    except OSError:
        import logging

        logging.getLogger("archiver").warning(
            "no compiled %s messages in %s: reinstall the package (scripts/run or scripts/test compile them); "
            "speaking English", language, LOCALE_DIR)
        return gettext.NullTranslations()


def _(message: str) -> str:
    """`message` in the current language."""
    return translations(current()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks `message` for the catalog without translating it here (it is translated where it is shown)."""
    return message
