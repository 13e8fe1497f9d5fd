"""kABI symbol lists and severity rules: what a distribution promises, read as each tool that owns the
format reads it. Nothing here compares; :mod:`kmodcompat.diff.policy` applies what these give.

Symbol lists (``diff --symbol-list``), told apart by their content:

* **sectioned**, libabigail's INI reading (``src/abg-tools-utils.cc``
  ``gen_suppr_spec_from_kernel_abi_whitelists()``, ``src/abg-ini.cc``): ``[section]``
  headers, one name per line (a property without a value; indentation is
  whitespace, ``#`` and ``;`` start comments). Only the sections whose name ends
  in ``whitelist``, ``stablelist`` (libabigail 2.3+) or ``symbol_list``
  (libabigail as Android ships it) count, the others are skipped as libabigail
  skips them. Red Hat's ``kabi_stablelist_<arch>`` is one such file
  (``redhat/kabi/show-kabi -s`` writes ``[rhel9_x86_64_stablelist]`` and a tab
  before each name), as are openEuler's ``[oe2203_x86_64_whitelist]`` and
  Android's KMI lists (``android/abi_gki_aarch64*``: ``[abi_symbol_list]``,
  ``# required by x.ko`` comments). Several files and sections are one union.
* **plain**: one name per line, ``#`` comment lines, as suse-kabi-tools'
  ``--filter-symbol-list`` reads it (``src/text/mod.rs`` ``Filter``): a line with
  ``\\``, ``?``, ``*`` or ``[`` is a wildcard pattern, any other a name.

Severity rules (``diff --rules``), told apart by their content:

* **suse-kabi-tools** (``src/rules/mod.rs``, ``doc/suse-kabi-tools.5``; SUSE
  kernel-source ``kabi/severities``): ``[TYPE] PATTERN VERDICT`` a line, ``#`` to
  the end of the line a comment. TYPE is MODULE, NAMESPACE or SYMBOL; without
  it a pattern holding ``/`` or equal to ``vmlinux`` is a module's, one in
  capitals only (``pattern == pattern.to_uppercase()``) a namespace's, any other a
  symbol's. VERDICT is PASS or FAIL. Patterns are wildmat wildcards
  (``matches_wildcard()``: ``*``, ``?``, ``[...]`` with ``^`` for negation, ``\\``
  escapes). Rules keep their order across files: the first match decides.
* **Ubuntu's abi.ignore** (``debian/scripts/checks/abi-check``): one name a line,
  ``#`` lines comments; a change is ignored when the symbol, or the module it is
  exported from, is exactly that name. The older ``blacklist`` file of the Perl
  ``debian/scripts/abi-check`` is read too: ``M: MODULE`` lines name a module.
  A file is this format when no line holds more than one word.

Every input is hostile: the file goes through :mod:`.bounded` (a regular file, a
size cap), a NUL byte, a control character, an over-long line, a line the format
does not allow, a wildcard that cannot be compiled or too many of them end the
read with a :class:`KabiListError` naming the file and the line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from .bounded import KABI_RULES, SYMBOL_LIST, InputKind, read_input

__all__ = ["KabiListError", "MAX_LINE", "MAX_WILDCARDS", "Rule", "SymbolList", "check_wildcards", "is_wildcard",
           "read_rules", "read_symbol_list", "wildmat"]

#: Longest line read. A symbol name is at most KSYM_NAME_LEN (512 since Linux 6.1, include/linux/kallsyms.h);
#: a rule line is two or three words.
MAX_LINE = 4096
#: Wildcard patterns a policy may hold (lists and rules together): a name is tried against each one
#: whose literal prefix it starts with (diff/policy.py), so a file of patterns sharing no prefix costs
#: them all for every export. SUSE's kabi/severities has 45 (of 84 rules).
MAX_WILDCARDS = 256
#: libabigail's section name endings (abg-tools-utils.cc): "whitelist" and "stablelist" (2.3+), and
#: "symbol_list" in the libabigail Android builds with.
SECTION_SUFFIXES = ("whitelist", "stablelist", "symbol_list")
_WILD = frozenset("\\?*[")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class KabiListError(ValueError):
    """A symbol list or rules file that cannot be used: ``PATH:LINE: reason`` (or ``PATH: reason``)."""

    def __init__(self, path: str, line: int | None, reason: str):
        super().__init__(f"{path}:{line}: {reason}" if line is not None else f"{path}: {reason}")
        self.path, self.line, self.reason = path, line, reason


class SymbolList(NamedTuple):
    """One symbol list file: ``names`` each with the line it is first on, ``patterns`` (plain lists) the
    wildcards with theirs, ``sections`` the sections read (sectioned lists)."""

    path: str
    format: str  # "sectioned" | "plain"
    sections: tuple[str, ...]
    names: dict[str, int]
    patterns: tuple[tuple[str, int], ...]

    @property
    def kind(self) -> str:
        """What the file is, for people: Red Hat's stablelist, libabigail's or Android's list, plain."""
        if self.format == "plain":
            return "plain list"
        if any(s.endswith("symbol_list") for s in self.sections):
            return "libabigail/Android symbol list"
        return "kABI stablelist (Red Hat style)"


class Rule(NamedTuple):
    """One severity rule, where it is (file, line) and what it says."""

    path: str
    line: int
    kind: str  # "MODULE" | "NAMESPACE" | "SYMBOL" | "ENTRY" (abi.ignore: the symbol or its module, exactly)
    pattern: str
    verdict: str  # "PASS" | "FAIL"
    format: str  # "suse-kabi-tools" | "abi.ignore"

    @property
    def text(self) -> str:
        """As ``ksymvers unused-rules`` prints a rule: ``TYPE PATTERN VERDICT``; an abi.ignore line as written."""
        return self.pattern if self.kind == "ENTRY" else f"{self.kind} {self.pattern} {self.verdict}"

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _lines(path: str, kind: InputKind) -> Iterable[tuple[int, str]]:
    """(line number, text) of a text file, bounded; the hostile bytes refused with their line."""
    data = read_input(path, kind)
    nul = data.find(b"\0")
    if nul >= 0:
        raise KabiListError(path, data.count(b"\n", 0, nul) + 1, "binary data (a NUL byte): not a text file")
    text = data.decode("utf-8", "surrogateescape")
    for n, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if len(line) > MAX_LINE:
            raise KabiListError(path, n, f"line longer than {MAX_LINE} characters")
        bad = _CONTROL.search(line)
        if bad:
            raise KabiListError(path, n, f"control character {ord(bad.group()):#04x}")
        yield n, line


def read_symbol_list(path: str) -> SymbolList:
    """A symbol list, sectioned or plain by its first line that is neither blank nor a comment.
    Raises :class:`KabiListError` or :class:`~kmodcompat.files.bounded.InputFileError`."""
    lines = list(_lines(path, SYMBOL_LIST))
    first = next((s for _, line in lines if (s := line.strip()) and not s.startswith(("#", ";"))), "")
    out = _sectioned(path, lines) if first.startswith("[") else _plain(path, lines)
    if not out.names and not out.patterns:
        raise KabiListError(path, None, "no symbol names in it")
    return out


def _sectioned(path: str, lines: list[tuple[int, str]]) -> SymbolList:
    names: dict[str, int] = {}
    sections: list[str] = []
    section: str | None = None
    taken = False
    for n, line in lines:
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("["):
            if not s.endswith("]") or len(s) < 3 or "]" in s[1:-1] or "[" in s[1:-1]:
                raise KabiListError(path, n, f"malformed section header {s!r}")
            section = s[1:-1].strip()
            taken = section.endswith(SECTION_SUFFIXES)
            if taken:
                sections.append(section)
            continue
        if section is None:
            raise KabiListError(path, n, "a name before the first [section]")
        if "=" in s:
            raise KabiListError(path, n, f"{s!r} is a property with a value, not a symbol name")
        if len(s.split()) > 1:
            raise KabiListError(path, n, f"more than one word: {s!r}")
        if taken:
            names.setdefault(s, n)
    if not sections:
        raise KabiListError(path, None, "no [...whitelist], [...stablelist] or [...symbol_list] section "
                                        "(the only ones libabigail reads)")
    return SymbolList(path, "sectioned", tuple(sections), names, ())


def _plain(path: str, lines: list[tuple[int, str]]) -> SymbolList:
    names: dict[str, int] = {}
    patterns: list[tuple[str, int]] = []
    for n, line in lines:
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if len(s.split()) > 1:
            raise KabiListError(path, n, f"more than one word: {s!r} (a plain list has one name a line)")
        if is_wildcard(s):
            _compile(path, n, s)
            patterns.append((s, n))
        else:
            names.setdefault(s, n)
    out = SymbolList(path, "plain", (), names, tuple(patterns))
    check_wildcards([out], [])
    return out


def _words(line: str) -> list[str]:
    """suse-kabi-tools' ``get_next_rule_word()``: words split on ASCII whitespace, up to a ``#``."""
    return line.split("#", 1)[0].split()


def read_rules(path: str) -> tuple[Rule, ...]:
    """The rules of one file, in its order: suse-kabi-tools' severities, or Ubuntu's abi.ignore when
    no line holds more than one word. Raises :class:`KabiListError` or ``InputFileError``."""
    lines = list(_lines(path, KABI_RULES))
    ubuntu = all(len(w) <= 1 or (len(w) == 2 and w[0] == "M:") for w in (_words(line) for _, line in lines))
    rules = _abi_ignore(path, lines) if ubuntu else _severities(path, lines)
    if not rules:
        raise KabiListError(path, None, "no rules in it")
    check_wildcards([], rules)
    return tuple(rules)


def is_wildcard(pattern: str) -> bool:
    """A pattern that is not a plain name (suse-kabi-tools' Filter: any of ``\\ ? * [``)."""
    return not _WILD.isdisjoint(pattern)


def check_wildcards(lists: Sequence[SymbolList], rules: Sequence[Rule]) -> None:
    """Refuse more than :data:`MAX_WILDCARDS` wildcard patterns (in one file, or all given together)."""
    n = sum(len(sl.patterns) for sl in lists) + sum(1 for r in rules if r.kind != "ENTRY" and is_wildcard(r.pattern))
    if n > MAX_WILDCARDS:
        paths = sorted({sl.path for sl in lists} | {r.path for r in rules})
        raise KabiListError(paths[0] if len(paths) == 1 else ", ".join(paths), None,
                            f"more than {MAX_WILDCARDS} wildcard patterns ({n})")


def _abi_ignore(path: str, lines: list[tuple[int, str]]) -> list[Rule]:
    out = []
    for n, line in lines:
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("M:"):  # the Perl abi-check's blacklist: m/M: (.*)/
            out.append(Rule(path, n, "MODULE", s[2:].strip(), "PASS", "abi.ignore"))
        else:
            out.append(Rule(path, n, "ENTRY", s, "PASS", "abi.ignore"))
    return out


_TYPES = ("MODULE", "NAMESPACE", "SYMBOL")


def _severities(path: str, lines: list[tuple[int, str]]) -> list[Rule]:
    """suse-kabi-tools' ``parse_rule()``, its messages for what it refuses."""
    out = []
    for n, line in lines:
        w = _words(line)
        if not w:
            continue
        if len(w) == 1:
            raise KabiListError(path, n, "The rule is incomplete, must be in the form '[type] <pattern> <verdict>'")
        if len(w) > 3:
            raise KabiListError(path, n, "Unexpected string found after the verdict")
        if len(w) == 3:
            if w[0] not in _TYPES:
                raise KabiListError(path, n, f"Invalid rule type '{w[0]}', must be either MODULE, NAMESPACE or "
                                             "SYMBOL")
            kind, pattern, verdict = w
        else:
            pattern, verdict = w
            kind = "MODULE" if "/" in pattern or pattern == "vmlinux" else \
                "NAMESPACE" if pattern == pattern.upper() else "SYMBOL"
        if verdict not in ("PASS", "FAIL"):
            raise KabiListError(path, n, f"Invalid verdict '{verdict}', must be either PASS or FAIL")
        _compile(path, n, pattern)
        out.append(Rule(path, n, kind, pattern, verdict, "suse-kabi-tools"))
    return out


def _compile(path: str, line: int, pattern: str) -> str:
    try:
        return wildmat(pattern)
    except ValueError as e:
        raise KabiListError(path, line, f"pattern {pattern!r}: {e}") from None


def wildmat(pattern: str) -> str:
    """A regular expression (for ``re.fullmatch``, DOTALL) matching what Rich Salz's wildmat matches, as
    suse-kabi-tools' ``matches_wildcard()`` ports it: ``*`` any run (``/`` too), ``?`` one character,
    ``[...]`` a class (``^`` first negates it, ``]`` or ``-`` first is literal, ``a-z`` a range), ``\\x``
    the character x. Each starred part is an atomic group (as CPython's fnmatch builds them), so no
    pattern backtracks more than linearly. Raises ValueError for what wildmat would read past its end."""
    pieces: list[str | None] = []  # None: a star
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise ValueError("ends in a lone '\\'")
            pieces.append(re.escape(pattern[i + 1]))
            i += 2
        elif c == "?":
            pieces.append(".")
            i += 1
        elif c == "*":
            if not pieces or pieces[-1] is not None:  # consecutive stars act as one
                pieces.append(None)
            i += 1
        elif c == "[":
            cls, i = _class(pattern, i)
            pieces.append(cls)
        else:
            pieces.append(re.escape(c))
            i += 1
    groups: list[list[str]] = [[]]
    for p in pieces:
        if p is None:
            groups.append([])
        else:
            groups[-1].append(p)
    parts = ["".join(g) for g in groups]
    if len(parts) == 1:
        return parts[0]
    return parts[0] + "".join(f"(?>.*?{p})" for p in parts[1:-1]) + ".*" + parts[-1]


def _class(pattern: str, i: int) -> tuple[str, int]:
    """wildmat's ``case '['`` from ``pattern[i]``: the class as a regex, and where the pattern goes on."""
    n = len(pattern)
    j = i + 1
    reverse = j < n and pattern[j] == "^"
    if reverse:
        j += 1
    items: list[str] = []
    last = ""
    if j < n and pattern[j] in "]-":
        items.append(re.escape(pattern[j]))
        last = pattern[j]
        j += 1
    while j < n and pattern[j] != "]":
        c = pattern[j]
        if c == "-" and j + 1 < n and pattern[j + 1] != "]" and last:
            hi = pattern[j + 1]
            if last <= hi:
                items.append(f"{re.escape(last)}-{re.escape(hi)}")
            last = hi
            j += 2
        else:
            items.append(re.escape(c))
            last = c
            j += 1
    if j >= n:
        raise ValueError("a '[' without its ']'")
    if not items:
        return ("." if reverse else "(?!)"), j + 1
    return ("[^" if reverse else "[") + "".join(items) + "]", j + 1
