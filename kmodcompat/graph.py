"""The symbol dependency graph of a module tree, as depmod resolves it.

Nodes are the tree's modules (by module name) plus the kernel image,
``"vmlinux"``, when kernel exports were given (``-F System.map`` or ``-E
Module.symvers``, with depmod's ``-P`` prefix handling). An edge goes from
the importer to the exporter of each resolved import and carries the
symbols, in the importer's symbol order. Resolution is depmod's own
(:mod:`kmodcompat.depmod.resolve`): the last module in depmod order
exporting a symbol owns it, a module export hides the kernel's.

What depmod only warns about is first-class here: unresolved imports,
symbols exported by several modules (and which one depmod picked), and
dependency cycles (depmod's own report, plus every strongly connected
component, which also covers trees depmod would abort on).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import networkx as nx

from .depmod.kernel_symbols import KernelSymbols
from .depmod.resolve import KERNEL, Depmod, Disagreement, run_depmod
from .depmod.tree import ModuleTree

__all__ = ["KERNEL_NODE", "DuplicateExport", "TreeGraph", "build_graph", "closure", "graph_for_tree"]

KERNEL_NODE = "vmlinux"


@dataclass(frozen=True, slots=True)
class DuplicateExport:
    """A symbol several modules export; depmod keeps the last one in its module order."""

    symbol: str
    exporters: tuple[str, ...]  # module names in depmod order (the kernel first when it has it too)
    winner: str


@dataclass(frozen=True, slots=True)
class TreeGraph:
    """The graph with the findings that do not fit in it."""

    graph: nx.DiGraph
    depmod: Depmod
    unresolved: tuple[tuple[str, str, bool], ...]  # (module, symbol, weak)
    duplicates: tuple[DuplicateExport, ...]
    cycles: tuple[tuple[str, ...], ...]  # depmod's "Cycle detected" chains (first module repeated last)
    components: tuple[tuple[str, ...], ...]  # strongly connected components of more than one module (or self-loops)
    disagreements: tuple[Disagreement, ...]


def _name(dm: Depmod, i: int) -> str:
    return KERNEL_NODE if i == KERNEL else dm.modules[i].name


def build_graph(dm: Depmod) -> TreeGraph:
    """The :class:`TreeGraph` of a depmod run."""
    mods = dm.modules
    g = nx.DiGraph()
    for i, m in enumerate(mods):
        g.add_node(m.name, kind="module", path=m.output_path, index=i,
                   error=None if m.error is None else m.error.reason,
                   exports=len(dm.exports[i]) if i < len(dm.exports) else 0)
    if dm.kernel is not None:
        g.add_node(KERNEL_NODE, kind="kernel", path=dm.kernel.path, index=KERNEL, error=None,
                   exports=len(dm.kernel.symbols))
    g.add_edges_from((mods[i].name, mods[owner].name, {"symbols": tuple(syms)})
                     for (i, owner), syms in dm.edges.items())
    if dm.kernel is not None:
        g.add_edges_from((mods[i].name, KERNEL_NODE, {"symbols": tuple(syms)})
                         for i, syms in enumerate(dm.kernel_imports) if syms)
    exporters: dict[str, list[str]] = {}
    if dm.kernel is not None:
        for name, _crc, _skipped in dm.kernel.symbols:
            exporters.setdefault(name, [KERNEL_NODE])
    for i, exp in enumerate(dm.exports):
        for name, _crc in exp:
            key = name[1:] if dm.prefix and name.startswith(dm.prefix) else name
            lst = exporters.setdefault(key, [])
            if mods[i].name not in lst:
                lst.append(mods[i].name)
    dups = tuple(DuplicateExport(s, tuple(e), _name(dm, dm.symbols[s].owner))
                 for s, e in exporters.items() if len(e) > 1 and s in dm.symbols)
    comps = []
    for comp in nx.strongly_connected_components(g):
        if len(comp) > 1 or any(g.has_edge(n, n) for n in comp):
            comps.append(tuple(sorted(comp)))
    return TreeGraph(g, dm, tuple((mods[u.module].name, u.symbol, u.weak) for u in dm.unresolved),
                     dups, tuple(tuple(c) for c in dm.cycles), tuple(sorted(comps)), tuple(dm.disagreements))


def graph_for_tree(tree: ModuleTree, kernel: KernelSymbols | None = None, prefix: str = "") -> TreeGraph:
    """Resolve ``tree`` as depmod would (against ``kernel``) and build its graph."""
    return build_graph(run_depmod(tree, kernel, prefix=prefix))


def closure(g: nx.DiGraph, modules: Iterable[str]) -> nx.DiGraph:
    """The subgraph of ``modules`` and everything they depend on, transitively."""
    keep: set[str] = set()
    for m in modules:
        if m not in g:
            raise KeyError(m)
        keep.add(m)
        keep |= nx.descendants(g, m)
    return g.subgraph(keep).copy()
