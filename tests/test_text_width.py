"""Text output fits $COLUMNS (report/text.py); a pipe without $COLUMNS keeps one row a line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kmodcompat.report.text import column_caps, paragraph, table

from .paths import DEMO_KVER, REPO

KVER = DEMO_KVER
EXPORTS = ["exports", "-b", "kmodcompat/demo", KVER]
DIFF = ["diff", "fixtures/modules/x86_64/basic.ko", "fixtures/modules/x86_64/ext-only.ko"]


def _run(argv: list[str], columns: int | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    p = subprocess.run([sys.executable, "-m", "kmodcompat", *argv], cwd=REPO, env=env, capture_output=True,
                       text=True)
    assert p.returncode in (0, 4, 12), p.stderr
    return p.stdout


def _too_wide(text: str, columns: int) -> list[str]:
    """Lines over ``columns``, except a single name longer than a line (left whole, never cut)."""
    return [line for line in text.splitlines() if len(line) > columns and len(line.split()) > 1]


@pytest.mark.parametrize("argv", [EXPORTS, DIFF], ids=["exports", "diff"])
@pytest.mark.parametrize("columns", [60, 80, 132])
def test_fits_columns(argv, columns):
    wide = _run(argv, None)
    assert max(map(len, wide.splitlines())) > columns  # the case in hand: it did not fit before
    fitted = _run(argv, columns)
    assert not _too_wide(fitted, columns)
    if columns >= 80:  # no name is cut there: lists wrap at spaces, or a row becomes one line per field
        words = {w.rstrip(":") for w in fitted.split()} | set(fitted.split())
        # (A record leaves out its empty fields: a column header may not appear.)
        headers = {"symbol", "exporter", "crc", "license", "namespace", "depmod", "importers", "module", "from"}
        assert [w for w in wide.split() if w not in words and w not in headers and len(w) < 40 and w.strip("-")] == []


def test_pipe_keeps_one_row_a_line():
    """Without $COLUMNS, output to a pipe is not fitted: each export is one line a script can grep."""
    out = _run(EXPORTS, None)
    line = next(x for x in out.splitlines() if x.startswith("ns_sym "))
    assert line.split()[-7:] == ["kmc_basic", "kmc_basic_ext", "kmc_ext_only", "kmc_none", "kmc_varlen",
                                 "kmc_basic_ext_xz", "kmc_bad_ext_count"]


def test_column_caps():
    rows = [["a_rather_long_symbol_name", "mod", "one two three four five six seven eight"]]
    headers = ["symbol", "exporter", "importers"]
    assert column_caps(rows, headers, None) == [None, None, None]
    assert column_caps(rows, headers, 200) == [None, None, None]
    # The list wraps first, down to its longest word; the symbol column is kept whole.
    caps = column_caps(rows, headers, 50)
    assert caps[0] is None and caps[2] is not None and caps[2] >= len("three")
    for width in (50, 40, 30):
        assert max(map(len, table(rows, headers, width).splitlines())) <= width
    assert column_caps(rows, headers, 20) is None  # too narrow for a table: a record per row
    assert table(rows, headers, 20).splitlines()[:2] == ["symbol:", "  a_rather_long_symbol_name"]
    assert table(rows, headers, None) == table(rows, headers, 10_000)


def test_paragraph():
    text = "Changed modules (3): " + ", ".join(f"module_{i}" for i in range(30)) + "."
    assert paragraph(text, None) == text
    lines = paragraph(text, 40).splitlines()
    assert all(len(x) <= 40 for x in lines) and lines[1].startswith("  ")
    assert " ".join(x.strip() for x in lines) == text
