"""The kABI diff: every export of both trees (the kernel image's and each module's), who imports it,
and what an old build of each importer meets against the new exports.

What counts as incompatible for an export (see :func:`.module.export_change`):
removed, its CRC changed (unless the new build has none: a kernel without
MODVERSIONS checks nothing), made GPL-only, or moved into another namespace.
Matching is by dict and grouping by hashing, so it is linear in exports.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import NamedTuple

from ..consumers.base import exporter_crcs
from ..depmod.tree import ModuleTree
from ..files.symvers import KERNEL_MODULE, Symvers
from ..records import path_to_modname
from .module import DEFAULT_CONSUMERS, consumer_views, export_change, view_effect
from .results import ExportChange, ExportGroup, ExporterSummary, ExportInfo, KabiDiff, KabiEffect, incompatible_kind

#: module_license() / license_is_gpl_compatible(): the licenses that may use GPL-only exports.
GPL_COMPATIBLE = frozenset({"GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL",
                            "Dual MPL/GPL"})


def symvers_exports(symvers: Symvers) -> dict[str, ExportInfo]:
    """The kernel image's exports in a Module.symvers, with the GPL-only flag and namespace: the
    ``vmlinux`` lines depmod loads (a later line replacing an earlier one, as ``hash_add()`` does)."""
    return {e.symbol: ExportInfo(e.symbol, e.crc, e.gpl_only, e.namespace, KERNEL_MODULE)
            for e in symvers.entries if e.in_kernel and e.crc is not None}


def export_map(tree: ModuleTree, kernel: Mapping[str, ExportInfo] | None = None) -> dict[str, ExportInfo]:
    """Every export of the tree as depmod resolves it: the kernel's first, then each module in
    depmod order, a later exporter replacing an earlier one (``hash_add()``)."""
    out = dict(kernel or {})
    for m in tree.modules:
        rec = m.record
        if rec is None:
            continue
        for x in rec.exports:
            out[x.name] = ExportInfo(x.name, x.crc, x.gpl_only, x.namespace, m.name)
    return out


class _Uses(NamedTuple):
    module: str
    crc: int | None  # the CRC the module recorded for the symbol, None when unversioned
    gpl: bool  # its license may use GPL-only exports
    namespaces: frozenset[str]  # its import_ns values


def _uses(tree: ModuleTree, wanted: set[str]) -> dict[str, list[_Uses]]:
    """Symbol → the modules importing it (one pass over every import of the tree)."""
    out: dict[str, list[_Uses]] = defaultdict(list)
    for m in tree.modules:
        rec = m.record
        if rec is None:
            continue
        hit = {i.name.removeprefix(".") for i in rec.imports} & wanted
        if not hit:
            continue
        crcs = exporter_crcs(rec)
        lic = rec.modinfo_values("license")
        gpl = bool(lic) and lic[-1] in GPL_COMPATIBLE
        ns = frozenset(rec.modinfo_values("import_ns"))
        for s in hit:
            out[s].append(_Uses(m.name, crcs.get(s), gpl, ns))
    return out


def _fails(u: _Uses, new: ExportInfo | None) -> bool:
    """Does a module built as ``u`` fail against ``new``? (check_version, GPL and namespace checks)."""
    if new is None:
        return True
    if new.crc is not None and u.crc is not None and u.crc != new.crc:
        return True
    if new.gpl_only and not u.gpl:
        return True
    return new.namespace is not None and new.namespace not in u.namespaces


def diff_kabi(old_tree: ModuleTree, new_tree: ModuleTree, old_kernel: Mapping[str, ExportInfo] | None = None,
              new_kernel: Mapping[str, ExportInfo] | None = None,
              consumers: Sequence[str] = DEFAULT_CONSUMERS) -> KabiDiff:
    """Exports added, removed, changed; who imports each; grouped by exporter and by shared importers.

    The kernel image's exports count only when both sides have them (one
    missing Module.symvers would otherwise read as thousands of removals).
    Consumers are run on the OLD build of every module importing an export
    whose CRC changed, against the new CRCs (its other imports keep its own):
    what an old module meets on the new kernel, and nothing else.
    """
    kernel_compared = old_kernel is not None and new_kernel is not None
    a = export_map(old_tree, old_kernel if kernel_compared else None)
    b = export_map(new_tree, new_kernel if kernel_compared else None)
    return diff_exports(a, b, old_tree, new_tree, kernel_compared, consumers)


def symvers_export_map(symvers: Symvers) -> dict[str, ExportInfo]:
    """Every export a Module.symvers lists, the kernel image's and each module's, as :func:`export_map`
    names them (a module by its name: ``drivers/net/tun`` is ``tun``; a later line replacing an earlier)."""
    return {e.symbol: ExportInfo(e.symbol, e.crc, e.gpl_only, e.namespace,
                                 KERNEL_MODULE if e.in_kernel else path_to_modname(e.module))
            for e in symvers.entries if e.crc is not None}


def diff_exports(a: Mapping[str, ExportInfo], b: Mapping[str, ExportInfo], old_tree: ModuleTree | None,
                 new_tree: ModuleTree | None, kernel_compared: bool,
                 consumers: Sequence[str] = DEFAULT_CONSUMERS) -> KabiDiff:
    """The kABI diff of two export maps; the importers come from the trees given (a Module.symvers side
    has none: a baseline kept in git knows no modules, so no old build is checked)."""
    raw_changes = [c for k in sorted(a.keys() | b.keys()) if (c := export_change(k, a.get(k), b.get(k)))]
    touched = {c.name for c in raw_changes if c.kind != "added"}
    new_uses = _uses(new_tree, touched) if new_tree is not None else {}
    old_uses = _uses(old_tree, touched) if old_tree is not None else {}
    changes: list[ExportChange] = []
    for c in raw_changes:
        if c.kind == "added":
            changes.append(c)
            continue
        nu, ou = new_uses.get(c.name, []), old_uses.get(c.name, [])
        importers = tuple(u.module for u in (ou if c.kind == "removed" or new_tree is None else nu))
        changes.append(replace(
            c, importers=importers,
            old_builds_failing=tuple(u.module for u in ou if c.incompatible and _fails(u, c.new)),
            failing_now=tuple(u.module for u in nu if _fails(u, c.new))))
    effects, per_module = _kabi_effects(old_tree, changes, consumers) if old_tree is not None else ((), {})
    return KabiDiff(len(a), len(b), kernel_compared, tuple(changes), _by_exporter(changes),
                    _groups(changes, per_module), effects)


def _kabi_effects(old_tree: ModuleTree, changes: Sequence[ExportChange], consumers: Sequence[str]
                  ) -> tuple[tuple[KabiEffect, ...], dict[str, dict[str, str]]]:
    """Each consumer on the old builds of the modules whose imports changed CRC."""
    new_crcs = {c.name: c.new.crc for c in changes
                if c.incompatible and c.new is not None and c.new.crc is not None and "crc" in c.fields}
    if not new_crcs or not consumers:
        return (), {}
    per_module: dict[str, dict[str, str]] = {}
    tally: dict[str, Counter] = {c: Counter() for c in consumers}
    verdicts: dict[str, Counter] = {c: Counter() for c in consumers}
    checked = 0
    for m in old_tree.modules:
        rec = m.record
        if rec is None or not any(i.name.removeprefix(".") in new_crcs for i in rec.imports):
            continue
        own = exporter_crcs(rec)
        against = {k: new_crcs.get(k, v) for k, v in own.items()}  # per import, never per changed export
        before = consumer_views(rec, consumers, own, m.output_path)
        after = consumer_views(rec, consumers, against, m.output_path)
        checked += 1
        per_module[m.name] = {}
        for c in consumers:
            eff = view_effect(before[c], after[c]) or "same"
            tally[c][eff] += 1
            verdicts[c][after[c].verdict] += 1
            per_module[m.name][c] = eff
    effects = tuple(KabiEffect(c, checked, tuple(sorted(tally[c].items())), tuple(sorted(verdicts[c].items())))
                    for c in consumers)
    return effects, per_module


def _by_exporter(changes: Sequence[ExportChange]) -> tuple[ExporterSummary, ...]:
    counts: dict[str, Counter] = defaultdict(Counter)
    users: dict[str, set[str]] = defaultdict(set)
    for c in changes:
        e = c.exporter
        if c.kind != "changed":
            counts[e][c.kind] += 1
        else:
            for f in c.fields:
                counts[e][f] += 1
            if c.fields == ("exporter",):
                counts[e]["moved"] += 1
        if c.incompatible:
            counts[e]["incompatible"] += 1
            users[e].update(c.importers)
    rows = [ExporterSummary(e, n["added"], n["removed"], n["crc"], n["gpl_only"], n["namespace"], n["moved"],
                            n["incompatible"], len(users[e])) for e, n in counts.items()]
    rows.sort(key=lambda r: (-r.incompatible, -(r.added + r.removed + r.crc), r.exporter))
    return tuple(rows)


def _groups(changes: Sequence[ExportChange], per_module: Mapping[str, Mapping[str, str]]) -> tuple[ExportGroup, ...]:
    """Incompatible changes keyed by their exact importer set (hashing, so linear in changes)."""
    by_users: dict[frozenset[str], list[ExportChange]] = defaultdict(list)
    for c in changes:
        if c.incompatible:
            by_users[frozenset(c.importers)].append(c)
    out = []
    for users, cs in by_users.items():
        breaking: Counter[str] = Counter()
        for u in users:
            for consumer, eff in per_module.get(u, {}).items():
                if eff == "breaks":
                    breaking[consumer] += 1
        out.append(ExportGroup(
            exports=tuple(c.name for c in cs), exporters=tuple(sorted({c.exporter for c in cs})),
            importers=tuple(sorted(users)), kinds=tuple(sorted(Counter(incompatible_kind(c) for c in cs).items())),
            old_builds_breaking=tuple(sorted(breaking.items()))))
    out.sort(key=lambda g: (-len(g.importers) * len(g.exports), -len(g.exports), g.exports[0]))
    return tuple(out)
