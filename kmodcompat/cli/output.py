"""What commands print: tool results byte for byte, as the emulated tools do; kmodcompat's own text escaped.

The kmod-compatible commands (modinfo, dump-modversions, depmod) print names as
the real tools do, raw bytes included (:func:`emit`). Every other line
kmodcompat prints that holds a path, a module or symbol name, or a reason read
from a file goes through :func:`shown`: one line, no control character.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence

from ..kmod.host import default_kmod
from ..kmod.profile import DEFAULT_KMOD, KMOD_PROFILES, Kmod
from ..kmod.tools import ABORTED, ToolResult

_held: list[bytes] = []


def emit(result: ToolResult) -> None:
    """Write a result like a C tool: stderr at once, stdout line-buffered on a terminal, else held to exit.

    With stdout on a pipe, glibc buffers it fully while stderr is unbuffered,
    so ``kmod ... 2>&1 | cat`` shows the error lines first; we keep that order.
    """
    if result.stdout:
        if sys.stdout.isatty():
            sys.stdout.buffer.write(result.stdout)
            sys.stdout.buffer.flush()
        else:
            _held.append(result.stdout)
    if result.stderr:
        sys.stderr.buffer.write(result.stderr)
        sys.stderr.buffer.flush()
    if result.status == ABORTED:  # the line above is the real tool's; this one says what it means
        sys.stderr.write("kmodcompat: the emulated tool would abort here (SIGABRT, status 134): libkmod's "
                         "assert() above fails\n")


#: Encoder chunks joined per write: json.dump() writes each token alone (diff of two real trees: 14.7 million
#: writes), json.dumps() holds the whole text at once (91 MB there, over 1 GiB peak with the trees).
_JSON_CHUNKS = 1 << 16


def write_json(doc: object, indent: int) -> None:
    """``doc`` on stdout as ``json.dump(doc, sys.stdout, indent=indent)`` writes it, in few writes of
    bounded size."""
    buf: list[str] = []
    for chunk in json.JSONEncoder(indent=indent).iterencode(doc):
        buf.append(chunk)
        if len(buf) >= _JSON_CHUNKS:
            sys.stdout.write("".join(buf))
            buf.clear()
    sys.stdout.write("".join(buf))


#: Stands for a list written one row per line while the rest is indented; no document string holds a NUL.
_ROWS = "\0kmodcompat rows {}\0"


def json_pieces(doc: object, indent: int, rows: Sequence[tuple[str, ...]] = ()) -> Iterator[str]:
    """``doc`` as ``json.dumps(doc, indent=indent)`` writes it, but each list at a key path of ``rows``
    (("consumers", "per_module"): ``doc["consumers"]["per_module"]``) one element per line, compact.

    Indented, each of a tree's thousands of rows would be dozens of lines (4 MB of a report's 4,230 modules;
    92 MB of a diff of two real trees), and indentation costs the pure-Python encoder (the C one writes
    only compact JSON): 20 s of a diff, where the rows take the C encoder 0.3 s."""
    held: list[tuple[tuple[str, ...], list]] = []
    skeleton = doc
    for path in rows:
        skeleton, found = _replaced(skeleton, path, len(held))
        if found is not None:
            held.append((path, found))
    if not held:
        yield from json.JSONEncoder(indent=indent).iterencode(doc)
        return
    text = json.dumps(skeleton, indent=indent)
    marks = [json.dumps(_ROWS.format(i)) for i in range(len(held))]
    pos = 0
    for at, i in sorted((text.index(mark), i) for i, mark in enumerate(marks)):
        path, found = held[i]
        yield text[pos:at]
        pad = " " * (indent * (len(path) + 1))
        yield "[\n"
        for j, row in enumerate(found):
            yield (",\n" if j else "") + pad + json.dumps(row)
        yield "\n" + " " * (indent * len(path)) + "]"
        pos = at + len(marks[i])
    yield text[pos:]


def _replaced(doc: object, path: tuple[str, ...], i: int) -> tuple[object, list | None]:
    """``doc`` with the non-empty list at ``path`` replaced by the i-th placeholder (copies along the path only),
    and that list; ``doc`` itself and None when there is none."""
    if not isinstance(doc, dict) or path[0] not in doc:
        return doc, None
    value = doc[path[0]]
    if len(path) == 1:
        if not isinstance(value, list) or not value:
            return doc, None
        return {**doc, path[0]: _ROWS.format(i)}, value
    inner, found = _replaced(value, path[1:], i)
    return (doc, None) if found is None else ({**doc, path[0]: inner}, found)


def flush_held() -> None:
    if _held:
        sys.stdout.buffer.write(b"".join(_held))
        _held.clear()
    sys.stdout.flush()


def add_as_option(p) -> None:
    # The default is resolved at run time (emulated_kmod()): the help text stays the same on every host, as the
    # man pages generated from it must.
    p.add_argument("--as", dest="as_", metavar="CONSUMER", choices=sorted(KMOD_PROFILES), default=None,
                   help=f"kmod to emulate: {', '.join(sorted(KMOD_PROFILES))} (default: the host's kmod when it "
                        f"is kmod 30 or 34, else {DEFAULT_KMOD.id}; kmodcompat --version says which; kmod-pr270 "
                        "is kmod with the unmerged extended-modversions support)")


def emulated_kmod(args) -> Kmod:
    """The kmod profile ``--as`` names, or the host's default (kmod/host.py)."""
    return KMOD_PROFILES[args.as_] if getattr(args, "as_", None) else default_kmod()


def shown(text: object) -> str:
    """``text`` as one printable line: what a file name or an input string may hold, escaped.

    Characters that are not printable (C0 and C1 controls, DEL, newlines, Unicode
    format and separator characters such as U+202E) become ``\\xNN`` escapes of their
    UTF-8 bytes; the bytes of a non-UTF-8 file name (``surrogateescape``: U+DC80 to
    U+DCFF) become ``\\xNN`` of the byte itself. A name can then neither forge a
    second message line nor send a terminal an escape sequence. Backslashes are left
    as they are.
    """
    s = str(text)
    if s.isprintable():  # nearly every name: one C-level scan
        return s
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in s)


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if 0xD800 <= code <= 0xDFFF:  # a lone surrogate no file name gives: shown as the code point
        return f"\\u{code:04x}"
    return "".join(f"\\x{b:02x}" for b in ch.encode("utf-8"))
