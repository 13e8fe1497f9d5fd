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
  or a POSIX extended regex that matches somewhere in the kernel version
  (``cfg_kernel_matches()``: regcomp(REG_EXTENDED | REG_NOSUB), emulated in
  linear time by :mod:`.ere`).

Every file is read through :func:`kmodcompat.files.bounded.read_input` (regular
files of at most 1 MiB; real depmod would block on a FIFO and read a link to
``/dev/zero`` forever) and parsed in time linear in its size.

``depmod -b`` does NOT prefix these directories with the base directory: real
depmod always reads the host's ``/etc/depmod.d`` etc. (see
docs/depmod-behaviour.md); :func:`config_paths` offers both.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..files.bounded import DEPMOD_CONFIG, InputFileError, read_input
from ..kmod.profile import Kmod
from ..records import raw
from .diagnostics import ERROR, Diagnostic, diag
from .ere import PatternTooComplex, compile_ere, ere_search

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


_WRAPPED_TOKENS = re.compile(rb"[^\\\n]+|\\\n|\\.|\\|\n", re.DOTALL)


def read_wrapped_lines(data: bytes, eof_backslash: bytes = b"") -> list[tuple[bytes, int]]:
    """Split like ``freadline_wrapped()`` (shared/util.c): (logical line, physical line number of its end).

    A backslash before a newline joins the lines; a backslash before any other
    character is dropped and the character kept; a backslash at EOF becomes
    ``eof_backslash`` (kmod 30 stores getc()'s EOF there: b"\\xff"; kmod 34 drops it).
    Runs of ordinary bytes are taken whole: linear in ``data``.
    """
    out: list[tuple[bytes, int]] = []
    buf: list[bytes] = []
    linenum = 0
    pending = 0
    for m in _WRAPPED_TOKENS.finditer(data):
        tok = m.group()
        if tok == b"\n":
            linenum += pending + 1
            pending = 0
            out.append((b"".join(buf), linenum))
            buf.clear()
        elif tok[0] != 0x5C:
            buf.append(tok)
        elif tok == b"\\\n":
            pending += 1
        elif len(tok) == 2:
            buf.append(tok[1:])
        else:  # a backslash that ends the file
            buf.append(eof_backslash)
    if buf and any(buf):
        linenum += pending + 1
        out.append((b"".join(buf), linenum))
    return out


#: Steps the kernel patterns of one configuration may cost (program length x kernel
#: version length, summed): real configurations need a few hundred.
MATCH_BUDGET = 5_000_000


class _KernelMatcher:
    """``cfg_kernel_matches()`` for one kernel version: "*" or an unanchored POSIX ERE search.

    A pattern glibc's regcomp() refuses matches nothing, as in depmod. Results are
    kept by pattern, and the work over a whole configuration is capped
    (:data:`MATCH_BUDGET`): past it, or past :mod:`.ere`'s own caps, a pattern raises
    PatternTooComplex.
    """

    def __init__(self, kver: str):
        self.kver = raw(kver)
        self.budget = MATCH_BUDGET
        self.results: dict[str, bool] = {}

    def __call__(self, pattern: str) -> bool:
        if pattern == "*":
            return True
        known = self.results.get(pattern)
        if known is not None:
            return known
        prog = compile_ere(raw(pattern))
        if prog is None:
            matched = False
        else:
            self.budget -= len(prog.code) * (len(self.kver) + 1)
            if self.budget < 0:
                raise PatternTooComplex(f"the patterns of this configuration need more than {MATCH_BUDGET} "
                                        "steps")
            matched = ere_search(prog, self.kver)
        self.results[pattern] = matched
        return matched


def _list_files(paths: Sequence[str], diags: list[Diagnostic], stat_checked: bool = True) -> list[str]:
    """``cfg_files_list()`` for every path, merged and sorted by file name (``cfg_files_insert_sorted()``)."""
    by_name: dict[bytes, str] = {}
    last_was_dir = False  # kmod 30: what the stat buffer of a failed fstatat() still holds (see below)
    for path in paths:
        try:
            isdir = os.path.isdir(path)
            exists = os.path.exists(path)
        except (OSError, ValueError):
            continue
        if not exists:
            continue  # DBG("could not stat ...")
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
            entry_name = ent.name
            if entry_name.startswith(".") or len(entry_name) < 6 or not entry_name.endswith(".conf"):
                continue  # INF("All cfg files need .conf") is below the default log level
            try:
                isdir = ent.is_dir()  # cfg_files_filter_out(): fstatat(), following links
                if not isdir:
                    ent.stat()
                last_was_dir = isdir
            except OSError:
                if stat_checked:
                    # "%s%s": depmod joins the directory and the name without a '/'.
                    diags.append(diag(ERROR, "config-entry-unreadable",
                                      f"Cannot stat directory entry: {path}{entry_name}"))
                    continue
                # v30 reads the uninitialised stat buffer, which in Debian's build still holds the
                # last successful fstatat() of this function (observed: a dangling .conf after a
                # .conf directory is "Directories inside directories", else cfg_file_parse() fails).
                isdir = last_was_dir
            if isdir:
                diags.append(diag(ERROR, "config-subdirectory",
                                  f"Directories inside directories are not supported: {path}/{entry_name}"))
                continue
            by_name.setdefault(os.fsencode(entry_name), os.path.join(path, entry_name))
    return [by_name[k] for k in sorted(by_name)]


def load_config(paths: Sequence[str], kver: str, kmod: Kmod | None = None) -> DepmodConfig:
    """Read depmod.d files from ``paths`` (directories or files) as ``cfg_load()`` does (of ``kmod``'s
    release; None: the current one)."""
    diags: list[Diagnostic] = []
    files = _list_files(paths, diags, kmod is None or kmod.config_entry_stat_checked)
    # Entries in the order written; depmod prepends each to its list, so they are reversed at the end.
    searches: list[SearchEntry] = []
    overrides: list[tuple[str, str]] = []
    externals: list[str] = []
    excludes: list[str] = []
    entries: dict[str, SearchEntry] = {}  # one record per distinct search word
    matches = _KernelMatcher(kver)
    for fname in files:
        try:
            data = read_input(fname, DEPMOD_CONFIG)
        except InputFileError as e:
            diags.append(diag(ERROR, "config-unreadable", f"file parse {fname}: {e.strerror}"))
            continue
        for raw_line, linenum in read_wrapped_lines(data, kmod.wrapped_eof_backslash if kmod else b""):
            nul = raw_line.find(b"\0")
            if nul >= 0:
                raw_line = raw_line[:nul]  # the line is a C string from here on
            if not raw_line or raw_line[0] == 0x23:  # '#'
                continue
            words = [w.decode("utf-8", "surrogateescape") for w in _WORDS.split(raw_line) if w]  # strtok_r("\t ")
            if not words:
                continue
            cmd, args = words[0], words[1:]
            try:
                if cmd == "search":
                    for w in args:
                        entry = entries.get(w)
                        if entry is None:
                            kind = SEARCH_BUILTIN if w == "built-in" else SEARCH_EXTERNAL if w == "external" \
                                else SEARCH_PATH
                            entry = entries[w] = SearchEntry(kind, w if kind == SEARCH_PATH else "")
                        searches.append(entry)
                elif cmd == "override" and len(args) >= 3:
                    if matches(args[1]):
                        overrides.append((args[0], args[2]))
                elif cmd == "external" and len(args) >= 2:
                    if matches(args[0]):
                        externals.append(args[1])
                elif cmd == "exclude":
                    excludes += args
                elif cmd in ("include", "make_map_files"):
                    pass  # INF("command %s not implemented yet"), below the default log level
                else:
                    diags.append(diag(ERROR, "config-bad-line",
                                      f"{fname}:{linenum}: ignoring bad line starting with '{cmd}'",
                                      file=fname, line=linenum))
            except PatternTooComplex as e:  # kmodcompat's own line: depmod would try (and perhaps hang)
                diags.append(diag(ERROR, "config-pattern-too-complex",
                                  f"{fname}:{linenum}: kernel pattern not matched, too complex ({e})",
                                  file=fname, line=linenum))
    if not searches:
        searches.append(SearchEntry(SEARCH_PATH, "updates"))
    return DepmodConfig(tuple(reversed(searches)), tuple(reversed(overrides)), tuple(reversed(externals)),
                        tuple(reversed(excludes)), tuple(files), tuple(diags))


_WORDS = re.compile(rb"[\t ]+")
