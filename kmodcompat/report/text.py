"""Plain text fitted to a width: tables whose widest cells wrap, paragraphs wrapped at word boundaries.

``width`` None means "as wide as the content" (output to a pipe or a file that
no ``$COLUMNS`` asks to fit: scripts get one line per row, as before); the
command line decides (cli/terminal.py ``columns()``).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Sequence

from tabulate import tabulate

_SGR = re.compile(r"\x1b\[[0-9;]*m")  # colour (cli/terminal.py paint()): takes no column


def _len(text: str) -> int:
    return len(_SGR.sub("", text)) if "\x1b" in text else len(text)


#: A column is never squeezed below this, however narrow the terminal.
MIN_COLUMN = 6
#: A column of names is cut into pieces of at least this many characters, else the table becomes records.
MIN_NAME = 20
#: The gap tabulate's "plain" and "simple" formats put between columns.
GAP = 2


def column_caps(rows: Sequence[Sequence[object]], headers: Sequence[str],
                width: int | None) -> list[int | None] | None:
    """tabulate's ``maxcolwidths`` so that the table fits ``width``; None when no table of these columns can.

    Columns of words (lists of names: a cell with a space) wrap first, down to their longest word, sharing
    the room the others leave; the columns of single names (a symbol, a path) are cut only when that is not
    enough, capped alike.
    """
    n = len(headers)
    head = [len(str(h)) for h in headers]
    cells, word, spaced = [0] * n, [0] * n, [False] * n
    for row in rows:
        for i, cell in enumerate(row[:n]):
            text = str(cell)
            cells[i] = max(cells[i], *(_len(line) for line in text.split("\n")))
            words = text.split()
            word[i] = max(word[i], *(_len(w) for w in words)) if words else word[i]
            spaced[i] = spaced[i] or len(words) > 1
    if width is None:
        return [None] * n
    room = width - GAP * (n - 1)

    def used(caps: list[int | None]) -> int:
        # tabulate makes a column at least its header + 2 (its MIN_PADDING), the header wrapped to the cap too.
        return sum(max(cells[i] if c is None else min(cells[i], c), (head[i] if c is None else min(head[i], c)) + 2)
                   for i, c in enumerate(caps))

    caps: list[int | None] = [None] * n
    if used(caps) <= room:
        return caps
    lists = [i for i in range(n) if spaced[i]]
    floor = {i: max(MIN_COLUMN, word[i]) for i in lists}

    def with_lists(cap: int) -> list[int | None]:
        return [max(floor[i], cap) if i in floor else None for i in range(n)]

    if lists and used(with_lists(0)) <= room:
        return with_lists(_largest(lambda cap: used(with_lists(cap)) <= room, 0, max(cells)))
    base = with_lists(0)

    def with_others(cap: int) -> list[int | None]:
        return [c if i in floor else cap for i, c in enumerate(base)]

    cap = _largest(lambda cap: used(with_others(cap)) <= room, MIN_COLUMN, max(cells))
    # A name cut in many short pieces (or a CRC cut at all) reads worse than one line per field.
    short = [cells[i] for i in range(n) if i not in floor and cells[i] <= 2 * MIN_NAME]
    if used(with_others(cap)) > room or cap < MIN_NAME or any(w > cap for w in short):
        return None
    return with_others(cap)


def _largest(fits: Callable[[int], bool], low: int, high: int) -> int:
    """The largest value in [low, high] that ``fits`` (``fits`` false above some value), else ``low``."""
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


def table(rows: Sequence[Sequence[object]], headers: Sequence[str], width: int | None, tablefmt: str = "plain",
          **kw) -> str:
    """``tabulate(rows, headers)`` with its widest columns wrapped to fit ``width``."""
    caps = column_caps(rows, headers, width) if rows else [None]
    if caps is None:  # too many columns for the width: one "header: value" line per cell, a blank line per row
        return "\n\n".join("\n".join(paragraph(f"{h}: {cell}", width) for h, cell in zip(headers, row) if str(cell))
                           for row in rows)
    if all(c is None for c in caps):
        return tabulate(rows, headers, tablefmt=tablefmt, **kw)
    return tabulate(rows, headers, tablefmt=tablefmt, maxcolwidths=caps, maxheadercolwidths=caps, **kw)


def paragraph(text: str, width: int | None, indent: str = "") -> str:
    """``text`` wrapped at spaces to ``width`` (a name longer than a line is left whole)."""
    if width is None or len(indent) + len(text) <= width:
        return indent + text
    return textwrap.fill(text, max(width, MIN_COLUMN + len(indent)), initial_indent=indent,
                         subsequent_indent=indent + "  ", break_long_words=False, break_on_hyphens=False)
