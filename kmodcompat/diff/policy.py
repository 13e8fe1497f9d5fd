"""The kABI policy: which export changes count, by the symbol lists and severity rules a distribution keeps.

The lists and rules are read on the input side (:mod:`kmodcompat.files.kabi_lists`);
here they judge each change of a kABI diff, the way the tools that own them do:

* **symbol lists** restrict what is considered (libabigail's KMI whitelists keep
  only the listed symbols; suse-kabi-tools' ``--filter-symbol-list`` considers
  only the names it matches): a change to an export no list names is excused;
* **severity rules** then decide, first match wins (suse-kabi-tools
  ``Rules::find_matching_rule()``): PASS excuses the change, FAIL counts it, and a
  change no rule matches counts (``is_tolerated()`` returns false). A rule is
  matched against the export's OLD record, its module as Module.symvers names it
  (``drivers/net/tun``, ``vmlinux``) and its namespace; an added export against
  its new record (``SymversCorpus::compare_with_buffer()``). An abi.ignore entry
  excuses the symbol of that name or every export of the module of that name
  (Ubuntu ``abi-check``);
* only an incompatible change can count (:func:`.module.export_change`): the
  policy narrows what breaks, it never makes an added export a break.

:func:`judge_kabi` gives one :class:`Verdict` per change and the rules' use:
the changes each rule decided and the exports of either side it is the first
match of (``ksymvers unused-rules`` reports a rule that is the first match of no
export). Rendering is the report's (:mod:`kmodcompat.report.diff_json`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from ..depmod.tree import ModuleTree
from ..files.kabi_lists import Rule, SymbolList, is_wildcard, wildmat
from ..files.symvers import KERNEL_MODULE, Symvers
from ..records import MODULE_SUFFIXES, path_to_modname
from .results import ExportChange, ExportInfo

__all__ = ["KabiPolicy", "PolicyResult", "Verdict", "judge_kabi", "module_paths", "symvers_module_name"]


class KabiPolicy(NamedTuple):
    """The symbol lists and rules given, in the order given (rules: file by file, line by line)."""

    symbol_lists: tuple[SymbolList, ...] = ()
    rules: tuple[Rule, ...] = ()


class Verdict(NamedTuple):
    """What the policy makes of one change: ``counts`` it against the kABI or not, ``by`` what
    ("symbol-list", "rule", "default", "compatible"), ``source`` the list entry or rule (FILE:LINE) and
    ``why`` in words."""

    counts: bool
    by: str
    source: str | None
    why: str


def symvers_module_name(path: str) -> str:
    """A module as Module.symvers names it (modpost: its path in the build tree, without ``.ko``): the
    path under the module directory without the ``kernel/`` of in-tree modules and the ``.ko*``
    suffix (``kernel/drivers/net/tun.ko.xz`` is ``drivers/net/tun``, ``updates/dkms/foo.ko`` is
    ``updates/dkms/foo``); an absolute path (a module file given alone) by its file name."""
    name = path.rsplit("/", 1)[-1] if path.startswith("/") else path.removeprefix("kernel/")
    suffix = max((x for x in MODULE_SUFFIXES if name.endswith(x)), key=len, default="")
    return name[:len(name) - len(suffix)]


def module_paths(side: ModuleTree | Symvers | Mapping[str, str]) -> dict[str, str]:
    """Exporter name (as the kABI diff names it) → its module as Module.symvers names it."""
    if isinstance(side, ModuleTree):
        out = {m.name: symvers_module_name(m.relpath if m.relpath is not None else m.path) for m in side.modules}
    elif isinstance(side, Symvers):
        out = {path_to_modname(e.module): e.module for e in side.entries if not e.in_kernel}
    else:
        out = dict(side)
    out[KERNEL_MODULE] = KERNEL_MODULE
    return out


class _Wildcards:
    """Wildcard patterns in order, bucketed by their literal prefix (the text before the first ``\\``,
    ``?``, ``*`` or ``[``): a value is tried only against the patterns whose prefix it starts with, the
    earliest first. One alternation would try every pattern at every value (4096 patterns against 20,000
    names: 46 s here); real rules and lists have distinct prefixes (``drivers/net/wireless/ath/``)."""

    def __init__(self, patterns: Sequence[tuple[int, str]]):
        self.by_prefix: dict[str, list[tuple[int, re.Pattern[str]]]] = {}
        for key, pattern in patterns:
            prefix = re.split(r"[\\?*\[]", pattern, maxsplit=1)[0]
            self.by_prefix.setdefault(prefix, []).append((key, re.compile(wildmat(pattern), re.DOTALL)))
        self.lengths = sorted({len(p) for p in self.by_prefix})

    def first(self, value: str) -> int | None:
        """The smallest key among the patterns matching ``value`` whole; None: none does."""
        found: list[tuple[int, re.Pattern[str]]] = []
        for n in self.lengths:
            if n > len(value):
                break
            found += self.by_prefix.get(value[:n], ())
        return next((k for k, rx in sorted(found, key=lambda f: f[0]) if rx.fullmatch(value)), None)


class _Matcher:
    """The lists and rules compiled: literal names by dict, wildcards bucketed (:class:`_Wildcards`), the
    per-module and per-namespace answers cached."""

    def __init__(self, policy: KabiPolicy):
        self.policy = policy
        self.names: dict[str, tuple[int, int]] = {}  # name → (list index, line): the first list naming it
        where: list[tuple[int, int]] = []
        for li, sl in enumerate(policy.symbol_lists):
            for name, line in sl.names.items():
                self.names.setdefault(name, (li, line))
            where += [(li, line) for _, line in sl.patterns]
        self.list_where = where
        self.list_wild = _Wildcards(list(enumerate(p for sl in policy.symbol_lists for p, _ in sl.patterns)))
        self.literal: dict[str, dict[str, int]] = {"MODULE": {}, "NAMESPACE": {}, "SYMBOL": {}}
        wild: dict[str, list[tuple[int, str]]] = {"MODULE": [], "NAMESPACE": [], "SYMBOL": []}
        for i, r in enumerate(policy.rules):
            for k in (("SYMBOL", "MODULE") if r.kind == "ENTRY" else (r.kind,)):
                if r.kind != "ENTRY" and is_wildcard(r.pattern):
                    wild[k].append((i, r.pattern))
                else:
                    self.literal[k].setdefault(r.pattern, i)
        self.wild = {k: _Wildcards(v) for k, v in wild.items()}
        self._cache: dict[tuple[str, str], int | None] = {}

    def listed(self, name: str) -> tuple[int, int] | None:
        """(list index, line) of the first list entry naming or matching ``name``; None: none does."""
        hit = self.names.get(name)
        if hit is not None:
            return hit
        i = self.list_wild.first(name)
        return self.list_where[i] if i is not None else None

    def _first(self, kind: str, value: str) -> int | None:
        found = [i for i in (self.literal[kind].get(value), self.wild[kind].first(value)) if i is not None]
        return min(found) if found else None

    def _cached(self, kind: str, value: str) -> int | None:
        key = (kind, value)
        if key not in self._cache:
            self._cache[key] = self._first(kind, value)
        return self._cache[key]

    def first_rule(self, symbol: str, module: str, namespace: str | None) -> int | None:
        """The index of the first rule matching the export (``find_matching_rule()``), None for none."""
        found = [i for i in (self._cached("MODULE", module), self._first("SYMBOL", symbol),
                             self._cached("NAMESPACE", namespace) if namespace is not None else None)
                 if i is not None]
        return min(found) if found else None


@dataclass(frozen=True)
class PolicyResult:
    """The policy's verdict on every change of a kABI diff (``verdicts``, by export name), how many changes
    each rule decided and how many exports of either side each is the first match of, and how many names
    of each list no side exports."""

    policy: KabiPolicy
    verdicts: Mapping[str, Verdict]
    rule_changes: tuple[int, ...]
    rule_exports: tuple[int, ...]
    list_unexported: tuple[int, ...]
    _judge: _Judge = field(repr=False, compare=False)

    def verdict(self, change: ExportChange) -> Verdict:
        """The verdict on ``change``: the kABI diff's on that export (a module's own export change in a tree
        diff is the same export's), or, for an export the kABI diff does not hold, judged the same way."""
        v = self.verdicts.get(change.name)
        return v if v is not None else self._judge(change)[0]

    @property
    def listed_names(self) -> int:
        """Distinct names the symbol lists hold (their union)."""
        return len(self._judge.m.names)

    @property
    def unused_rules(self) -> tuple[int, ...]:
        """The rules that decided no change, in their order."""
        return tuple(i for i, n in enumerate(self.rule_changes) if not n)


class _Judge:
    def __init__(self, policy: KabiPolicy, old_paths: Mapping[str, str], new_paths: Mapping[str, str]):
        self.policy, self.m = policy, _Matcher(policy)
        self.old_paths, self.new_paths = old_paths, new_paths

    def rule_for(self, info: ExportInfo, paths: Mapping[str, str]) -> int | None:
        return self.m.first_rule(info.name, paths.get(info.exporter, info.exporter), info.namespace)

    def __call__(self, c: ExportChange) -> tuple[Verdict, int | None]:
        """The verdict on one change and the rule that decided it (None: no rule was consulted or matched)."""
        p = self.policy
        info = c.new if c.kind == "added" else c.old
        assert info is not None
        listed = self.m.listed(c.name) if p.symbol_lists else None
        considered = not p.symbol_lists or listed is not None  # the lists filter before the rules judge
        rule = self.rule_for(info, self.new_paths if c.kind == "added" else self.old_paths) \
            if p.rules and considered else None
        if not c.incompatible:
            return Verdict(False, "compatible", None, "a compatible change"), rule
        if not considered:
            return Verdict(False, "symbol-list", None, "not in the symbol lists"), None
        where = f"{p.symbol_lists[listed[0]].path}:{listed[1]}" if listed is not None else None
        if rule is not None:
            r = p.rules[rule]
            what = "ignored by" if r.kind == "ENTRY" else f"{r.verdict} by"
            return Verdict(r.verdict == "FAIL", "rule", r.where, f"{what} {r.where} ({r.text})"), rule
        if p.rules:
            return Verdict(True, "default", where, "no rule matches: FAIL by default"
                           + (f" (listed in {where})" if where else "")), None
        return Verdict(True, "symbol-list", where, f"listed in {where}"), None


def judge_kabi(policy: KabiPolicy, changes: Sequence[ExportChange], old_exports: Mapping[str, ExportInfo],
               new_exports: Mapping[str, ExportInfo], old_paths: Mapping[str, str],
               new_paths: Mapping[str, str]) -> PolicyResult:
    """Every change judged; the rules' use counted over the changes and over both sides' exports."""
    judge = _Judge(policy, old_paths, new_paths)
    verdicts: dict[str, Verdict] = {}
    decided = [0] * len(policy.rules)
    for c in changes:
        v, rule = judge(c)
        verdicts[c.name] = v
        if rule is not None:
            decided[rule] += 1
    first = [0] * len(policy.rules)
    if policy.rules:
        for exports, paths in ((old_exports, old_paths), (new_exports, new_paths)):
            for x in exports.values():
                rule = judge.rule_for(x, paths)
                if rule is not None:
                    first[rule] += 1
    unexported = tuple(sum(1 for n in sl.names if n not in old_exports and n not in new_exports)
                       for sl in policy.symbol_lists)
    return PolicyResult(policy, verdicts, tuple(decided), tuple(first), unexported, judge)
