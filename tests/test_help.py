"""``--help`` is written for people: no markup, sentences, examples that parse, lines that fit ``$COLUMNS``."""

from __future__ import annotations

import argparse
import importlib
import re
import shlex

import pytest

from kmodcompat import cli
from kmodcompat.cli.helptext import CommandHelp, HelpParser, paragraphs

MARKUP = re.compile(r"``|:(mod|class|func|meth|attr):`|`[^`\s]+`")


def _helps() -> list[tuple[str, CommandHelp]]:
    out = [("", cli.HELP)]
    for name, module in cli.COMMANDS.items():
        out.append((name, importlib.import_module(f"kmodcompat.cli.{module}").HELP))
    return out


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = cli.build_parser(name or None)
    if not name:
        return parser
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _sentences(text: str) -> list[str]:
    return [" ".join(lines) for pre, lines in paragraphs(text) if not pre]


@pytest.mark.parametrize("name,about", _helps(), ids=lambda v: v if isinstance(v, str) else "")
def test_help_text(name, about, monkeypatch):
    for columns in (80, 60):
        monkeypatch.setenv("COLUMNS", str(columns))
        text = _subparser(name).format_help()
        assert not MARKUP.search(text), MARKUP.search(text)
        assert "\nexamples:\n" in text and "\nexit status:\n" in text
        assert " ".join(about.exit_status.split()[:4]) in " ".join(text.split())
        for line in text.splitlines():
            # An example's command line is never wrapped (it is copied into a shell), a preformatted
            # table is as written: both are checked at 80 columns only.
            if columns == 80 or not (line.startswith("  kmodcompat") or line.startswith("    ")):
                assert len(line) <= columns, line
    for sentence in [*_sentences(about.description), *_sentences(about.exit_status),
                     *(what for _, what in about.examples)]:
        assert sentence.endswith((".", "?")), sentence


@pytest.mark.parametrize("name,about", _helps(), ids=lambda v: v if isinstance(v, str) else "")
def test_examples_parse(name, about):
    """Each example is a command line the parser accepts, so an option renamed breaks this test."""
    for line, _ in about.examples:
        words = shlex.split(line.replace("$(uname -r)", "6.1.0-56-amd64"))
        for stop in ("|", ">"):
            words = words[:words.index(stop)] if stop in words else words
        assert words[0] == "kmodcompat" and (not name or words[1] == name), line
        args = cli.build_parser(words[1]).parse_args(words[1:])
        assert args.command == words[1]


def test_every_option_has_help():
    """The man pages and completion describe each option from its help= (tools/make-man.py)."""
    for name in ("", *cli.COMMANDS):
        parser = _subparser(name)
        assert isinstance(parser, HelpParser) and parser.about is not None
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{name or 'kmodcompat'} {action.option_strings or action.dest}: no help"


def test_report_exit_status_whole(monkeypatch, capsys):
    """The epilog used to be cut from the docstring at a fixed line: the sentence lost its start."""
    monkeypatch.setenv("COLUMNS", "200")
    assert cli.main(["report", "--help"]) == 0
    out = capsys.readouterr().out
    assert ("exit status:\n  0 when nothing the --fail-on policy counts as a break was found, 1 when something was, "
            "2 for a usage or input error: an operand") in out
    assert "  unresolved                  an import resolves to no exporter" in out
