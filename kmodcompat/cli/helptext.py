"""What ``--help`` says about a command, written for people, and how it is printed.

Each command module declares ``HELP = CommandHelp(...)``: plain sentences (no
markup: the same text becomes the man page), at least one example, and the
exit status. The options are documented where they are defined (argparse's
``help=``); ``tools/make-man.py`` generates the man pages and the shell
completion from the same parsers, so an option is described once.

Text conventions: paragraphs are separated by a blank line and re-wrapped to
the terminal's width (``$COLUMNS``, as argparse's own option list); a paragraph
whose first line is indented is preformatted (a table, command lines) and kept
line for line.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

from .output import shown


@dataclass(frozen=True)
class CommandHelp:
    summary: str  # one phrase: the command list of ``kmodcompat --help``, the man page's NAME line
    description: str  # what the command does, in paragraphs
    examples: tuple[tuple[str, str], ...]  # (command line, one sentence saying what it does)
    exit_status: str  # one paragraph
    sections: tuple[tuple[str, str], ...] = ()  # further (title, text) after the options, e.g. a policy's terms

    def __post_init__(self) -> None:
        if not self.examples:
            raise ValueError(f"{self.summary}: a command's help needs an example")


def paragraphs(text: str) -> list[tuple[bool, list[str]]]:
    """``text`` as (preformatted?, lines) paragraphs, following the conventions above."""
    out = []
    for block in textwrap.dedent(text).strip("\n").split("\n\n"):
        lines = block.split("\n")
        out.append((lines[0][:1].isspace(), lines))
    return out


def fill(text: str, width: int, indent: str = "") -> str:
    """``text`` wrapped to ``width`` columns, preformatted paragraphs as they are."""
    width = max(width, 20 + len(indent))
    out = []
    for pre, lines in paragraphs(text):
        if pre:
            out.append("\n".join(indent + line for line in lines))
        else:
            out.append(textwrap.fill(" ".join(lines), width, initial_indent=indent, subsequent_indent=indent,
                                     break_on_hyphens=False, break_long_words=False))
    return "\n\n".join(out)


def text_width() -> int:
    """The width argparse formats to: ``$COLUMNS`` or the terminal's, less its margin of 2."""
    return shutil.get_terminal_size().columns - 2


class _Formatter(argparse.HelpFormatter):
    """argparse's, except that option names are never cut at a hyphen (``--dump-`` / ``modversions``)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class HelpParser(argparse.ArgumentParser):
    """An ArgumentParser whose ``--help`` prints a :class:`CommandHelp` around argparse's option list."""

    def __init__(self, *args, about: CommandHelp | None = None, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)
        self.about = about
        self.command_parsers: Mapping[str, argparse.ArgumentParser] = {}  # the top level's: name -> sub-parser

    def error(self, message: str) -> NoReturn:
        """A usage error as one line, ``kmodcompat: COMMAND: WHAT (see kmodcompat COMMAND --help)``, and exit
        status 2, like every other input error (argparse prints the usage, then ``PROG: error: ...``: two
        lines, four for long usages)."""
        command = self.prog.removeprefix("kmodcompat").strip()
        where = f"{command}: " if command else ""
        sys.stderr.write(f"kmodcompat: {where}{shown(message)} (see {self.prog} --help)\n")
        raise SystemExit(2)

    def format_help(self) -> str:
        if self.about is None:
            return super().format_help()
        about, width = self.about, text_width()
        formatter = self._get_formatter()
        formatter.add_usage(self.usage, self._actions, self._mutually_exclusive_groups)
        for group in self._action_groups:
            formatter.start_section(group.title)
            formatter.add_text(group.description)
            formatter.add_arguments(group._group_actions)
            formatter.end_section()
        usage, _, options = formatter.format_help().partition("\n\n")
        parts = [usage, fill(about.description, width), options.rstrip("\n")]
        for title, text in about.sections:
            parts.append(f"{title}:\n{fill(text, width, '  ')}")
        examples = "\n\n".join(f"  {line}\n{fill(what, width, '      ')}" for line, what in about.examples)
        parts += [f"examples:\n{examples}", f"exit status:\n{fill(about.exit_status, width, '  ')}"]
        return "\n\n".join(parts) + "\n"


def command_parser(sub, name: str, about: CommandHelp, **kwargs) -> HelpParser:
    """The sub-parser of command ``name``, its help from ``about``."""
    return sub.add_parser(name, help=about.summary, about=about, **kwargs)
