"""depmod.d configuration: ``search``, ``override``, ``external``, ``exclude``.

Mirrors tools/depmod.c ``cfg_load()`` and ``cfg_file_parse()`` (same code in
kmod 30 and 34.2):

* Every directory of the path list is listed (``cfg_files_list()``), files whose
  name starts with '.' or does not end in ``.conf`` are skipped, and all
  files are merged into ONE list sorted by file name (``strcmp``); a name
  already taken by an earlier directory of the list is ignored, so the
  directory order is the precedence order. A path that is a file (``-C
  some.conf``) joins the list under its base name. Missing paths are
  skipped silently.
* Files are parsed in that sorted order. Each ``search``, ``override``,
  ``external`` and ``exclude`` entry is PREPENDED to its list
  (``cfg->searches = s`` after ``s->next = cfg->searches``), so the last one
  written comes first in depmod's lists; priorities follow that list order.
* Without any ``search``, the list is just ``updates`` (backward
  compatibility), and ``built-in`` is then not in the list at all.
* ``override`` and ``external`` apply only when their kernel pattern is "*"
  or a POSIX extended regex that matches somewhere in the kernel version.

``depmod -b`` does NOT prefix these directories with the base directory: real
depmod always reads the host's ``/etc/depmod.d`` etc. (see
docs/depmod-behaviour.md); :func:`config_paths` offers both.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..kmod.profile import Kmod
from .diagnostics import ERROR, Diagnostic, diag

__all__ = ["DepmodConfig", "SearchEntry", "config_paths", "load_config", "read_wrapped_lines"]

SEARCH_PATH = "path"
SEARCH_BUILTIN = "built-in"
SEARCH_EXTERNAL = "external"


@dataclass(frozen=True, slots=True)
class SearchEntry:
    """One word of a ``search`` line: a subdirectory, ``built-in`` or ``external``."""

    kind: str  # SEARCH_PATH | SEARCH_BUILTIN | SEARCH_EXTERNAL
    path: str = ""  # the subdirectory (relative to the module directory) for SEARCH_PATH


@dataclass(frozen=True, slots=True)
class DepmodConfig:
    """The parsed configuration, lists in depmod's internal (last-written-first) order."""

    searches: tuple[SearchEntry, ...]
    overrides: tuple[tuple[str, str], ...]  # (module name, subdirectory)
    externals: tuple[str, ...]  # directories, as written
    excludes: tuple[str, ...]  # directory-entry names skipped at every level
    files: tuple[str, ...] = ()  # the configuration files read, in parse order
    diagnostics: tuple[Diagnostic, ...] = ()

    @classmethod
    def default(cls) -> DepmodConfig:
        """What depmod uses when no file says anything: ``search updates``."""
        return cls((SearchEntry(SEARCH_PATH, "updates"),), (), (), ())


def config_paths(kmod: Kmod, basedir: str = "") -> list[str]:
    """depmod's default configuration directories (``default_cfg_paths[]``), under ``basedir``.

    With ``basedir`` empty these are exactly the directories real depmod reads.
    """
    base = basedir.rstrip("/")
    return [base + d for d in kmod.depmod_config_dirs]


def read_wrapped_lines(data: bytes) -> list[tuple[bytes, int]]:
    """Split like ``freadline_wrapped()``: (logical line, physical line number of its end).

    A backslash before a newline joins the lines; a backslash before any other
    character is dropped and the character kept; a backslash at EOF is dropped.
    """
    out: list[tuple[bytes, int]] = []
    buf = bytearray()
    linenum = 0
    pending = 0
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        i += 1
        if c == 0x0A:
            pending += 1
            linenum += pending
            pending = 0
            out.append((bytes(buf), linenum))
            buf.clear()
        elif c == 0x5C:  # backslash
            if i >= n:
                continue
            nxt = data[i]
            i += 1
            if nxt == 0x0A:
                pending += 1
                continue
            buf.append(nxt)
        else:
            buf.append(c)
    if buf:
        linenum += pending + 1
        out.append((bytes(buf), linenum))
    return out


def _kernel_matches(pattern: str, kver: str) -> bool:
    """``cfg_kernel_matches()``: "*" or an unanchored POSIX ERE search (regexec)."""
    if pattern == "*":
        return True
    try:
        return re.search(pattern, kver) is not None
    except re.error:  # regcomp() failed: no match
        return False


def _list_files(paths: Sequence[str], diags: list[Diagnostic]) -> list[str]:
    """``cfg_files_list()`` for every path, merged and sorted by file name."""
    by_name: dict[bytes, str] = {}
    for path in paths:
        try:
            isdir = os.path.isdir(path)
            exists = os.path.exists(path)
        except OSError:
            continue
        if not exists:
            continue
        if not isdir:
            name = os.fsencode(os.path.basename(path))
            by_name.setdefault(name, path)
            continue
        try:
            entries = list(os.scandir(path))
        except OSError as e:
            diags.append(diag(ERROR, "config-dir-unreadable", f"files list {path}: {os.strerror(e.errno or 0)}"))
            continue
        for ent in entries:
            name = ent.name
            if name.startswith(".") or len(name) < 6 or not name.endswith(".conf"):
                continue  # INF("All cfg files need .conf") is below the default log level
            try:
                if ent.is_dir():
                    diags.append(diag(ERROR, "config-subdirectory",
                                      f"Directories inside directories are not supported: {path}/{name}"))
                    continue
            except OSError:
                continue
            by_name.setdefault(os.fsencode(name), os.path.join(path, name))
    return [by_name[k] for k in sorted(by_name)]


def load_config(paths: Sequence[str], kver: str) -> DepmodConfig:
    """Read depmod.d files from ``paths`` (directories or files) as ``cfg_load()`` does."""
    diags: list[Diagnostic] = []
    files = _list_files(paths, diags)
    searches: list[SearchEntry] = []
    overrides: list[tuple[str, str]] = []
    externals: list[str] = []
    excludes: list[str] = []
    for fname in files:
        try:
            with open(fname, "rb") as f:
                data = f.read()
        except OSError as e:
            diags.append(diag(ERROR, "config-unreadable", f"file parse {fname}: {os.strerror(e.errno or 0)}"))
            continue
        for raw_line, linenum in read_wrapped_lines(data):
            line = raw_line.decode("utf-8", "surrogateescape")
            if not line or line[0] == "#":
                continue
            words = [w for w in re.split(r"[\t ]+", line) if w]
            if not words:
                continue
            cmd, args = words[0], words[1:]
            if cmd == "search":
                for w in args:
                    kind = SEARCH_BUILTIN if w == "built-in" else SEARCH_EXTERNAL if w == "external" else SEARCH_PATH
                    searches.insert(0, SearchEntry(kind, w if kind == SEARCH_PATH else ""))
            elif cmd == "override" and len(args) >= 3:
                if _kernel_matches(args[1], kver):
                    overrides.insert(0, (args[0], args[2]))
            elif cmd == "external" and len(args) >= 2:
                if _kernel_matches(args[0], kver):
                    externals.insert(0, args[1])
            elif cmd == "exclude":
                for w in args:
                    excludes.insert(0, w)
            elif cmd in ("include", "make_map_files"):
                pass  # INF("command %s not implemented yet"), below the default log level
            else:
                diags.append(diag(ERROR, "config-bad-line",
                                  f"{fname}:{linenum}: ignoring bad line starting with '{cmd}'",
                                  file=fname, line=linenum))
    if not searches:
        searches.append(SearchEntry(SEARCH_PATH, "updates"))
    return DepmodConfig(tuple(searches), tuple(overrides), tuple(externals), tuple(excludes), tuple(files),
                        tuple(diags))
