"""What commands print: tool results byte for byte, as the emulated tools do; kmodcompat's own text escaped.

The kmod-compatible commands (modinfo, dump-modversions, depmod) print names as
the real tools do, raw bytes included (:func:`emit`). Every other line
kmodcompat prints that holds a path, a module or symbol name, or a reason read
from a file goes through :func:`shown`: one line, no control character.
"""

from __future__ import annotations

import json
import sys

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
