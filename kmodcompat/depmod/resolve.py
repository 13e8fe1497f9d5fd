"""depmod's computation: symbol table, dependencies, ordering and cycle report.

Each step mirrors a function of tools/depmod.c (kmod 30 and 34.2 share the
logic; release differences come from the :class:`~kmodcompat.kmod.profile.Kmod` profile):

* ``depmod_load_modules()``: for each module in array order, its exports
  (``kmod_elf_get_symbols``, :func:`~kmodcompat.kmod.elf.get_symbols`) go into ONE hash
  keyed by name, after the kernel's; ``hash_add()`` REPLACES an existing entry,
  so a symbol belongs to the LAST module (in array order) exporting it and a
  module export hides the kernel's. Then its ``.modinfo`` (aliases, softdeps,
  weakdeps) and its dependency symbols (:func:`~kmodcompat.kmod.elf.get_dependency_symbols`).
* ``depmod_load_module_dependencies()``: every dependency symbol is looked up
  (one leading '.' and one ``-P`` character stripped); unknown -> "needs
  unknown symbol" (with ``-e``, not for weak ones); with ``-E``, a CRC that
  differs from the table's -> "disagrees about version of symbol" (no zero
  guard, docs/formats.md §3.10); an owned symbol adds the owner to the module's
  dependency array once (``array_append_unique``) and counts a user.
* ``depmod_calculate_dependencies()``: Kahn's sort with a LIFO of roots,
  modules without users first; ``dep_sort_idx`` is the output position.
  Modules left with users are in or below a cycle: depmod reports them
  (``depmod_report_cycles()``) and exits 1 without writing anything.
* ``mod_get_all_sorted_dependencies()``: a modules.dep line lists the
  transitive dependencies sorted by ``dep_sort_idx``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import ModuleReadError
from ..kmod.elf import KmodAbort, KmodError, KmodSymbol, get_dependency_symbols, get_symbols, open_abort
from ..kmod.file import decoder_message
from ..kmod.profile import Kmod
from ..records import ModuleRecord, ModversionsFormat as Fmt, raw
from ..parse.scan import gc_paused
from .tree import ModuleTree, TreeModule
from .diagnostics import ERROR, WARNING, Diagnostic, diag
from .kernel_symbols import KernelSymbols
from .libkmod_hash import SYMBOLS_BUCKETS, hash_order

__all__ = ["Depmod", "Disagreement", "SymbolEntry", "Unresolved", "run_depmod"]

KERNEL = -1  # owner index of the kernel image (symbol->owner == NULL)


@dataclass(frozen=True, slots=True)
class SymbolEntry:
    """One entry of depmod's symbol hash after loading: the last writer's owner and CRC."""

    name: str
    owner: int  # module index, or KERNEL
    crc: int


@dataclass(frozen=True, slots=True)
class Unresolved:
    module: int
    symbol: str
    weak: bool


@dataclass(frozen=True, slots=True)
class Disagreement:
    """A "disagrees about version of symbol" finding, with why the CRCs differ.

    ``false_positive``: the module's CRC is 0 only because ``__versions`` lacks
    the symbol, while the extended tables (``__version_ext_*``, Linux 6.14+,
    which no released kmod reads) carry the exporter's CRC, or the module has no
    version tables at all (nothing the kernel would check). ``reason`` names
    the case: "extended-only", "no-modversions", or "crc-differs" (a real one).
    """

    module: int
    symbol: str  # as the module names it (dots kept)
    module_crc: int
    expected_crc: int
    owner: int  # exporter module index or KERNEL
    false_positive: bool
    reason: str
    ext_crc: int | None = None


@dataclass(slots=True)
class Depmod:
    """The state depmod holds once it has loaded a tree (``struct depmod`` + ``struct mod``)."""

    tree: ModuleTree
    kmod: Kmod
    kernel: KernelSymbols | None
    print_unknown: bool
    prefix: str = ""  # cfg.sym_prefix ("" for none)
    symbols: dict[str, SymbolEntry] = field(default_factory=dict)
    exports: list[list[tuple[str, int]]] = field(default_factory=list)  # per module: (name, crc) as added
    info: list[tuple[tuple[str, str | None], ...]] = field(default_factory=list)  # per module: .modinfo (None: no '=')
    deps: list[list[int]] = field(default_factory=list)  # per module: direct dependencies, first use order
    edges: dict[tuple[int, int], list[str]] = field(default_factory=dict)  # (importer, owner) -> symbols
    kernel_imports: list[list[str]] = field(default_factory=list)  # per module: symbols the kernel provides
    users: list[int] = field(default_factory=list)
    dep_sort_idx: list[int] = field(default_factory=list)
    unresolved: list[Unresolved] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)
    cycles: list[list[str]] = field(default_factory=list)  # module-name chains as reported
    cycle_modules: int = 0  # "Found %d modules in dependency cycles!"
    aborted: str | None = None  # depmod would abort (assertion) while reporting cycles
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def modules(self) -> tuple[TreeModule, ...]:
        return self.tree.modules

    @property
    def failed(self) -> bool:
        """depmod exits 1 without writing (dependency cycles, a module directory it could not search)."""
        return bool(self.cycles) or self.cycle_modules > 0 or self.aborted is not None \
            or self.tree.search_failed is not None

    # -- symbol hash -------------------------------------------------------------

    def _strip_prefix(self, name: str) -> str:
        prefix = self.prefix
        return name[1:] if prefix and name.startswith(prefix) else name

    def symbol_add(self, name: str, crc: int, owner: int, prefix_skipped: bool = False) -> None:
        """``depmod_symbol_add()``: hash_add() replaces an entry of the same name."""
        if not prefix_skipped:
            name = self._strip_prefix(name)
        self.symbols[name] = SymbolEntry(name, owner, crc)

    def symbol_find(self, name: str) -> SymbolEntry | None:
        """``depmod_symbol_find()``: one leading '.' (ppc64 function descriptors), then the prefix."""
        if name.startswith("."):
            name = name[1:]
        return self.symbols.get(self._strip_prefix(name))

    def symbols_find(self, names: list[str]) -> Iterator[SymbolEntry | None]:
        """:meth:`symbol_find` of each name: a module's dependency symbols, the per-import hot path."""
        if self.prefix or min(names, default="")[:1] <= ".":
            return map(self.symbol_find, names)
        # '.' sorts below every character a C identifier starts with: when not even the least
        # name starts with it (or below it), no name has a dot to strip, and each is a plain
        # lookup, without a Python-level call.
        return map(self.symbols.get, names)

    def symbol_order(self) -> list[SymbolEntry]:
        """Symbols in hash iteration order (``output_symbols()``)."""
        keys = hash_order((raw(k) for k in self.symbols), SYMBOLS_BUCKETS)
        return [self.symbols[k.decode("utf-8", "surrogateescape")] for k in keys]

    # -- dependencies ---------------------------------------------------------------

    def all_dependencies(self, i: int) -> list[int]:
        """``mod_get_all_sorted_dependencies()``: transitive dependencies by ``dep_sort_idx``."""
        seen: set[int] = set()
        stack = list(reversed(self.deps[i]))
        while stack:
            d = stack.pop()
            if d in seen:
                continue
            seen.add(d)
            stack.extend(reversed(self.deps[d]))
        return sorted(seen, key=self.dep_sort_idx.__getitem__)


def _load_kernel(dm: Depmod) -> None:
    k = dm.kernel
    if k is None:
        return
    for name, crc, skipped in k.symbols:
        dm.symbol_add(name, crc, KERNEL, skipped)
    dm.symbol_add("__this_module", 0, KERNEL, True)
    dm.symbol_add("_GLOBAL_OFFSET_TABLE_", 0, KERNEL, True)
    if dm.symbol_find("TOC.") is None:
        dm.symbol_add("TOC.", 0, KERNEL, True)


def _decoder_lines(kmod: Kmod, err: ModuleReadError) -> list[Diagnostic]:
    """libkmod's own log line when a decompressor fails (kmod 34: ``depmod: ERROR: xz: ...``)."""
    message = decoder_message(kmod, err, "depmod")
    return [] if message is None else [diag(ERROR, "decompress", message.removeprefix("depmod: ERROR: "))]


def _load_modules(dm: Depmod) -> list[list[KmodSymbol] | None]:
    """``depmod_load_modules()``: exports into the hash, then info; returns each module's
    dependency symbols (None: libkmod gave none)."""
    kmod = dm.kmod
    dep_symbols: list[list[KmodSymbol] | None] = []
    for i, m in enumerate(dm.modules):
        opened = m.opened
        exports: list[tuple[str, int]] = []
        info: tuple[tuple[str, str | None], ...] = ()
        depsyms = None
        abort = open_abort(kmod, opened) if isinstance(opened, ModuleReadError) else None
        if abort is not None:  # kmod_module_get_symbols() -> kmod_elf_new(): an assert() ends depmod
            raise abort
        if isinstance(opened, ModuleReadError):
            # Every libkmod call re-opens the file and fails again; a decompressor logs each time.
            dm.diagnostics += _decoder_lines(kmod, opened)
            dm.diagnostics.append(diag(ERROR, "module-unreadable",
                                       f"failed to load symbols from {m.path}: {os.strerror(opened.errno)}",
                                       module=m.name, path=m.path, reason=opened.reason))
            dm.diagnostics += _decoder_lines(kmod, opened) * 2
        else:
            rec: ModuleRecord = opened
            try:
                for s in get_symbols(kmod, rec):
                    dm.symbol_add(s.name, s.crc, i)
                    exports.append((s.name, s.crc))
            except KmodError as e:
                if e.errno != kmod.missing_section_errno:
                    dm.diagnostics.append(diag(ERROR, "symbols-unreadable",
                                               f"failed to load symbols from {m.path}: {e}",
                                               module=m.name, path=m.path))
            # kmod_module_get_info(): the .modinfo pairs (then signature pseudo-keys, which
            # are never alias/softdep/weakdep, so they are left out here); no .modinfo, no list.
            # A string without '=' has the value "" there; None here (the record's own pairs).
            if rec.section(".modinfo") is not None:
                info = rec.modinfo
            try:
                depsyms = get_dependency_symbols(kmod, rec)
            except KmodError:
                depsyms = None  # DBG("ignoring %s: no dependency symbols")
        dm.exports.append(exports)
        dm.info.append(info)
        dep_symbols.append(depsyms)
    return dep_symbols


def _classify(rec: ModuleRecord | None, symbol: str, module_crc: int, expected: int) -> tuple[bool, str, int | None]:
    """Why a module's CRC differs from the table's (see :class:`Disagreement`)."""
    if rec is None:
        return False, "crc-differs", None
    in_versions = rec.versions is not None and rec.versions.well_formed and any(
        e.name == symbol for e in rec.versions.entries)
    ext = {e.name: e.crc for e in rec.ext_versions.entries} if rec.ext_versions is not None else {}
    ext_crc = ext.get(symbol)
    if not in_versions and ext_crc is not None:
        return ext_crc == expected, "extended-only", ext_crc
    if not in_versions and rec.modversions_format == Fmt.NONE:
        return True, "no-modversions", None
    return False, "crc-differs", ext_crc


def _load_dependencies(dm: Depmod, dep_symbols: list[list[KmodSymbol] | None]) -> None:
    """``depmod_load_dependencies()`` / ``depmod_load_module_dependencies()``."""
    n = len(dm.modules)
    dm.deps = [[] for _ in range(n)]
    dm.users = [0] * n
    dm.kernel_imports = [[] for _ in range(n)]
    check = dm.kernel is not None and dm.kernel.check_symvers
    edges, users = dm.edges, dm.users
    for i, m in enumerate(dm.modules):
        syms = dep_symbols[i]
        if syms is None:
            continue
        deps, kernel_imports = dm.deps[i], dm.kernel_imports[i]
        for s, entry in zip(syms, dm.symbols_find([s.name for s in syms])):
            if entry is None:
                dm.unresolved.append(Unresolved(i, s.name, s.weak))
                if dm.print_unknown and not s.weak:
                    dm.diagnostics.append(diag(WARNING, "unknown-symbol", f"{m.path} needs unknown symbol {s.name}",
                                               module=m.name, symbol=s.name))
                continue
            if check and entry.crc != s.crc and not s.weak:
                fp, reason, ext_crc = _classify(m.record, s.name, s.crc, entry.crc)
                dm.disagreements.append(Disagreement(i, s.name, s.crc, entry.crc, entry.owner, fp, reason, ext_crc))
                if dm.print_unknown:
                    dm.diagnostics.append(diag(WARNING, "disagrees",
                                               f"{m.path} disagrees about version of symbol {s.name}",
                                               module=m.name, symbol=s.name, false_positive=fp, reason=reason))
            owner = entry.owner
            if owner == KERNEL:
                kernel_imports.append(s.name)
                continue
            edge = edges.get((i, owner))
            if edge is None:
                edge = edges[(i, owner)] = []
                deps.append(owner)
                users[owner] += 1
            edge.append(s.name)


def _calculate(dm: Depmod) -> None:
    """``depmod_calculate_dependencies()``: topological order, or the cycle report."""
    n = len(dm.modules)
    users = list(dm.users)
    roots = [i for i in range(n) if users[i] == 0]
    dm.dep_sort_idx = [0x7FFFFFFF] * n
    n_sorted = 0
    while roots:
        src = roots.pop()
        dm.dep_sort_idx[src] = n_sorted
        n_sorted += 1
        for dst in dm.deps[src]:
            users[dst] -= 1
            if users[dst] == 0:
                roots.append(dst)
    if n_sorted < n:
        _report_cycles(dm, users)


def _report_cycles(dm: Depmod, users: list[int]) -> None:
    """``depmod_report_cycles()`` and ``depmod_report_cycles_from_root()``, step for step.

    The DFS keeps one ``visited`` flag per module across roots and re-expands a
    visited module that is not the root; its stack holds at most as many
    vertices as there are modules with users left (``assert(is < stack_size)``).
    """
    names = [m.name for m in dm.modules]
    roots = [i for i in range(len(users)) if users[i] > 0]
    stack_size = len(roots)
    visited = [False] * len(users)
    loop_set: set[str] = set()

    def remove(i: int) -> None:
        if i in roots:
            roots.remove(i)

    while roots:
        root = roots.pop(0)
        stack: list[tuple[int, tuple[int, Any] | None]] = [(root, None)]  # (vertex, its parent's pair)
        while stack:
            vertex = stack.pop()
            m, parent = vertex
            if visited[m] and m == root:
                chain = []
                v = parent
                while v is not None:
                    chain.append(v[0])
                    loop_set.add(names[v[0]])
                    v = v[1]
                chain.reverse()
                for c in chain:
                    remove(c)
                cycle = [names[c] for c in chain] + [names[m]]
                dm.cycles.append(cycle)
                dm.diagnostics.append(diag(ERROR, "cycle", "Cycle detected: " + " -> ".join(cycle), cycle=cycle))
                continue
            visited[m] = True
            if not dm.deps[m]:
                remove(m)
                continue
            for d in dm.deps[m]:
                if len(stack) >= stack_size:
                    dm.aborted = "depmod_report_cycles_from_root: Assertion `is < stack_size' failed."
                    return
                stack.append((d, vertex))
    dm.cycle_modules = len(loop_set)
    dm.diagnostics.append(diag(ERROR, "cycles-found", f"Found {len(loop_set)} modules in dependency cycles!",
                               count=len(loop_set)))


def run_depmod(tree: ModuleTree, kernel: KernelSymbols | None = None, print_unknown: bool = False,
               prefix: str = "", kmod: Kmod | None = None) -> Depmod:
    """Everything depmod computes for ``tree`` before it writes; diagnostics in depmod's order.

    ``kernel``: the ``-F``/``-E`` symbols (None: neither given; then ``-e`` is
    turned off with the warning depmod prints). ``prefix``: the ``-P`` character.
    """
    kmod = tree.kmod if kmod is None else kmod
    dm = Depmod(tree, kmod, kernel, print_unknown, prefix)
    if kernel is not None:
        dm.diagnostics += kernel.diagnostics
    elif print_unknown:
        dm.diagnostics.append(diag(WARNING, "e-needs-symbols", "-e needs -E or -F"))
        dm.print_unknown = False
    dm.diagnostics += tree.diagnostics
    # The dependency symbols (190k on bookworm amd64, NamedTuples, which the collector
    # tracks for good, unlike plain tuples) are dropped once resolved: made and freed with
    # the collector paused, it never traverses them (its time in graph_for_tree(), with the
    # records frozen: 0.10-0.16 -> 0.05 s).
    with gc_paused():
        _load_kernel(dm)
        try:
            dep_symbols = _load_modules(dm)
        except KmodAbort as e:  # nothing after it runs: no output file is written
            dm.aborted = e.assertion
            return dm
        _load_dependencies(dm, dep_symbols)
        _calculate(dm)
    return dm
