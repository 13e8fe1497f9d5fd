"""The compatibility report of a module tree: one JSON document, rendered as Markdown and HTML.

:func:`build_report` gathers everything into a plain dict that follows
``schema.json`` (``schema_version``); the renderers (:mod:`.markdown`,
:mod:`.html`) read nothing but that dict, so what a reviewer reads and what a
CI job parses can never disagree.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from importlib import resources
from typing import TYPE_CHECKING

from .. import __version__
from ..consumers import standard, title
from ..consumers.base import ConsumerView, Counts
from ..consumers.kernel import VERMAGIC_UNKNOWN
from ..elf.image import machine_name
from ..files.kernel import SYMVERS, KernelSource, KernelSourceError, find_kernel_files, kernel_source
from ..modversions.basic import name_limit, too_long
from ..records import ModversionsFormat as Fmt, raw
from ..rust import demangle, is_rust
from ..depmod.tree import ModuleTree
from ..usefulness import crc_usefulness, system_map_kinds
from .summary import TREE_FLAVOURS, headlines, summary
from ..views import ALL_FORMATS, AS_IS, ViewsResult, views_started

if TYPE_CHECKING:
    from ..graph import TreeGraph

SCHEMA_VERSION = 1
#: Caps on the per-module lists (problem names and messages, unresolved symbols): a report of a
#: 4,000-module tree stays a few megabytes whatever the modules hold; every list keeps its total.
NAMES_PER_MODULE = 10
MESSAGES_PER_MODULE = 3
MODULES_LISTED = 100
SYMBOLS_LISTED = 50

__all__ = ["KernelSourceError", "build_report", "headlines", "schema", "unresolved_imports"]


def schema() -> dict:
    return json.loads(resources.files(__package__).joinpath("schema.json").read_text())


# -- the report -------------------------------------------------------------------

def build_report(tree: ModuleTree, symvers: str | None = None, system_map: str | None = None,
                 formats: Sequence[str] = ALL_FORMATS, jobs: int | None = None,
                 kernel_image: str | None = None, source: KernelSource | None = None,
                 progress: Callable[[int, int], None] | None = None, kernel_profile: str | None = None) -> dict:
    """Everything kmodcompat measures about ``tree``, as a JSON-ready dict.

    The kernel's exports: ``source`` when the caller resolved them, else :func:`kernel_source` over the
    files named (``symvers``, ``kernel_image``, ``system_map``) and then where distributions put them;
    raises :class:`KernelSourceError` when a named one cannot be used. ``progress(done, total)``
    follows the consumer views, most of the work.

    The loader of the tree's own kernel: ``kernel_profile`` (consumers/kernel.py PROFILES), else as the
    tree's boot image says (loadable.tree_loader). A Debian kernel's models join kernel.org's models of
    each era (which stay what they are), and are the tree's kernel in the summary.
    """
    from ..graph import graph_for_tree  # networkx: imported only when a report is computed
    from ..loadable import tree_loader

    if source is None:
        source = kernel_source(tree.dirname, tree.kver, symvers=symvers, image=kernel_image, system_map=system_map)
    # The System.map whose symbol kinds tell functions from objects (usefulness.py), real or placeholder.
    system_map = system_map or find_kernel_files(tree).get("system_map")
    notes = list(source.notes)
    mods = [(m.path, m.record) for m in tree.modules if m.record is not None]
    records = [r for _, r in mods]
    expected = source.expected(records)
    profile, why, loader_models, vermagic = tree_loader(tree.dirname, tree.kver, kernel_image, kernel_profile)
    consumers = (*standard(), *loader_models)
    # The views (most of the work) run in worker processes while this one does the rest.
    # The RPM generators' line counts (a second of CPU, of the tree alone) run aside in a worker too.
    with views_started(mods, consumers, formats=formats, expected=expected, keep_formats=(AS_IS,), jobs=jobs,
                       summarize=module_summary, summarize_counts=summary_from_counts,
                       progress=progress, vermagic=vermagic,
                       aside=lambda: _ksym_requires(tree, records, source)) as views_result:
        graph = graph_for_tree(tree, source.symbols)
        try:
            kinds = system_map_kinds(system_map) if system_map else {}
        except OSError as e:
            kinds = {}
            notes.append(f"{system_map}: {e.strerror or e}")
        census = _census(records)
        doc = {
            "schema_version": SCHEMA_VERSION,
            "generator": {"name": "kmodcompat", "version": __version__},
            "tree": {**_identity(tree, records, census["modules_by_format"], source, notes),
                     "kernel_loader": _loader(profile, why, loader_models, vermagic)},
            "counts": _counts(tree, records),
            "format_census": census,
            "consumers": None,
            "simulation": None,
            "crc_usefulness": crc_usefulness(records, kinds).as_dict(),
            "name_lengths": _name_lengths(records),
            "long_names": long_names(mods, tree, source),
            "ksym_requires": _with_notes(views_result.aside(), notes),
            "graph": _graph_facts(graph, source.known),
            "exports": _exports_usage(graph, records),
            "findings": _findings(tree),
            "unreadable": [{"path": m.path, "reason": m.error.reason, "code": m.error.code} for m in tree.failures
                           if m.error is not None]  # always: that is what a failure is (ModuleTree.failures)
            + [{"path": path, "reason": reason, "code": "skipped"} for path, reason in tree.skipped],
        }
        views = views_result()
    doc["consumers"] = _consumers(views, tree, {path: r.modversions_format for path, r in mods})
    doc["simulation"] = _simulation(views)
    doc["summary"] = summary(doc)
    doc["headlines"] = headlines(doc)
    # The answer first: the summary right after the document's identity.
    return {k: doc[k] for k in ("schema_version", "generator", "summary")} | doc


def _loader(profile: str, why: str, models: tuple[str, ...], vermagic: str | None) -> dict:
    """The loader profile of the tree's kernel, why, the models it adds, its vermagic (the loader models
    compare each module's with it: consumers/kernel.py check_modinfo), and that in one line."""
    if models:
        line = (f"kernel loader: Debian's ({why}): a symbol missing from __versions refuses the load "
                f"(module-disable-matching-missing-version-crc.patch); the tree's kernel is modelled by "
                f"{' and '.join(title(m) for m in models)}, beside kernel.org's kernels of each era")
    else:
        line = f"kernel loader: kernel.org's ({why})"
    if vermagic is None:
        line += f"; {VERMAGIC_UNKNOWN}"
    return {"profile": profile, "evidence": why, "models": list(models), "vermagic": vermagic, "line": line}


def _identity(tree, records, census: dict[str, int], source: KernelSource, notes: list[str]) -> dict:
    machines = Counter(r.elf.machine for r in records)
    classes = Counter((r.elf.elfclass, r.elf.endian) for r in records)
    machine = machines.most_common(1)[0][0] if machines else None
    elfclass, endian = classes.most_common(1)[0][0] if classes else (None, None)
    versioned = {f: n for f, n in census.items() if f != Fmt.NONE}
    if not versioned:
        flavour = TREE_FLAVOURS[Fmt.NONE]
    elif set(versioned) == {Fmt.BASIC}:
        flavour = TREE_FLAVOURS[Fmt.BASIC]
    elif set(versioned) == {Fmt.BASIC_EXT} or set(versioned) == {Fmt.BASIC, Fmt.BASIC_EXT}:
        flavour = TREE_FLAVOURS[Fmt.BASIC_EXT]
    elif set(versioned) == {Fmt.EXT_ONLY}:
        flavour = TREE_FLAVOURS[Fmt.EXT_ONLY]
    else:
        flavour = "mixed"
    # vermagic names "modversions" iff the kernel was built with CONFIG_MODVERSIONS
    # (include/linux/vermagic.h MODULE_VERMAGIC_MODVERSIONS).
    vermagics = [v for r in records for k, v in r.modinfo if k == "vermagic" and v]
    modversions = None
    if vermagics:
        modversions = sum("modversions" in v.split() for v in vermagics) * 2 > len(vermagics)
    return {
        "path": tree.dirname, "kernel_release": tree.kver,
        "kernel_modversions": modversions,
        "arch": machine_name(machine) if machine is not None else None,
        "elfclass": elfclass, "endian": endian,
        "modversions": flavour,
        "basic_name_limit": name_limit(elfclass) if elfclass else None,
        "kernel_exports": {**source.as_dict(), "notes": notes},
        "emulates": tree.kmod.id,
        "simulated_by": _simulated_by(tree),
    }


def _simulated_by(tree) -> dict | None:
    """What ``kmodcompat simulate`` recorded of this tree (simulate_tree.MARKER beside it), None for a tree it
    did not write. ``signatures_dropped`` counts the modules the record names that are in the tree and
    unsigned now: the record says they were signed, the tree that they are no longer."""
    from ..simulate_tree import read_marker

    doc = read_marker(tree.dirname, tree.kver)
    if doc is None:
        return None
    unsigned = {m.relpath for m in tree.modules
                if m.record is not None and not (m.record.signature is not None and m.record.signature.kmod_accepts)}
    dropped = len(set(doc["signatures_dropped"]) & unsigned)
    line = (f"Written by kmodcompat simulate --format-as {doc['format']} from {doc['source']}: "
            f"{doc['rewritten']:,} module(s) rewritten, {dropped:,} of them signed before: the simulation dropped "
            f"those signatures (the bytes they signed changed); {doc['unchanged']:,} copied unchanged.")
    return {"format": doc["format"], "source": doc["source"], "rewritten": doc["rewritten"],
            "unchanged": doc["unchanged"], "signatures_dropped": dropped, "line": line}


def _counts(tree, records) -> dict:
    return {
        "modules": len(tree.modules),
        "parsed": len(records),
        "unreadable": len(tree.failures),  # modules depmod lists but cannot read; tree.skipped are no modules
        "builtin": len(tree.builtin_names),
        "imports": sum(len(r.imports) for r in records),
        "exports": sum(len(r.exports) for r in records),
        "compressed": dict(sorted(Counter(r.compression or "none" for r in records).items())),
        "signed": sum(1 for r in records if r.signature is not None and r.signature.kmod_accepts),
    }


def _census(records) -> dict:
    by_format = Counter(r.modversions_format for r in records)
    sections: Counter[str] = Counter()
    for r in records:
        for name in ("__versions", "__version_ext_crcs", "__version_ext_names", "__kflagstab"):
            if r.section(name) is not None:
                sections[name] += 1
    return {"modules_by_format": dict(sorted(by_format.items())), "modules_with_section": dict(sorted(
        sections.items()))}


def module_summary(path: str, views: dict[str, ConsumerView]) -> dict:
    """What the report keeps of one module's views (computed in the view workers)."""
    entry: dict[str, dict] = {"verdicts": {c: v.verdict for c, v in views.items()}}
    problems = {c: _problem(v) for c, v in views.items() if v.lost or v.misread or v.false_messages}
    if problems:
        entry["problems"] = problems
    return entry


def summary_from_counts(path: str, counts: dict[str, Counts], view) -> dict:
    """:func:`module_summary` of views counted (each consumer's count() on tally.py's tables): the models run
    only where there are problems to list."""
    entry: dict[str, dict] = {"verdicts": {c: n.verdict for c, n in counts.items()}}
    problems = {c: _problem(view(c)) for c, n in counts.items() if n.lost or n.misread or n.false_messages}
    if problems:
        entry["problems"] = problems
    return entry


def _consumers(views: ViewsResult, tree, formats: dict[str, str]) -> dict:
    totals = {t.consumer: t.as_dict() for t in views.totals if t.format == AS_IS}
    per_module = []
    listed: Counter[str] = Counter()
    for m in views.modules:
        summary = m.by_format.get(AS_IS)
        if isinstance(summary, dict):
            entry = {"path": _rel(m.path, tree), "format": formats.get(m.path, "?"), **summary}
            problems = summary.get("problems", {})
            # Every module keeps its counts per consumer (lost, misread, false warnings); the problems
            # themselves (names, messages) are listed for the first MODULES_LISTED modules of each
            # consumer, so the document stays bounded.
            if problems:
                entry["counts"] = {c: [p["lost_count"], p["misread_count"], p["false_count"]]
                                   for c, p in problems.items()}
            kept = {}
            for c, p in problems.items():
                listed[c] += 1
                if listed[c] <= MODULES_LISTED:
                    kept[c] = p
            if kept:
                entry["problems"] = kept
            else:
                entry.pop("problems", None)
            per_module.append(entry)
    return {"exporter_crcs": "tree" if views.tree_crcs else "module's own", "totals": totals,
            "per_module": per_module,
            "lists": {"names_per_module": NAMES_PER_MODULE, "messages_per_module": MESSAGES_PER_MODULE,
                      "modules_per_consumer": MODULES_LISTED}}


def _problem(v: ConsumerView) -> dict:
    return {"lost": list(dict.fromkeys(v.lost))[:NAMES_PER_MODULE], "lost_count": len(v.lost),
            "misread_count": len(v.misread), "false_messages": list(v.false_messages[:MESSAGES_PER_MODULE]),
            "false_count": len(v.false_messages)}


def _simulation(views: ViewsResult) -> dict:
    return {f: {t.consumer: t.as_dict() for t in views.totals if t.format == f}
            for f in views.formats if f != AS_IS}


def _name_lengths(records) -> dict:
    hist: Counter[int] = Counter()
    over: Counter[str] = Counter()
    longest = []
    lengths: dict[str, int] = {}  # by name: names repeat across modules
    for r in records:
        limit = name_limit(r.elf.elfclass)
        for imp in r.imports:
            n = lengths.get(imp.name)
            if n is None:
                n = lengths[imp.name] = len(raw(imp.name.removeprefix(".")))
            hist[n] += 1
            if n > limit:
                over["imports"] += 1
                over["rust"] += is_rust(imp.name)
                longest.append((n, imp.name, r.name))
    longest.sort(key=lambda x: (-x[0], x[1]))
    seen, top = set(), []
    for n, name, mod in longest:
        if name not in seen:
            seen.add(name)
            top.append({"length": n, "name": name, "demangled": demangle(name), "module": mod})
        if len(top) == 10:
            break
    return {"histogram": {str(k): v for k, v in sorted(hist.items())},
            "over_limit": over.get("imports", 0), "over_limit_rust": over.get("rust", 0), "longest": top}


def long_names(mods, tree, source: KernelSource) -> dict:
    """The names a BASIC-only build stops on (:func:`~kmodcompat.modversions.basic.too_long`, modpost's
    "too long symbol"), before modpost sees them: the tree's exports, vmlinux's when the kernel's exports
    are known (every importer of one fails to build), and the imports of the tree's modules; each name
    once, C and Rust (:func:`~kmodcompat.rust.is_rust`) counted apart. The lists are complete (a name's
    importing modules capped at MODULES_LISTED, their count kept): ``report --fail-on long-names`` and
    the CI formats read them."""
    classes = Counter(r.elf.elfclass for _, r in mods)
    elfclass = classes.most_common(1)[0][0] if classes else 64
    exports: dict[str, dict] = {}
    imports: dict[str, dict] = {}
    modules = set()
    for path, r in mods:
        rel = _rel(path, tree)
        for x in r.exports:
            if too_long(x.name, r.elf.elfclass) and x.name not in exports:
                exports[x.name] = {**_long_name(x.name), "exporter": r.name, "path": rel}
        for imp in r.imports:
            if too_long(imp.name, r.elf.elfclass):
                entry = imports.get(imp.name)
                if entry is None:
                    entry = imports[imp.name] = {**_long_name(imp.name), "importers": 0, "modules": []}
                entry["importers"] += 1
                modules.add(path)
                if len(entry["modules"]) < MODULES_LISTED:
                    entry["modules"].append(rel)
    if source.symbols is not None:  # vmlinux's, read with the tree's word size (its importers')
        for name, _, _ in source.symbols.symbols:
            if too_long(name, elfclass) and name not in exports:
                exports[name] = {**_long_name(name), "exporter": "vmlinux", "path": None}

    def part(items: dict[str, dict]) -> dict:
        rust = sum(1 for x in items.values() if x["rust"])
        return {"total": len(items), "c": len(items) - rust, "rust": rust,
                "names": sorted(items.values(), key=lambda x: (-x["length"], x["name"]))}

    return {"limit": name_limit(elfclass), "kernel_exports_known": source.symbols is not None,
            "exports": part(exports), "imports": {**part(imports), "modules": len(modules)}}


def _with_notes(counted: tuple[dict, list[str]], notes: list[str]) -> dict:
    """The result of a part computed aside, its notes added to ``notes`` where it was computed before."""
    result, more = counted
    notes += more
    return result


def _ksym_requires(tree, records, source: KernelSource) -> tuple[dict, list[str]]:
    """What the RPM requirement generators (ksyms.py: SUSE's and Red Hat's find-requires.ksyms) print for
    the tree taken as one package, and how many lines they drop: the imports only the extended tables
    carry, which ``--dump-modversions`` does not print. Red Hat's reads the kernel's Module.symvers when
    that is where the exports came from (its kernel() lines), else writes every line as ksym()."""
    from ..files.bounded import MODULE_SYMVERS, InputFileError, read_input
    from ..ksyms import dropped_counts

    symvers = None
    notes = []
    if source.kind == SYMVERS and source.path is not None:
        try:
            symvers = read_input(source.path, MODULE_SYMVERS, gzip=source.path.endswith(".gz"))
        except InputFileError as e:
            notes.append(str(e))
    return dropped_counts(tree.kmod, records, symvers), notes


def _long_name(name: str) -> dict:
    return {"name": name, "length": len(raw(name)), "rust": is_rust(name), "demangled": demangle(name)}


def unresolved_imports(items, reason: str | None = None) -> dict:
    """(module, symbol, weak) imports as a bounded summary: totals, the modules with the most (their
    symbols deduplicated, capped), the symbols most modules want. ``reason``: why they are not checkable."""
    by_module: dict[str, list] = {}
    importers: Counter[str] = Counter()
    weak = 0
    for module, symbol, w in items:
        entry = by_module.setdefault(module, [0, 0, {}])
        entry[0] += 1
        entry[1] += bool(w)
        entry[2][symbol] = None
        weak += bool(w)
    for _, _, names in by_module.values():
        importers.update(iter(names))  # the dict as keys: Counter.update() would take its values
    total = sum(e[0] for e in by_module.values())
    top = sorted(by_module.items(), key=lambda kv: (-kv[1][0], kv[0]))[:MODULES_LISTED]
    out = {"total": total, "strong": total - weak, "weak": weak, "modules": len(by_module),
           "by_module": [{"module": m, "count": n, "weak": w, "symbols": list(names)[:NAMES_PER_MODULE]}
                         for m, (n, w, names) in top],
           "symbols": [{"symbol": s, "importers": n} for s, n in
                       sorted(importers.items(), key=lambda kv: (-kv[1], kv[0]))[:SYMBOLS_LISTED]]}
    if reason is not None:
        out["reason"] = reason
    return out


def _graph_facts(g: TreeGraph, kernel_known: bool = True) -> dict:
    """``kernel_known`` False: no source gave the kernel's exports, so an import no module exports may
    still be the kernel's: "not checkable", never "unresolved"."""
    from ..graph import KERNEL_NODE

    dg = g.graph
    modules = [n for n in dg if n != KERNEL_NODE]
    indeg = sorted(((dg.in_degree(n), n) for n in modules), key=lambda x: (-x[0], x[1]))[:10]
    return {
        "nodes": dg.number_of_nodes(), "edges": dg.number_of_edges(),
        "longest_dependency_chain": _longest_chain(dg, modules, KERNEL_NODE),
        "cycles": [list(c) for c in g.cycles],
        "strongly_connected": [list(c) for c in g.components],
        "unresolved": unresolved_imports(g.unresolved if kernel_known else ()),
        "not_checkable": unresolved_imports(() if kernel_known else g.unresolved, "kernel exports unknown"),
        "duplicate_exports": [{"symbol": d.symbol, "exporters": list(d.exporters[:MODULES_LISTED]),
                               "winner": d.winner} for d in g.duplicates[:MODULES_LISTED * 10]],
        "duplicate_exports_total": len(g.duplicates),
        "most_depended_on": [{"module": n, "dependents": d} for d, n in indeg if d],
        "disagreements": {
            "total": len(g.disagreements),
            "false_positive": sum(1 for d in g.disagreements if d.false_positive),
            "by_reason": dict(Counter(d.reason for d in g.disagreements)),
        },
    }


def _longest_chain(dg, modules: list[str], kernel: str) -> int:
    """Edges on the longest dependency path among modules (networkx's
    ``dag_longest_path_length``, unweighted); 0 when they form a cycle."""
    succ = {n: [s for s in dg.successors(n) if s != kernel] for n in modules}
    users = Counter(s for n in modules for s in succ[n])
    ready = [n for n in modules if not users[n]]
    dist = dict.fromkeys(modules, 0)
    done = 0
    while ready:
        n = ready.pop()
        done += 1
        for s in succ[n]:
            dist[s] = max(dist[s], dist[n] + 1)
            users[s] -= 1
            if not users[s]:
                ready.append(s)
    return max(dist.values(), default=0) if done == len(modules) else 0


def _exports_usage(g: TreeGraph, records) -> dict:
    from ..graph import KERNEL_NODE

    dg = g.graph
    used: set[tuple[str, str]] = set()
    for _, exporter, data in dg.edges(data=True):
        for sym in data.get("symbols", ()):
            used.add((exporter, sym.removeprefix(".")))
    unused = [x.name for r in records for x in r.exports if (r.name, x.name) not in used]
    users = Counter(exporter for _, exporter in dg.edges() if exporter != KERNEL_NODE)
    return {"exported": sum(len(r.exports) for r in records), "unused": len(unused),
            "unused_sample": sorted(unused)[:50],
            "top_exporters": [{"module": m, "importers": n} for m, n in users.most_common(10)]}


def _findings(tree) -> dict:
    by_code: Counter[str] = Counter()
    items: list[dict] = []
    for m in tree.modules:
        if m.record is None:
            continue
        for f in m.record.findings:
            by_code[f.code] += 1
            if len(items) < 500:
                items.append({"module": _rel(m.path, tree), "code": f.code, "message": f.message})
    return {"by_code": dict(sorted(by_code.items())), "items": items}


def _rel(path: str, tree) -> str:
    return os.path.relpath(path, tree.dirname) if path.startswith(tree.dirname + "/") else path
