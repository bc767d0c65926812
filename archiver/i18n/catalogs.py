"""The message catalogs as the tools see them: what the code says (the template), and compiling `.po` to `.mo`.

Used by `scripts/i18n` (update the template and the translations), by setup.py (compile on install) and
by the tests (every message translated). Needs Babel, a build and test dependency, not a runtime one.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

from archiver.i18n import CHINESE, DOMAIN, LOCALE_DIR

PACKAGE = Path(__file__).resolve().parents[1]
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}
# Click's own modules whose words reach people (usage errors, help headings).
CLICK_MODULES = ("core", "decorators", "exceptions", "formatting", "parser", "termui", "types", "utils")
TEMPLATE = LOCALE_DIR / f"{DOMAIN}.pot"


def po_file(language: str = CHINESE) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def template(root):  # (click.Command) -> babel.messages.Catalog
    """Every message the interface can show: marked in our code, the help of `root` (the command line's top
    group, given by the caller: the i18n room sits below the faces) and its commands, and click's words."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_file

    catalog = Catalog(project="archiver", domain=DOMAIN, charset="utf-8")
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        for lineno, message, comments, _context in extract_from_file("python", path, KEYWORDS,
                                                                     comment_tags=("TRANSLATORS:",)):
            catalog.add(message, locations=[(rel, lineno)], auto_comments=comments)
    for where, text in help_texts(root):
        catalog.add(text, locations=[(where, 0)])
    import click

    click_dir = Path(click.__file__).parent
    for name in CLICK_MODULES:
        for lineno, message, _comments, _context in extract_from_file("python", click_dir / f"{name}.py",
                                                                      {"_": None, "ngettext": (1, 2)}):
            catalog.add(message, locations=[(f"click/{name}.py", lineno)])
    return catalog


def help_texts(root) -> Iterator[tuple[str, str]]:
    """(where, text) for every command's help and every option's help under `root`, as click cleans them."""
    import click

    def walk(command: click.Command, path: str) -> Iterator[tuple[str, str]]:
        for text in (command.help, command.short_help, command.epilog):
            if text:
                yield path, inspect.cleandoc(text).partition("\f")[0]
        for param in command.params:
            if getattr(param, "help", None):
                yield f"{path} {param.opts[-1]}", param.help
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None:
                    yield from walk(sub, f"{path} {name}")

    yield from walk(root, "archiver")


def compile_catalogs(locale_dir: Path = LOCALE_DIR) -> list[Path]:
    """Compile each `.po` under `locale_dir` to the `.mo` beside it; the `.mo` files written."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po in sorted(locale_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        with po.open("rb") as fh:
            catalog = read_po(fh)
        mo = po.with_suffix(".mo")
        tmp = mo.with_suffix(".mo.tmp")
        with tmp.open("wb") as fh:
            write_mo(fh, catalog, use_fuzzy=False)
        tmp.replace(mo)
        written.append(mo)
    return written


def update(root, language: str = CHINESE) -> tuple[int, list[str]]:
    """Rewrite the template (from the code and the commands under `root`) and merge it into the language's
    `.po`: (messages, those still untranslated)."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po, write_po

    fresh = template(root)
    with TEMPLATE.open("wb") as fh:
        write_po(fh, fresh, omit_header=False, sort_output=True, width=0)
    po = po_file(language)
    if po.exists():
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=language)
    else:
        po.parent.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(locale=language, project="archiver", domain=DOMAIN, charset="utf-8")
    catalog.update(fresh, no_fuzzy_matching=True)
    catalog.obsolete.clear()
    with po.open("wb") as fh:
        write_po(fh, catalog, sort_output=True, width=0, include_previous=False)
    return len(fresh), untranslated(catalog)


def untranslated(catalog) -> list[str]:
    missing = []
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(strings):
            missing.append(message.id if isinstance(message.id, str) else message.id[0])
    return missing


def main(root) -> None:
    """What `scripts/i18n` runs, with the command line's top group."""
    import sys

    count, missing = update(root)
    print(f"{count} messages in {TEMPLATE}; {len(missing)} not yet translated in {po_file()}", file=sys.stderr)
    for text in missing:
        print(f"  {text!r}", file=sys.stderr)
    compile_catalogs()
