"""A diff (:mod:`kmodcompat.diff`) as the JSON document ``diff-schema.json`` describes.

:func:`to_json` is what ``kmodcompat diff --format json`` prints and what
``kmodcompat report --diff-against`` embeds; :mod:`.diff_render` renders the
same document as text, Markdown or HTML, reading nothing else. The totals
and headlines are computed here, from the diff's records, once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..consumers import CONSUMERS
from ..consumers.kernel import MAINLINE
from ..diff import EXIT_INCOMPATIBLE, EXIT_SAME, DependencyDiff, ExportChange, ExportInfo, KabiDiff, \
    ExportsDiff, ModuleDiff, Pattern, SectionChange, SectionInfo, TreeDiff, TreeSide, ViewSummary, exit_status
from ..diff.policy import PolicyResult, Verdict
from ..diff.results import exports_reason
from ..elf.image import section_flags_text, section_type_name

__all__ = ["SCHEMA_VERSION", "module_json", "to_json"]

SCHEMA_VERSION = 1


def _export_info_json(x: ExportInfo | None) -> dict | None:
    if x is None:
        return None
    return {"crc": x.crc, "gpl_only": x.gpl_only, "namespace": x.namespace, "exporter": x.exporter}


def _export_change_json(c: ExportChange, context: dict | None, policy: PolicyResult | None) -> dict:
    v = policy.verdict(c) if policy is not None else None
    return {"name": c.name, "kind": c.kind, "fields": list(c.fields), "incompatible": c.incompatible,
            "breaks": _export_breaks(c, context, policy), "policy": _verdict_json(v),
            "old": _export_info_json(c.old), "new": _export_info_json(c.new), "importers": list(c.importers),
            "old_builds_failing": list(c.old_builds_failing), "failing_now": list(c.failing_now)}


def _verdict_json(v: Verdict | None) -> dict | None:
    return None if v is None else {"counts": v.counts, "by": v.by, "source": v.source, "why": v.why}


def _summary_json(v: ViewSummary) -> dict:
    return {"verdict": v.verdict, "lost": v.lost, "false_messages": v.false, "messages": v.messages}


def _section_info_json(s: SectionInfo) -> dict:
    return {"index": s.index, "name": s.name, "type": section_type_name(s.type), "flags": s.flags,
            "flags_text": section_flags_text(s.flags), "size": s.size, "addralign": s.addralign,
            "entsize": s.entsize}


def _section_change_json(s: SectionChange) -> dict:
    """Added and removed sections in full; renamed and changed ones with only their index, name and the
    fields that differ (a tree diff holds a hundred thousand of them)."""
    out: dict = {"kind": s.kind, "name": s.name, "fields": list(s.fields)}
    for side in ("old", "new"):
        info: SectionInfo | None = getattr(s, side)
        if info is None:
            out[side] = None
        elif s.kind in ("added", "removed"):
            out[side] = _section_info_json(info)
        else:
            full = _section_info_json(info)
            keep = {"index", "name"} | set(s.fields) | ({"flags_text"} if "flags" in s.fields else set())
            out[side] = {k: v for k, v in full.items() if k in keep}
    return out


def module_json(d: ModuleDiff, context: dict | None = None, policy: PolicyResult | None = None) -> dict:
    """One :class:`ModuleDiff` as the schema's ``module_diff`` (``context``: the tree diff's, see :func:`_context`;
    ``policy``: the kABI policy's verdicts, the tree diff's or the module's own)."""
    policy = policy if policy is not None else d.policy
    return {
        "name": d.name, "old_path": d.old_path, "new_path": d.new_path,
        "incompatible": bool(d.breaking_under(lambda x: _export_breaks(x, None, policy))),
        "attributes": [{"field": a.field, "old": a.old, "new": a.new} for a in d.attributes],
        "sections": [_section_change_json(s) for s in d.sections],
        "versions": {"old_format": d.old_format, "new_format": d.new_format,
                     "entries": [{"name": v.name, "kind": v.kind, "old": dict(v.old), "new": dict(v.new)}
                                 for v in d.versions]},
        "modinfo": [{"key": m.key, "old": list(m.old), "new": list(m.new)} for m in d.modinfo],
        "imports": {"added": list(d.imports_added), "removed": list(d.imports_removed)},
        "exports": [_export_change_json(c, context, policy) for c in d.exports],
        "consumers": [{"consumer": c.consumer, "effect": c.effect, "old": _summary_json(c.old),
                       "new": _summary_json(c.new)} for c in d.consumers],
    }


def _totals(mods: Sequence[ModuleDiff], kabi: KabiDiff | None, deps: DependencyDiff | None, added: int,
            removed: int, unchanged: int, unreadable: int, context: dict | None = None,
            policy: PolicyResult | None = None) -> dict:
    changes = kabi.changes if kabi is not None else tuple(c for m in mods for c in m.exports)
    return {
        "modules_added": added, "modules_removed": removed,
        "modules_changed": sum(1 for m in mods if m.file_changed),
        "modules_affected": sum(1 for m in mods if not m.file_changed),
        "modules_unchanged": unchanged, "modules_became_unreadable": unreadable,
        "section_changes": sum(len(m.sections) for m in mods),
        "version_entry_changes": sum(len(m.versions) for m in mods),
        "modinfo_changes": sum(len(m.modinfo) for m in mods),
        "exports_added": sum(1 for c in changes if c.kind == "added"),
        "exports_removed": sum(1 for c in changes if c.kind == "removed"),
        "exports_changed": sum(1 for c in changes if c.kind == "changed"),
        "exports_crc_changed": sum(1 for c in changes if "crc" in c.fields),
        "exports_incompatible": sum(1 for c in changes if c.incompatible),
        "exports_excused": sum(1 for c in changes if _export_breaks(c, context) and not _export_breaks(c, context,
                                                                                                       policy)),
        "consumer_breaks": sum(1 for m in mods for c in m.consumers if c.effect == "breaks"),
        "dep_lines_changed": len(deps.dep_changed) if deps else 0,
        "new_cycles": len(deps.new_cycles) if deps else 0,
        "newly_unresolved": sum(1 for u in deps.newly_unresolved if not u[2]) if deps else 0,
    }


def _crc_checkers() -> tuple[str, ...]:
    """Consumers whose verdicts rest on CRC checks, a side without MODVERSIONS making their changes moot: the
    kernel.org loaders and the weak-modules gates (the registry's; Debian's loaders are not among them)."""
    return tuple(c.id for c in CONSUMERS.values()
                 if c.kind == "crc-gate" or c.kind == "kernel" and c.profile.profile == MAINLINE)


#: How many module names a headline line shows before "and N more".
HEADLINE_NAMES = 8


def _names_line(names: Sequence[str], limit: int = HEADLINE_NAMES) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _context(diff: TreeDiff) -> dict:
    """What differs between the two trees as a whole, found in most modules both trees hold: the machine
    (ELF e_machine) and the kernel's MODVERSIONS setting ('modversions' in vermagic,
    include/linux/vermagic.h). Everything that follows from such a difference is not a break."""
    common = len(diff.modules) + diff.unchanged
    machines = Counter((a.old, a.new) for m in diff.modules for a in m.attributes if a.field == "machine")
    settings: Counter = Counter()
    for m in diff.modules:
        for x in m.modinfo:
            if x.key == "vermagic":
                pair = tuple(any("modversions" in v.split() for v in side) for side in (x.old, x.new))
                if pair[0] != pair[1]:
                    settings[pair] += 1
    out: dict = {"arch": None, "kernel_modversions": None, "notes": []}
    if machines:
        (old, new), n = machines.most_common(1)[0]
        if 2 * n > common:
            out["arch"] = {"old": old, "new": new}
            out["notes"].append(f"Different architectures ({old} → {new}): every consumer verdict and CRC "
                                "below follows from that; none is counted as a break.")
    if settings and out["arch"] is None:
        (old, new), n = settings.most_common(1)[0]
        if 2 * n > common:
            out["kernel_modversions"] = {"old": old, "new": new}
            word = {True: "with", False: "without"}
            out["notes"].append(f"Different MODVERSIONS settings (old kernel {word[old]}, new {word[new]}): "
                                "kernel CRC checks and CRC changes are not counted as breaks.")
    return out


def _crc_appeared_or_vanished(c: ExportChange) -> bool:
    """Only the CRC changed, and one side has none: what a MODVERSIONS setting changing does."""
    return c.fields == ("crc",) and (c.old is None or c.old.crc is None or c.new is None or c.new.crc is None)


def _export_breaks(c: ExportChange, context: dict | None, policy: PolicyResult | None = None) -> bool:
    """An incompatible export change counts as a break unless the context explains it: trees of different
    machines (nothing counts), or of kernels with and without MODVERSIONS (a CRC that appeared or vanished);
    or, with a kABI policy, unless the policy excuses it (diff/policy.py)."""
    if not c.incompatible:
        return False
    if policy is not None and not policy.verdict(c).counts:
        return False
    if context is None or not context["notes"]:
        return True
    return not context["arch"] and not _crc_appeared_or_vanished(c)


def _dependencies_count(context: dict | None) -> bool:
    """New cycles and newly unresolved imports count as breaks, unless the trees are of different machines."""
    return context is None or not context["arch"]


def _counted(diff: ModuleDiff | TreeDiff | ExportsDiff, context: dict | None) -> tuple[list[str], list[dict]]:
    """(reasons, breaking modules): :attr:`TreeDiff.breaking` without what the context or the kABI policy
    explains, and the modules that break (name, path and why), in the diff's order."""
    policy = diff.policy
    moot = context is not None and bool(context["notes"])
    moot_consumers: tuple[str, ...] = ()
    if isinstance(diff, TreeDiff) and (moot or policy is not None):
        if moot:
            assert context is not None
            moot_consumers = tuple(diff.consumers) if context["arch"] else _crc_checkers()
        reasons = []
    elif isinstance(diff, ModuleDiff):
        reasons = list(diff.breaking_under(lambda x: _export_breaks(x, None, policy)))
    elif isinstance(diff, ExportsDiff) and policy is not None:
        counted = [c for c in diff.kabi.incompatible if _export_breaks(c, None, policy)]
        reasons = [exports_reason(counted)] if counted else []
    else:
        reasons = list(diff.breaking)
    breaks = []
    mods = diff.modules if isinstance(diff, TreeDiff) else [diff] if isinstance(diff, ModuleDiff) else []
    for m in mods:
        why = [f"{c.consumer}: {c.old.verdict} → {c.new.verdict}" for c in m.consumers
               if c.effect == "breaks" and c.consumer not in moot_consumers]
        if why:
            breaks.append({"module": m.name, "path": m.new_path, "why": "; ".join(why)})
    if isinstance(diff, TreeDiff):
        breaks += [{"module": n, "path": p, "why": f"became unreadable: {r}"} for n, r, p in diff.became_unreadable]
    if isinstance(diff, TreeDiff) and (moot or policy is not None):
        # TreeDiff.breaking's reasons, recounted without the moot ones and what the policy excuses.
        if diff.kabi is not None:
            counted = [c for c in diff.kabi.incompatible if _export_breaks(c, context, policy)]
            if counted:
                reasons.append(exports_reason(counted))
        per = Counter(c.consumer for m in diff.modules for c in m.consumers
                      if c.effect == "breaks" and c.consumer not in moot_consumers)
        reasons += [f"{c}: {n} module(s) now read as broken" for c, n in sorted(per.items())]
        if diff.became_unreadable:
            reasons.append(f"{len(diff.became_unreadable)} module(s) became unreadable")
        d = diff.dependencies
        if d is not None and _dependencies_count(context):
            if d.new_cycles:
                reasons.append(f"{len(d.new_cycles)} new dependency cycle(s)")
            strong = [u for u in d.newly_unresolved if not u[2]]
            if strong:
                reasons.append(f"{len(strong)} newly unresolved import(s)")
    return reasons, breaks


def _headlines(diff: ModuleDiff | TreeDiff | ExportsDiff, totals: dict, status: int, reasons: list[str], breaks: list[dict],
               context: dict | None, policy_line: str | None = None) -> list[str]:
    out = list(context["notes"]) if context else []
    if status == EXIT_SAME and not diff.changed:
        return out + ["No difference."]
    if status == EXIT_SAME:  # a kABI policy: changes, none it fails
        out.append(f"Nothing the kABI policy fails (exit status {status}).")
    else:
        verdict = "Incompatible" if status & EXIT_INCOMPATIBLE else "Compatible changes only"
        out.append(f"{verdict} (exit status {status})" + (": " + "; ".join(reasons[:6]) if reasons else "."))
    if policy_line:
        out.append(policy_line)
    if breaks:
        out.append(f"Modules that break ({len(breaks)}): {_names_line([b['module'] for b in breaks])}.")
    t = totals
    if isinstance(diff, TreeDiff):
        changed = [m.name for m in diff.modules if m.file_changed]
        if changed:
            out.append(f"Changed modules ({len(changed)}): {_names_line(changed)}.")
        out.append(f"Modules: {t['modules_added']} added, {t['modules_removed']} removed, {t['modules_changed']} "
                   f"changed, {t['modules_affected']} unchanged but read differently against the new exports, "
                   f"{t['modules_unchanged']} unchanged.")
    if t["exports_added"] or t["exports_removed"] or t["exports_changed"]:
        out.append(f"Exports: {t['exports_added']} added, {t['exports_removed']} removed, {t['exports_changed']} "
                   f"changed ({t['exports_crc_changed']} CRC); {t['exports_incompatible']} incompatible.")
    if isinstance(diff, (TreeDiff, ExportsDiff)) and diff.kabi is not None:
        for e in diff.kabi.effects:
            n = dict(e.effects).get("breaks", 0)
            if n:
                out.append(f"Old builds of {n} of {e.modules} importing module(s) break on the new exports for "
                           f"{e.consumer} (verdicts: {', '.join(f'{k} {v}' for k, v in e.verdicts)}).")
    if t["dep_lines_changed"] or t["new_cycles"] or t["newly_unresolved"]:
        out.append(f"Dependencies: {t['dep_lines_changed']} modules.dep line(s) changed, {t['new_cycles']} new "
                   f"cycle(s), {t['newly_unresolved']} newly unresolved import(s).")
    return out


def to_json(diff: ModuleDiff | TreeDiff | ExportsDiff, old_label: str | None = None,
            new_label: str | None = None) -> dict:
    """The diff as the dict ``report/diff-schema.json`` describes (``schema_version`` 1)."""
    doc: dict[str, Any]
    context = _context(diff) if isinstance(diff, TreeDiff) else None
    if isinstance(diff, ExportsDiff):  # a Module.symvers on a side: the kABI alone
        totals = _totals((), diff.kabi, None, 0, 0, 0, 0, None, diff.policy)
        doc = {"kind": "kabi", "old": _side_json(diff.old), "new": _side_json(diff.new),
               "consumers": list(diff.consumers),
               "modules": {"added": [], "removed": [], "became_unreadable": [], "became_readable": [],
                           "changed": []},
               "patterns": [], "kabi": _kabi_json(diff.kabi, None, diff.policy), "dependencies": None,
               "notes": list(diff.notes)}
    elif isinstance(diff, ModuleDiff):
        mods = [diff] if diff.changed else []
        totals = _totals(mods, None, None, 0, 0, 0 if diff.changed else 1, 0, None, diff.policy)
        side = lambda label, path: {"label": label or path, "path": path, "kernel_release": None,  # noqa: E731
                                    "modules": 1, "unreadable": 0, "symvers": None, "system_map": None,
                                    "kernel_image": None, "kernel_exports": None}
        doc = {"kind": "modules", "old": side(old_label, diff.old_path), "new": side(new_label, diff.new_path),
               "consumers": list(diff.compared_consumers),
               "modules": {"added": [], "removed": [], "became_unreadable": [], "became_readable": [],
                           "changed": [module_json(m) for m in mods]},
               "patterns": [], "kabi": None, "dependencies": None, "notes": []}
    else:
        totals = _totals(diff.modules, diff.kabi, diff.dependencies, len(diff.added), len(diff.removed),
                         diff.unchanged, len(diff.became_unreadable), context, diff.policy)
        doc = {"kind": "trees", "old": _side_json(diff.old), "new": _side_json(diff.new),
               "consumers": list(diff.consumers),
               "modules": {"added": [{"name": n, "path": p} for n, p in diff.added],
                           "removed": [{"name": n, "path": p} for n, p in diff.removed],
                           "became_unreadable": [{"name": n, "reason": r, "path": p} for n, r, p in diff.became_unreadable],
                           "became_readable": [{"name": n, "reason": r} for n, r in diff.became_readable],
                           "changed": [module_json(m, context, diff.policy) for m in diff.modules]},
               "patterns": [_pattern_json(p) for p in diff.patterns],
               "kabi": _kabi_json(diff.kabi, context, diff.policy) if diff.kabi is not None else None,
               "dependencies": _deps_json(diff.dependencies, context) if diff.dependencies is not None else None,
               "notes": list(diff.notes)}
    reasons, breaks = _counted(diff, context)
    status = exit_status(diff)
    if context is not None and context["notes"] and not reasons:
        status &= ~EXIT_INCOMPATIBLE  # what breaks follows from comparing unlike trees: not a break
    policy = _policy_json(diff, context)
    if policy is not None and not reasons:
        status = EXIT_SAME  # the policy's gate: nothing it fails (suse-kabi-tools' compare exits 0 likewise)
    head = {"schema_version": SCHEMA_VERSION, "generator": {"name": "kmodcompat", "version": __version__},
            "status": {"exit_code": status, "changed": diff.changed,
                       "incompatible": bool(status & EXIT_INCOMPATIBLE), "reasons": reasons},
            "totals": totals,
            "headlines": _headlines(diff, totals, status, reasons, breaks, context,
                                    policy["summary"] if policy is not None else None)}
    return {**head, "context": context, "breaks": breaks, "policy": policy, **doc}


def _side_json(s: TreeSide) -> dict:
    return {"label": s.label, "path": s.path, "kernel_release": s.kernel_release, "modules": s.modules,
            "unreadable": s.unreadable, "symvers": s.symvers, "system_map": s.system_map,
            "kernel_image": s.kernel_image, "kernel_exports": s.kernel_exports}


def _pattern_json(p: Pattern) -> dict:
    return {"area": p.area, "change": p.change, "subject": p.subject, "modules": p.modules, "count": p.count,
            "details": [{"text": t, "count": n} for t, n in p.details], "distinct": p.distinct,
            "sample": list(p.sample)}


def _kabi_json(k: KabiDiff, context: dict | None, policy: PolicyResult | None) -> dict:
    return {
        "old_exports": k.old_exports, "new_exports": k.new_exports, "kernel_compared": k.kernel_compared,
        "changes": [_export_change_json(c, context, policy) for c in k.changes],
        "by_exporter": [{"exporter": e.exporter, "added": e.added, "removed": e.removed, "crc": e.crc,
                         "gpl_only": e.gpl_only, "namespace": e.namespace, "moved": e.moved,
                         "incompatible": e.incompatible, "importers": e.importers} for e in k.by_exporter],
        "groups": [{"exports": list(g.exports), "exporters": list(g.exporters), "importers": list(g.importers),
                    "kinds": dict(g.kinds), "old_builds_breaking": dict(g.old_builds_breaking)} for g in k.groups],
        "effects": [{"consumer": e.consumer, "modules": e.modules, "effects": dict(e.effects),
                     "verdicts": dict(e.verdicts)} for e in k.effects],
    }


def _deps_json(d: DependencyDiff, context: dict | None) -> dict:
    return {"unresolved_checked": d.unresolved_checked, "counted": _dependencies_count(context),
            "dep_changed": [{"module": c.module, "old": list(c.old), "new": list(c.new), "added": list(c.added),
                             "removed": list(c.removed)} for c in d.dep_changed],
            "new_cycles": [list(c) for c in d.new_cycles], "resolved_cycles": [list(c) for c in d.resolved_cycles],
            "newly_unresolved": [{"module": m, "symbol": s, "weak": w} for m, s, w in d.newly_unresolved]}


def _policy_json(diff: ModuleDiff | TreeDiff | ExportsDiff, context: dict | None) -> dict | None:
    """The kABI policy's part of the document: the lists and rules, each rule's use, and the one line the
    first screen says of it (how many incompatible changes it excused, and by what)."""
    result = diff.policy
    if result is None:
        return None
    p = result.policy
    if isinstance(diff, ModuleDiff):
        changes: tuple[ExportChange, ...] = diff.exports
    else:
        changes = diff.kabi.changes if diff.kabi is not None else ()
    excused: Counter[str] = Counter()
    counted: Counter[str] = Counter()
    for c in changes:
        if not _export_breaks(c, context):
            continue
        v = result.verdict(c)
        (counted if v.counts else excused)[v.by] += 1
    lists = [{"path": sl.path, "kind": sl.kind, "format": sl.format, "sections": list(sl.sections),
              "names": len(sl.names), "patterns": len(sl.patterns), "unexported": n}
             for sl, n in zip(p.symbol_lists, result.list_unexported)]
    rules = [{"path": r.path, "line": r.line, "format": r.format, "type": r.kind, "pattern": r.pattern,
              "verdict": r.verdict, "text": r.text, "changes": n, "exports": x}
             for r, n, x in zip(p.rules, result.rule_changes, result.rule_exports)]
    what = []
    if p.symbol_lists:
        what.append(f"{len(p.symbol_lists)} symbol list(s), {result.listed_names} name(s)")
    if p.rules:
        what.append(f"{len(p.rules)} rule(s)")
    total = sum(excused.values()) + sum(counted.values())
    why = [f"{excused[k]} {text}" for k, text in (("symbol-list", "not in the symbol lists"),
                                                  ("rule", "PASS by a rule")) if excused[k]]
    how = [f"{counted[k]} {text}" for k, text in (("symbol-list", "listed"), ("rule", "FAIL by a rule"),
                                                  ("default", "matched by no rule")) if counted[k]]
    summary = (f"kABI policy ({'; '.join(what)}): {sum(excused.values())} of {total} incompatible export "
               f"change(s) excused" + (f" ({', '.join(why)})" if why else "") + f", {sum(counted.values())} counted"
               + (f" ({', '.join(how)})" if how else "") + ".")
    return {"symbol_lists": lists, "rules": rules, "excused": dict(sorted(excused.items())),
            "counted": dict(sorted(counted.items())), "unused_rules": list(result.unused_rules),
            "summary": summary}
