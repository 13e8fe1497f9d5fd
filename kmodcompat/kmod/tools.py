"""kmod's tools as far as one module file goes: tools/modinfo.c and tools/modprobe.c output, byte for byte.

Each function returns the :class:`ToolResult` (stdout, stderr, exit status)
the release's binary gives; the real binaries are the oracle
(tests/test_fixtures.py, tests/test_realtrees.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import NamedTuple

from ..errors import ModuleReadError
from ..records import ModuleRecord, path_to_modname, raw
from .elf import KmodAbort, KmodError, get_modversions, get_symbols, open_abort
from .file import as_opened, decoder_message, open_module
from .module import get_info, lookup_module
from .profile import Kmod


class ToolResult(NamedTuple):
    stdout: bytes
    stderr: bytes
    status: int  # ABORTED when the tool would abort


#: The status a shell shows for a tool killed by SIGABRT (128 + 6): an assert() of libkmod failed.
ABORTED = 134


def _aborted(abort: KmodAbort, program: str) -> ToolResult:
    """What a tool that aborts leaves: the assertion on stderr; stdout (fully buffered on a pipe, as the
    oracle runs it) is lost unflushed."""
    return ToolResult(b"", _line(abort.line(program)), ABORTED)


def _line(s: str) -> bytes:
    return raw(s + "\n")


def _decoder_line(kmod: Kmod, err: ModuleReadError, tool: str) -> bytes:
    message = decoder_message(kmod, err, tool)
    return b"" if message is None else _line(message)


# -- tools/modprobe.c ------------------------------------------------------------

def dump_modversions(kmod: Kmod, path: str, opened: ModuleRecord | ModuleReadError | None = None) -> ToolResult:
    """``modprobe --dump-modversions PATH``: stdout, stderr and exit status.

    ``opened`` is the file already parsed (or its read error), to share one
    parse between several consumers.
    """
    return _modprobe_listing(kmod, path, opened, "modversions", get_modversions)


def show_exports(kmod: Kmod, path: str, opened: ModuleRecord | ModuleReadError | None = None) -> ToolResult:
    """``modprobe --show-exports PATH``: the exports libkmod reports, ``0x%08x\tname``."""
    return _modprobe_listing(kmod, path, opened, "symbols", get_symbols)


def _modprobe_listing(kmod: Kmod, path: str, opened: ModuleRecord | ModuleReadError | None, what: str,
                      get: Callable[[Kmod, ModuleRecord], Sequence]) -> ToolResult:
    """tools/modprobe.c show_modversions() / show_exports(): same lookup, same error lines."""
    if not os.path.exists(path):
        return ToolResult(b"", _line(f"modprobe: FATAL: Module {path} not found."), 1)
    opened = open_module(kmod, path) if opened is None else as_opened(kmod, opened)
    fail = f"modprobe: FATAL: could not get {what} of {path}: "
    if isinstance(opened, ModuleReadError):
        abort = open_abort(kmod, opened)
        if abort is not None:
            return _aborted(abort, "modprobe")
        log = _decoder_line(kmod, opened, "modprobe")
        return ToolResult(b"", log + _line(fail + os.strerror(opened.errno)), 1)
    try:
        items = get(kmod, opened)
    except KmodError as e:
        return ToolResult(b"", _line(f"{fail}{e}"), 1)
    except KmodAbort as e:
        return _aborted(e, "modprobe")
    return ToolResult(b"".join(b"0x%08x\t%s\n" % (x.crc, raw(x.name)) for x in items), b"", 0)


# -- tools/modinfo.c ---------------------------------------------------------------

def is_module_filename(kmod: Kmod, arg: str) -> bool:
    """tools/modinfo.c is_module_filename(): a regular file with a suffix this build reads."""
    return os.path.isfile(arg) and arg.endswith(kmod.module_suffixes)


def modinfo_arg(kmod: Kmod, arg: str, field: str | None = None, separator: str = "\n",
                dirname: str | None = None, by_name: bool = False) -> ToolResult:
    """``modinfo`` for one command-line argument: a module file, else a module name.

    A name is looked up in ``dirname/modules.dep`` (``/lib/modules/$(uname -r)``
    unless given), the first source kmod_module_new_from_lookup() consults.
    ``by_name``: ``-m``, modinfo_name_do(): the argument is a name even when it
    looks like a file name, and a miss is "Module name %s not found.".
    """
    path = modinfo_path(kmod, arg, dirname, by_name)
    return path if isinstance(path, ToolResult) else modinfo_file(kmod, path, field, separator)


def modinfo_path(kmod: Kmod, arg: str, dirname: str | None = None, by_name: bool = False) -> str | ToolResult:
    """The module file :func:`modinfo_arg` prints for ``arg``, or its "not found" result."""
    if not by_name and is_module_filename(kmod, arg):
        return arg
    # modname_normalize() (shared/util.c): the name ends at the first '.', so -m ext4.ko is ext4
    name = arg.split(".", 1)[0] if by_name else arg
    path = lookup_module(name, dirname or os.path.join("/lib/modules", os.uname().release))
    if path is None:
        what = "Module name" if by_name else "Module"
        return ToolResult(b"", _line(f"modinfo: ERROR: {what} {arg} not found."), 1)
    return path


def modinfo_file(kmod: Kmod, path: str, field: str | None = None, separator: str = "\n",
                 opened: ModuleRecord | ModuleReadError | None = None) -> ToolResult:
    """``modinfo [-F field] [-0] PATH`` for an argument that is a module file name.

    ``filename:`` is printed before the file is opened, so it precedes any error.
    """
    filename = path if path.startswith("/") else os.path.join(os.getcwd(), path)  # path_make_absolute_cwd
    if field == "filename":
        return ToolResult(raw(f"{filename}{separator}"), b"", 0)
    head = raw(f"{'filename:':<16}{filename}{separator}") if field is None else b""
    opened = open_module(kmod, path) if opened is None else as_opened(kmod, opened)
    modname = path_to_modname(path)
    fail = f"modinfo: ERROR: could not get modinfo from '{modname}': "
    if isinstance(opened, ModuleReadError):
        abort = open_abort(kmod, opened)
        if abort is not None:
            return _aborted(abort, "modinfo")
        log = _decoder_line(kmod, opened, "modinfo")
        return ToolResult(head, log + _line(fail + os.strerror(opened.errno)), 1)
    try:
        out, err = modinfo(kmod, opened, field, separator)
    except KmodError as e:
        return ToolResult(head, _line(f"{fail}{e}"), 1)
    return ToolResult(head + out, err, 0)


def modinfo(kmod: Kmod, rec: ModuleRecord, field: str | None = None, separator: str = "\n") -> tuple[bytes, bytes]:
    """(stdout, stderr) of ``modinfo [-F field] [-0]`` after the ``filename:`` line."""
    sep = separator
    items = get_info(kmod, rec)
    if field == "parm":
        lines, errors = _params(items, listing=False)
        return raw("".join(f"{line}{sep}" for line in lines)), errors
    out: list[str] = []
    params_seen = False
    for key, value in items:
        if field is not None:
            if key == field:
                out.append(f"{value}{sep}")
            continue
        if key in ("parm", "parmtype"):
            params_seen = True
            continue
        if sep == "\0":
            out.append(f"{key}={value}{sep}")
        else:
            # printf("%s:%-*s%s", key, 15 - keylen, "", value): glibc reads a negative
            # width as '-' plus its magnitude, so kmod 30 pads long keys by len-15;
            # kmod 34 clamps the width at 0.
            width = 15 - len(key)
            if width < 0:
                width = -width if kmod.negative_pad_width else 0
            out.append(f"{key}:{'':<{width}}{value}{sep}")
    errors = b""
    if field is None and params_seen:
        lines, errors = _params(items, listing=True)
        out.extend(f"{'parm:':<16}{line}{sep}" for line in lines)
    return raw("".join(out)), errors


def _params(items: list[tuple[str, str]], listing: bool) -> tuple[list[str], bytes]:
    """modinfo's parm/parmtype merge: one line per parameter name, and error lines.

    add_param() prepends a name when it is first seen (as parm or parmtype),
    so parameters come out in reverse order of first appearance; a later
    duplicate overwrites the text in place. A value without ':' is reported
    and skipped (exit status unchanged). A type-only parameter prints
    ``name:type`` in the full listing and ``name: (type)`` with ``-F parm``.
    """
    order: list[str] = []
    desc: dict[str, str | None] = {}
    types: dict[str, str | None] = {}
    errors = []
    for key, value in items:
        if key not in ("parm", "parmtype"):
            continue
        name, colon, rest = value.partition(":")
        if not colon:
            errors.append(_line(f"modinfo: ERROR: Found invalid \"{key}={value}\": missing ':'"))
            continue
        if name not in desc:
            order.append(name)
            desc[name] = None
            types[name] = None
        if key == "parm":
            desc[name] = rest
        else:
            types[name] = rest
    lines = []
    for name in reversed(order):
        d, t = desc[name], types[name]
        if d is None:
            lines.append(f"{name}:{t}" if listing else f"{name}: ({t})")
        elif t is not None:
            lines.append(f"{name}:{d} ({t})")
        else:
            lines.append(f"{name}:{d}")
    return lines, b"".join(errors)
