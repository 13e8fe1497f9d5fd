"""Whole trees: modules matched by depmod's name, the kABI diff, the dependency diff, and the patterns
that group ten thousand per-module changes into their causes.

The kernel's exports on each side come from the files the caller names or
from where the report finds them (:func:`kmodcompat.files.kernel.kernel_source`:
the tree's Module.symvers, its boot image, a real System.map); the
consumer models run over each tree in worker processes (:mod:`kmodcompat.views`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..consumers import CONSUMERS
from ..consumers.base import ConsumerView
from ..depmod.tree import ModuleTree
from ..elf.image import section_flags_text, section_type_name
from ..depmod.kernel_symbols import symvers_symbols
from ..files.kernel import IMAGE, KernelSource, kernel_source
from ..files.symvers import KERNEL_MODULE, Symvers
from ..graph import TreeGraph, graph_for_tree
from ..views import AS_IS, compute_views
from .kabi import diff_exports, diff_kabi, export_map, symvers_export_map, symvers_exports
from .module import DEFAULT_CONSUMERS, diff_modules
from .policy import KabiPolicy, judge_kabi, module_paths
from .results import DepChange, DependencyDiff, ExportInfo, ExportsDiff, ModuleDiff, Pattern, TreeDiff, TreeSide, \
    ViewSummary

#: A progress display: called with (done, total) as the work advances.
Progress = Callable[[int, int], None]


# -- dependencies ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DepFacts:
    """What the dependency diff compares of one tree: plain data, so any two trees (or test cases) compare."""

    deps: Mapping[str, tuple[str, ...]]  # module → its modules.dep line, as module names
    components: tuple[tuple[str, ...], ...]  # cycles: strongly connected components (and self-loops)
    unresolved: tuple[tuple[str, str, bool], ...]  # (module, symbol, weak)

    @classmethod
    def of(cls, g: TreeGraph) -> DepFacts:
        """From depmod's resolution. Lines are compared by module name: the paths differ as soon as one
        tree is compressed and the other not, which the per-module "path" attribute reports."""
        dm = g.depmod
        names = [m.name for m in dm.modules]
        deps = {names[i]: tuple(names[d] for d in dm.all_dependencies(i)) if dm.deps[i] else ()
                for i in range(len(names))}
        return cls(deps, g.components, g.unresolved)


def diff_dependencies(old: DepFacts, new: DepFacts, unresolved_checked: bool = True) -> DependencyDiff:
    """modules.dep lines that changed (modules in both trees), new and vanished cycles, new unresolved imports.

    ``unresolved_checked`` False (a side without the kernel's exports, where
    every kernel import is unresolved): no unresolved import is reported.
    """
    a, b = old.deps, new.deps
    dep = tuple(DepChange(m, a[m], deps) for m, deps in b.items() if m in a and a[m] != deps)
    oc = {frozenset(c): c for c in old.components}
    nc = {frozenset(c): c for c in new.components}
    unresolved: tuple[tuple[str, str, bool], ...] = ()
    if unresolved_checked:
        before = {(m, s) for m, s, _w in old.unresolved}
        unresolved = tuple(u for u in new.unresolved if (u[0], u[1]) not in before)
    return DependencyDiff(dep, tuple(c for k, c in nc.items() if k not in oc),
                          tuple(c for k, c in oc.items() if k not in nc), unresolved, unresolved_checked)


# -- whole trees ----------------------------------------------------------------------------------


def _summarize(path: str, views: dict[str, ConsumerView]) -> dict[str, ViewSummary]:
    """compute_views' per-module reduction (module level: it runs in worker processes)."""
    return {c: ViewSummary.of(v) for c, v in views.items()}


def _tree_views(tree: ModuleTree, consumers: Sequence[str], expected: Mapping[str, int] | None,
                jobs: int | None, progress: Progress | None = None) -> dict[str, dict[str, ViewSummary]]:
    mods = [(m.path, m.record) for m in tree.modules if m.record is not None]
    if not mods or not consumers:
        return {}
    res = compute_views(mods, consumers, (AS_IS,), expected, keep_formats=(AS_IS,), jobs=jobs, summarize=_summarize,
                        progress=progress)
    by_path: dict[str, Any] = {mv.path: mv.by_format[AS_IS] for mv in res.modules}  # _summarize's dicts
    return {m.name: by_path[m.path] for m in tree.modules if m.path in by_path}


def _kernel_side(tree: ModuleTree, symvers: str | None, system_map: str | None, image: str | None = None
                 ) -> tuple[KernelSource, dict[str, ExportInfo] | None, list[str]]:
    """The kernel's exports for one tree (:func:`~kmodcompat.files.kernel.kernel_source`: the files named,
    else the tree's Module.symvers, boot image, a real System.map), the kABI map when the source has the
    fields, and the notes on sources passed over. Raises KernelSourceError for a named file that fails."""
    source = kernel_source(tree.dirname, tree.kver, symvers=symvers, image=image, system_map=system_map)
    exports = None
    if source.symbols is not None and source.symbols.symvers is not None:  # the same read as depmod's symbols
        exports = symvers_exports(source.symbols.symvers)
    return source, exports, list(source.notes)


def _expected(source: KernelSource, exports: Mapping[str, ExportInfo] | None) -> dict[str, int] | None:
    """Exporter CRCs for the consumer models: only with the kernel's CRCs, else each module's own stand in."""
    if exports is None or not source.crcs:
        return None
    return {k: v.crc for k, v in exports.items() if v.crc is not None}


def diff_trees(old: ModuleTree, new: ModuleTree, consumers: Sequence[str] = DEFAULT_CONSUMERS, *,
               old_symvers: str | None = None, new_symvers: str | None = None,
               old_system_map: str | None = None, new_system_map: str | None = None,
               old_label: str | None = None, new_label: str | None = None,
               old_image: str | None = None, new_image: str | None = None,
               jobs: int | None = None,
               progress: Callable[[str], Progress | None] | None = None,
               policy: KabiPolicy | None = None) -> TreeDiff:
    """The whole-tree diff: modules (by name), kABI, dependencies, and the patterns that group them.

    Kernel exports come from ``*_symvers`` / ``*_system_map`` or where the
    report finds them (the tree's headers, build/ or boot/). ``jobs``: worker
    processes for the consumer models (None: all cores). ``policy``: the symbol lists and rules that
    judge each kABI change (:mod:`.policy`).
    """
    unknown = [c for c in consumers if c not in CONSUMERS]
    if unknown:
        raise ValueError(f"unknown consumer(s): {', '.join(unknown)}; known: {', '.join(CONSUMERS)}")
    o_src, ok_exports, o_notes = _kernel_side(old, old_symvers, old_system_map, old_image)
    n_src, nk_exports, n_notes = _kernel_side(new, new_symvers, new_system_map, new_image)
    ok, nk = o_src.symbols, n_src.symbols
    notes = [f"old: {x}" for x in o_notes] + [f"new: {x}" for x in n_notes]
    old_full = export_map(old, ok_exports)
    new_full = export_map(new, nk_exports)
    # ``progress(label)``: a display for each side's consumer views, the long part (cli/terminal.py progress()).
    old_views = _tree_views(old, consumers, _expected(o_src, old_full if ok_exports is not None else None), jobs,
                            progress("old tree's consumer views") if progress else None)
    new_views = _tree_views(new, consumers, _expected(n_src, new_full if nk_exports is not None else None), jobs,
                            progress("new tree's consumer views") if progress else None)

    a, b = old.by_name(), new.by_name()
    added = tuple((m.name, m.output_path) for m in new.modules if m.name not in a)
    removed = tuple((m.name, m.output_path) for m in old.modules if m.name not in b)
    diffs: list[ModuleDiff] = []
    unchanged = 0
    became_unreadable: list[tuple[str, str, str]] = []
    became_readable: list[tuple[str, str]] = []
    for m in new.modules:
        om = a.get(m.name)
        if om is None:
            continue
        ro, rn = om.record, m.record
        if ro is None or rn is None:
            if ro is not None and m.error is not None:
                became_unreadable.append((m.name, m.error.reason, m.output_path))
            elif rn is not None and om.error is not None:
                became_readable.append((m.name, om.error.reason))
            else:
                unchanged += 1  # unreadable on both sides: listed by the tree loaders, nothing to compare
            continue
        empty: dict[str, ViewSummary] = {}
        d = diff_modules(ro, rn, consumers, name=m.name, old_path=om.output_path, new_path=m.output_path,
                         views=(old_views.get(m.name, empty), new_views.get(m.name, empty)))
        if d.changed:
            diffs.append(d)
        else:
            unchanged += 1
    kabi = diff_kabi(old, new, ok_exports, nk_exports, consumers)
    if not kabi.kernel_compared and (ok_exports or nk_exports):
        notes.append("kernel image exports left out of the kABI diff: Module.symvers known on one side only")
    checked = ok is not None and nk is not None
    if not checked:
        notes.append("unresolved imports not compared: the kernel's exports are unknown on at least one side")
    deps = diff_dependencies(DepFacts.of(graph_for_tree(old, ok)), DepFacts.of(graph_for_tree(new, nk)), checked)
    side = lambda t, label, src: TreeSide(label or t.dirname, t.dirname, t.kver, len(t.modules),  # noqa: E731
                                          len(t.failures), src.as_dict()["symvers"], src.as_dict()["system_map"],
                                          src.path if src.kind == IMAGE else None, src.line())
    judged = None
    if policy is not None:
        judged = judge_kabi(policy, kabi.changes, export_map(old, ok_exports if kabi.kernel_compared else None),
                            export_map(new, nk_exports if kabi.kernel_compared else None), module_paths(old),
                            module_paths(new))
    return TreeDiff(side(old, old_label, o_src), side(new, new_label, n_src), tuple(consumers),
                    added, removed, tuple(diffs), unchanged, tuple(became_unreadable), tuple(became_readable), kabi,
                    deps, patterns(diffs), tuple(notes), judged)


def diff_export_sides(old: ModuleTree | Symvers, new: ModuleTree | Symvers,
                      consumers: Sequence[str] = DEFAULT_CONSUMERS, *, old_label: str | None = None,
                      new_label: str | None = None, policy: KabiPolicy | None = None) -> ExportsDiff:
    """The kABI diff where a side is a Module.symvers (SUSE's ``ksymvers compare``, Ubuntu's abi-check and
    RHEL's kABI baseline kept in git): every export of both sides, the kernel image's and the modules'.

    A tree side's exports are those of :func:`diff_trees` (its Module.symvers found where the report
    looks, for the image's; its modules' own); its modules are the importers. The image's exports count
    only when both sides have them, as in :func:`diff_trees`.
    """
    maps, sides, notes, kernel = [], [], [], []
    trees: list[ModuleTree | None] = []
    for tag, side, label in (("old", old, old_label), ("new", new, new_label)):
        if isinstance(side, Symvers):
            full = symvers_export_map(side)
            owners = {x.exporter for x in full.values()} - {KERNEL_MODULE}
            line = KernelSource.of(symvers_symbols(side)).line() if any(e.in_kernel for e in side.entries) \
                else f"no kernel exports in {side.path} (modules' lines only)"
            sides.append(TreeSide(label or side.path, side.path, None, len(owners), 0, side.path, None, None, line))
            kernel.append(any(x.exporter == KERNEL_MODULE for x in full.values()))
            trees.append(None)
        else:
            src, exports, side_notes = _kernel_side(side, None, None)
            notes += [f"{tag}: {x}" for x in side_notes]
            full = export_map(side, exports)
            sides.append(TreeSide(label or side.dirname, side.dirname, side.kver, len(side.modules),
                                  len(side.failures), src.as_dict()["symvers"], None,
                                  src.path if src.kind == IMAGE else None, src.line()))
            kernel.append(exports is not None)
            trees.append(side)
        maps.append(full)
    compared = all(kernel)
    if not compared:
        maps = [{k: v for k, v in m.items() if v.exporter != KERNEL_MODULE} for m in maps]
        if any(kernel):
            notes.append("kernel image exports left out: known on one side only")
    kabi = diff_exports(maps[0], maps[1], trees[0], trees[1], compared, consumers)
    judged = None
    if policy is not None:
        judged = judge_kabi(policy, kabi.changes, maps[0], maps[1], module_paths(old), module_paths(new))
    return ExportsDiff(sides[0], sides[1], tuple(consumers), kabi, tuple(notes), judged)


# -- patterns ---------------------------------------------------------------------------------------

#: Modules named per pattern, and concrete forms kept per pattern.
_SAMPLE, _DETAILS = 5, 5


def _short(v: str | int | None, limit: int = 60) -> str:
    s = "-" if v is None else str(v)
    return s if len(s) <= limit else s[:limit - 1] + "…"


def _path_change_text(old: str, new: str) -> str:
    """What a path change has in common across modules: the file name suffix, or another directory."""
    od, ob = old.rpartition("/")[::2]
    nd, nb = new.rpartition("/")[::2]
    if od != nd:
        return "moved to another directory"
    os_, ns_ = ob[ob.find(".ko"):] if ".ko" in ob else "", nb[nb.find(".ko"):] if ".ko" in nb else ""
    return f"{os_ or ob} → {ns_ or nb}" if os_ != ns_ else "renamed"


def _module_facts(d: ModuleDiff) -> Iterable[tuple[tuple[str, str, str], str]]:
    """((area, change, subject), detail) for every change of one module."""
    for at in d.attributes:
        if at.field == "path":
            yield ("attribute", "changed", "path"), _path_change_text(str(at.old), str(at.new))
        else:
            yield ("attribute", "changed", at.field), f"{_short(at.old)} → {_short(at.new)}"
    for s in d.sections:
        if s.kind in ("added", "removed"):
            info = s.new if s.kind == "added" else s.old
            assert info is not None
            attrs = f"{section_type_name(info.type)} {section_flags_text(info.flags) or '-'} align {info.addralign}"
            yield ("section", s.kind, s.name), attrs
            continue
        assert s.old is not None and s.new is not None
        if s.kind == "renamed":
            yield ("section", "renamed", f"{s.old.name} → {s.new.name}"), ""
        for f in s.fields:
            if f == "size":
                detail = "grew" if s.new.size > s.old.size else "shrank"
            elif f == "order":
                detail = ""
            elif f == "type":
                detail = f"{section_type_name(s.old.type)} → {section_type_name(s.new.type)}"
            elif f == "flags":
                detail = f"{section_flags_text(s.old.flags) or '-'} → {section_flags_text(s.new.flags) or '-'}"
            else:
                detail = f"{getattr(s.old, f)} → {getattr(s.new, f)}"
            yield ("section", f, s.new.name), detail
    for v in d.versions:
        yield ("versions", v.kind, v.transition), v.name
    for mi in d.modinfo:
        change = "added" if not mi.old else "removed" if not mi.new else "changed"
        if len(mi.old) <= 1 and len(mi.new) <= 1:
            detail = f"{_short(mi.old[0] if mi.old else None)} → {_short(mi.new[0] if mi.new else None)}"
        else:
            detail = f"+{len(mi.added)} -{len(mi.removed)} value(s)"
        yield ("modinfo", change, mi.key), detail
    for n in d.imports_added:
        yield ("imports", "added", "imports"), n
    for n in d.imports_removed:
        yield ("imports", "removed", "imports"), n
    for c in d.consumers:
        yield ("consumer", c.effect, c.consumer), _view_change_text(c.old, c.new)


def _view_change_text(a: ViewSummary, b: ViewSummary) -> str:
    """"ok → false-mismatch (lost 0 → 1, false 0 → 1)": the verdicts and the counts that moved."""
    moved = [f"{label} {x} → {y}" for label, x, y in (("lost", a.lost, b.lost), ("false", a.false, b.false),
                                                       ("messages", a.messages, b.messages)) if x != y]
    return f"{a.verdict} → {b.verdict}" + (f" ({', '.join(moved)})" if moved else "")


def patterns(diffs: Iterable[ModuleDiff]) -> tuple[Pattern, ...]:
    """Group per-module changes by (area, change, subject): the causes, most widespread first."""
    modules: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    counts: Counter = Counter()
    details: dict[tuple[str, str, str], Counter] = defaultdict(Counter)
    for d in diffs:
        seen: set[tuple[str, str, str]] = set()
        for key, detail in _module_facts(d):
            counts[key] += 1
            if detail:
                details[key][detail] += 1
            if key not in seen:
                seen.add(key)
                modules[key].append(d.name)
    out = [Pattern(k[0], k[1], k[2], len(mods), counts[k], tuple(details[k].most_common(_DETAILS)),
                   len(details[k]), tuple(mods[:_SAMPLE]))
           for k, mods in modules.items()]
    out.sort(key=lambda p: (-p.modules, -p.count, p.area, p.change, p.subject))
    return tuple(out)
