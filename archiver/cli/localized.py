"""Click in the person's language: our help texts and click's own words translated where they are shown,
and help wrapped by terminal columns (a Chinese character takes two)."""

from __future__ import annotations

import re

import click

from archiver.i18n import N_, _, ngettext
from archiver.i18n.text import break_points, cells

# Words click translates that its own source does not mark (it looks them up by a variable).
CLICK_WORDS = (N_("required"),)


class _Localized:
    """Help texts stay English in the code (the catalog's keys) and are translated as they are printed,
    so one loaded command serves each request in its own language."""

    help: str | None
    short_help: str | None
    epilog: str | None

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        text = help_text(self.help)
        if text:
            formatter.write_paragraph()
            with formatter.indentation():
                formatter.write_text(text)

    def get_short_help_str(self, limit: int = 45) -> str:
        if self.short_help:
            return _(_cleandoc(self.short_help))
        return first_sentence(help_text(self.help), limit)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for param in self.get_params(ctx):  # type: ignore[attr-defined]
            record = param.get_help_record(ctx)
            if record is None or isinstance(param, click.Argument):
                continue
            names, text = record
            if param.help and text.startswith(param.help):
                text = _(param.help) + text[len(param.help):]
            rows.append((names, text))
        if rows:
            with formatter.section(_("Options")):
                formatter.write_dl(rows)
        if isinstance(self, click.Group):
            self.format_commands(ctx, formatter)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.epilog:
            formatter.write_paragraph()
            with formatter.indentation():
                formatter.write_text(_(_cleandoc(self.epilog)))


class Command(_Localized, click.Command):
    pass


class Group(_Localized, click.Group):
    command_class = Command
    group_class = type  # subgroups are Groups too


def help_text(help: str | None) -> str:
    """A command's help, as its catalog key (cleaned like click does) and then translated."""
    if not help:
        return ""
    return _(_cleandoc(help).partition("\f")[0])


def first_sentence(text: str, limit: int) -> str:
    """The first sentence of `text` (ended by '. ' or '。'), cut to `limit` columns."""
    sentence = text.split("\n\n")[0].replace("\n", " ")
    for end, mark in (("。", "。"), ("；", "。"), (". ", ".")):
        if end in sentence:
            sentence = sentence.split(end)[0] + mark
    if cells(sentence) <= limit:
        return sentence.strip()
    out, used = "", 0
    for piece in (p for word in re.findall(r"\s+|\S+", sentence) for p in break_points(word)):
        if used + cells(piece) > limit - 3:
            break
        out, used = out + piece, used + cells(piece)
    return out.rstrip() + "..."


def localize_click() -> None:
    """Click marks its own words ("Usage:", "Missing argument", "No such option") for gettext's global
    domain, and wraps help by characters; route both through ours (idempotent)."""
    import click._textwrap
    import click.core
    import click.decorators
    import click.exceptions
    import click.formatting
    import click.parser
    import click.termui
    import click.types
    import click.utils

    for module in (click.core, click.decorators, click.exceptions, click.formatting, click.parser, click.termui,
                   click.types, click.utils):
        if hasattr(module, "_"):
            module._ = _
        if hasattr(module, "ngettext"):
            module.ngettext = ngettext
    for module in (click._textwrap, click.formatting):
        if hasattr(module, "term_len"):
            module.term_len = _term_len
    if not issubclass(click._textwrap.TextWrapper, _CellWrapper):
        click._textwrap.TextWrapper = type("TextWrapper", (_CellWrapper, click._textwrap.TextWrapper), {})


def _term_len(text: str) -> int:
    return cells(click.unstyle(text))


class _CellWrapper:
    """Lines may break between Chinese characters (which have no spaces between them)."""

    def _split(self, text: str) -> list[str]:
        return [piece for chunk in super()._split(text) for piece in break_points(chunk)]  # type: ignore[misc]


def _cleandoc(text: str) -> str:
    import inspect  # only for help: a command that prints none does not pay for it

    return inspect.cleandoc(text)
