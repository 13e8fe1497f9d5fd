"""Old against new: what changed between two builds of a module or of a whole tree, and who it breaks.

Users build the same kernel or module twice (old and new kernel, old and new
toolchain, BASIC against EXTENDED MODVERSIONS) and need the exact difference,
grouped by cause. The public API:

* :func:`diff_modules` (``old_rec, new_rec``) → :class:`ModuleDiff`: section
  layout (added, removed, renamed-looking, resized, type/flags/alignment/
  entry-size and order changes), import version entries (moved between
  ``__versions`` and the extended tables, appeared, disappeared, changed CRC),
  ``.modinfo`` keys as modinfo prints them (signer, key and algorithm included),
  imports, exports, and each consumer's verdict before and after.
* :func:`diff_trees` (``old_tree, new_tree``) → :class:`TreeDiff`: the same
  per module (matched by depmod's module name), plus the kABI diff (exports of
  the kernel image and of every module, with their importers and the
  consumer-visible effect on old builds), the dependency diff (modules.dep
  lines, cycles, unresolved imports) and :class:`Pattern` summaries that group
  ten thousand per-module changes into their causes.
* :func:`to_json` → the dict that ``report/diff-schema.json`` describes;
  :mod:`kmodcompat.report.diff_render` renders it as text, Markdown or HTML.
* :func:`exit_status`: abidiff's bitmask: 0 nothing changed,
  :data:`EXIT_CHANGE` (4) something changed, plus :data:`EXIT_INCOMPATIBLE`
  (8) when a change breaks a consumer (so 12), 1 error, 2 usage.

What counts as incompatible (:attr:`ModuleDiff.incompatible`,
:attr:`TreeDiff.incompatible`): an export removed, its CRC changed (unless
the new build has none: a kernel without MODVERSIONS checks nothing), made
GPL-only, or moved into another namespace; a consumer's verdict falling into
the "broken" class (refuses, unreadable, false mismatch) from a better one;
a module that became unreadable; a new dependency cycle; a newly unresolved
non-weak import. Everything else that differs is a compatible change.

Every result is an immutable record; nothing here is quadratic in modules or
symbols (matching is by dict, section order by a longest increasing
subsequence).
"""

from __future__ import annotations

import bisect
import gzip
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from . import __version__
from .consumers import CONSUMERS
from .consumers.base import COMPATIBLE, FALSE_MISMATCH, IGNORES, INCOMPATIBLE, LOADS, LOADS_TAINTED, \
    LOADS_UNCHECKED, OK, PARTIAL, REFUSES, UNREADABLE, ConsumerView, exporter_crcs
from .depmod.kernel_symbols import KernelSymbols
from .elf.image import machine_name, section_flags_text, section_type_name
from .graph import TreeGraph, graph_for_tree
from .records import SHT_REL, SHT_RELA, ModuleRecord, Section
from .report import find_kernel_files, load_kernel
from .depmod.tree import ModuleTree
from .views import AS_IS, compute_views

__all__ = [
    "DEFAULT_CONSUMERS", "EXIT_CHANGE", "EXIT_ERROR", "EXIT_INCOMPATIBLE", "EXIT_SAME", "EXIT_USAGE", "SCHEMA_VERSION",
    "Attribute", "ConsumerChange", "DepChange", "DepFacts", "DependencyDiff", "ExportChange", "ExportGroup",
    "ExportInfo", "ExporterSummary", "KabiDiff", "KabiEffect", "ModinfoChange", "ModuleDiff", "Pattern",
    "SectionChange", "SectionInfo", "TreeDiff", "TreeSide", "VersionChange", "ViewSummary",
    "diff_dependencies", "diff_kabi", "diff_modules", "diff_sections", "diff_trees", "diff_versions", "exit_status",
    "export_map", "module_json", "patterns", "symvers_exports", "to_json",
]

SCHEMA_VERSION = 1

# Exit status bits, as abidiff (libabigail) defines them.
EXIT_SAME = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CHANGE = 4
EXIT_INCOMPATIBLE = 8

#: Consumers compared by default: the ones the report's headlines name (they check CRCs).
DEFAULT_CONSUMERS = ("kmod34", "kernel-6.13", "kernel-6.14")

#: Version tables, by the name used in results: classic ``__versions``, the 6.14+
#: ``__version_ext_crcs``/``__version_ext_names`` pair, the rejected variable-length ``__versions``.
TABLE_BASIC, TABLE_EXT, TABLE_VARLEN = "basic", "ext", "varlen"
TABLE_TITLES = {TABLE_BASIC: "__versions", TABLE_EXT: "__version_ext", TABLE_VARLEN: "__versions (varlen)"}

#: Section header fields compared (offset, link and info follow from the rest of the file).
SECTION_FIELDS = ("type", "flags", "size", "addralign", "entsize")

#: Verdict classes: 0 works and checks, 1 works with less checking, 2 fails or cries wolf.
_RANK = {OK: 0, IGNORES: 0, LOADS: 0, COMPATIBLE: 0, PARTIAL: 1, LOADS_UNCHECKED: 1, LOADS_TAINTED: 1,
         FALSE_MISMATCH: 2, UNREADABLE: 2, REFUSES: 2, INCOMPATIBLE: 2}

#: module_license() / license_is_gpl_compatible(): the licenses that may use GPL-only exports.
GPL_COMPATIBLE = frozenset({"GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL",
                            "Dual MPL/GPL"})


# -- records ----------------------------------------------------------------------------------


class SectionInfo(NamedTuple):
    """The compared fields of one section header."""

    index: int
    name: str
    type: int
    flags: int
    size: int
    addralign: int
    entsize: int

    @classmethod
    def of(cls, s: Section) -> "SectionInfo":
        return cls(s.index, s.name, s.type, s.flags, s.size, s.addralign, s.entsize)

    def as_dict(self) -> dict:
        return {"index": self.index, "name": self.name, "type": section_type_name(self.type), "flags": self.flags,
                "flags_text": section_flags_text(self.flags), "size": self.size, "addralign": self.addralign,
                "entsize": self.entsize}


@dataclass(frozen=True, slots=True)
class SectionChange:
    """One section added, removed, renamed-looking or changed.

    ``fields``: for "renamed" and "changed", which of :data:`SECTION_FIELDS`
    differ, plus "order" when the section moved relative to the others.
    """

    kind: str  # "added" | "removed" | "renamed" | "changed"
    old: SectionInfo | None
    new: SectionInfo | None
    fields: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.new.name if self.new is not None else self.old.name  # type: ignore[union-attr]


@dataclass(frozen=True, slots=True)
class VersionChange:
    """One import version entry that differs; ``old``/``new``: (table, CRC) of each table holding it."""

    name: str
    kind: str  # "appeared" | "disappeared" | "moved" | "crc-changed" | "moved+crc-changed"
    old: tuple[tuple[str, int], ...]
    new: tuple[tuple[str, int], ...]

    @property
    def transition(self) -> str:
        """"basic → basic+ext" style: the tables before and after."""
        return f"{_tables_text(self.old)} → {_tables_text(self.new)}"


@dataclass(frozen=True, slots=True)
class ModinfoChange:
    """A ``.modinfo`` key (or modinfo's signature pseudo-key) whose values differ, order aside."""

    key: str
    old: tuple[str, ...]
    new: tuple[str, ...]

    @property
    def added(self) -> tuple[str, ...]:
        return tuple((Counter(self.new) - Counter(self.old)).elements())

    @property
    def removed(self) -> tuple[str, ...]:
        return tuple((Counter(self.old) - Counter(self.new)).elements())


class ExportInfo(NamedTuple):
    """An export as the tree resolves it: its CRC, flags and the module (or ``vmlinux``) that owns it."""

    name: str
    crc: int | None
    gpl_only: bool
    namespace: str | None
    exporter: str


@dataclass(frozen=True, slots=True)
class ExportChange:
    """One export added, removed or changed (``fields``: crc, gpl_only, namespace, exporter).

    ``importers``: the modules that use it: the OLD tree's for a removed
    export, the NEW tree's otherwise (an old build of each fails against the
    new export). ``old_builds_failing``: OLD-tree modules whose old build the
    change breaks (recorded CRC differs, export gone, non-GPL license against
    a GPL-only export, namespace not imported). ``failing_now``: NEW-tree
    modules it breaks as shipped (stale CRC, still importing a removed
    export, and so on).
    """

    name: str
    kind: str  # "added" | "removed" | "changed"
    old: ExportInfo | None
    new: ExportInfo | None
    fields: tuple[str, ...] = ()
    incompatible: bool = False
    importers: tuple[str, ...] = ()
    old_builds_failing: tuple[str, ...] = ()
    failing_now: tuple[str, ...] = ()

    @property
    def exporter(self) -> str:
        return self.new.exporter if self.new is not None else self.old.exporter  # type: ignore[union-attr]


class ViewSummary(NamedTuple):
    """What one consumer makes of one module, reduced to what a diff compares."""

    verdict: str
    lost: int
    false: int
    messages: int

    @classmethod
    def of(cls, v: ConsumerView) -> "ViewSummary":
        return cls(v.verdict, len(v.lost), len(v.false_messages), len(v.messages))


@dataclass(frozen=True, slots=True)
class ConsumerChange:
    """A consumer that reads the new module differently from the old one."""

    consumer: str
    old: ViewSummary
    new: ViewSummary
    effect: str  # "breaks" | "degrades" | "improves" | "warns" | "changes"


@dataclass(frozen=True, slots=True)
class Attribute:
    """A whole-file property that differs (ELF class, machine, modversions format, compression, path)."""

    field: str
    old: str | int | None
    new: str | int | None


@dataclass(frozen=True, slots=True)
class ModuleDiff:
    """Everything that differs between two builds of one module."""

    name: str
    old_path: str
    new_path: str
    attributes: tuple[Attribute, ...] = ()
    sections: tuple[SectionChange, ...] = ()
    old_format: str = "none"
    new_format: str = "none"
    versions: tuple[VersionChange, ...] = ()
    modinfo: tuple[ModinfoChange, ...] = ()
    imports_added: tuple[str, ...] = ()
    imports_removed: tuple[str, ...] = ()
    exports: tuple[ExportChange, ...] = ()
    consumers: tuple[ConsumerChange, ...] = ()
    compared_consumers: tuple[str, ...] = ()  # the consumers run on both builds

    @property
    def file_changed(self) -> bool:
        """The module itself differs (not only how consumers read it against another tree's exports)."""
        return bool(self.attributes or self.sections or self.versions or self.modinfo or self.imports_added
                    or self.imports_removed or self.exports)

    @property
    def changed(self) -> bool:
        return self.file_changed or bool(self.consumers)

    @property
    def breaking(self) -> tuple[str, ...]:
        """Why this module's change is incompatible (empty: it is not)."""
        out = [f"{self.name}: {c.consumer} {c.old.verdict} → {c.new.verdict}"
               for c in self.consumers if c.effect == "breaks"]
        out += [f"{self.name}: export {x.name} {x.kind}{' (' + ', '.join(x.fields) + ')' if x.fields else ''}"
                for x in self.exports if x.incompatible]
        return tuple(out)

    @property
    def incompatible(self) -> bool:
        return bool(self.breaking)


@dataclass(frozen=True, slots=True)
class ExporterSummary:
    """kABI changes of one exporting module (or ``vmlinux``)."""

    exporter: str
    added: int
    removed: int
    crc: int
    gpl_only: int
    namespace: int
    moved: int  # exports that only changed owner
    incompatible: int
    importers: int  # distinct modules using its incompatibly changed exports


@dataclass(frozen=True, slots=True)
class ExportGroup:
    """Incompatible export changes used by exactly the same importers: one cause, one line."""

    exports: tuple[str, ...]
    exporters: tuple[str, ...]
    importers: tuple[str, ...]
    kinds: tuple[tuple[str, int], ...]  # ("removed" | "crc" | "gpl_only" | "namespace", count)
    old_builds_breaking: tuple[tuple[str, int], ...] = ()  # (consumer, old builds of the importers it breaks)


@dataclass(frozen=True, slots=True)
class KabiEffect:
    """A consumer reading the old builds of the importers against the new exports."""

    consumer: str
    modules: int  # old builds checked
    effects: tuple[tuple[str, int], ...]  # ("breaks" | "warns" | ..., modules)
    verdicts: tuple[tuple[str, int], ...]  # verdict on the new exports, modules


@dataclass(frozen=True, slots=True)
class KabiDiff:
    old_exports: int
    new_exports: int
    kernel_compared: bool  # vmlinux exports (Module.symvers) were known on both sides
    changes: tuple[ExportChange, ...]
    by_exporter: tuple[ExporterSummary, ...] = ()
    groups: tuple[ExportGroup, ...] = ()
    effects: tuple[KabiEffect, ...] = ()

    @property
    def incompatible(self) -> tuple[ExportChange, ...]:
        return tuple(c for c in self.changes if c.incompatible)


@dataclass(frozen=True, slots=True)
class DepChange:
    """A module whose modules.dep line lists other modules (by name), or the same in another order."""

    module: str
    old: tuple[str, ...]
    new: tuple[str, ...]

    @property
    def added(self) -> tuple[str, ...]:
        o = set(self.old)
        return tuple(d for d in self.new if d not in o)

    @property
    def removed(self) -> tuple[str, ...]:
        n = set(self.new)
        return tuple(d for d in self.old if d not in n)


@dataclass(frozen=True, slots=True)
class DependencyDiff:
    dep_changed: tuple[DepChange, ...]
    new_cycles: tuple[tuple[str, ...], ...]  # strongly connected components that did not exist before
    resolved_cycles: tuple[tuple[str, ...], ...]
    newly_unresolved: tuple[tuple[str, str, bool], ...]  # (module, symbol, weak)
    unresolved_checked: bool  # both sides knew the kernel's exports; without them every kernel import is unresolved


@dataclass(frozen=True, slots=True)
class Pattern:
    """One kind of change and how many modules show it (a tree diff's grouping by cause).

    ``details``: the most common concrete forms ("A → AX", a symbol name,
    "vermagic X → Y") with their counts; ``distinct``: how many forms there are.
    """

    area: str  # "attribute" | "section" | "versions" | "modinfo" | "imports" | "consumer"
    change: str
    subject: str
    modules: int
    count: int
    details: tuple[tuple[str, int], ...]
    distinct: int
    sample: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TreeSide:
    label: str
    path: str
    kernel_release: str | None
    modules: int
    unreadable: int
    symvers: str | None = None
    system_map: str | None = None


@dataclass(frozen=True, slots=True)
class TreeDiff:
    old: TreeSide
    new: TreeSide
    consumers: tuple[str, ...]
    added: tuple[tuple[str, str], ...]  # (module, path)
    removed: tuple[tuple[str, str], ...]
    modules: tuple[ModuleDiff, ...]  # modules in both trees that differ
    unchanged: int
    became_unreadable: tuple[tuple[str, str], ...] = ()  # (module, reason)
    became_readable: tuple[tuple[str, str], ...] = ()  # (module, the old reason)
    kabi: KabiDiff | None = None
    dependencies: DependencyDiff | None = None
    patterns: tuple[Pattern, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def breaking(self) -> tuple[str, ...]:
        """Why the new tree is incompatible with the old one, one line per cause."""
        out: list[str] = []
        if self.kabi is not None and self.kabi.incompatible:
            kinds = Counter(_incompatible_kind(c) for c in self.kabi.incompatible)
            out.append("exports: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
        breaks = Counter(c.consumer for m in self.modules for c in m.consumers if c.effect == "breaks")
        for c, n in sorted(breaks.items()):
            out.append(f"{c}: {n} module(s) now read as broken")
        if self.became_unreadable:
            out.append(f"{len(self.became_unreadable)} module(s) became unreadable")
        d = self.dependencies
        if d is not None:
            if d.new_cycles:
                out.append(f"{len(d.new_cycles)} new dependency cycle(s)")
            strong = [u for u in d.newly_unresolved if not u[2]]
            if strong:
                out.append(f"{len(strong)} newly unresolved import(s)")
        return tuple(out)

    @property
    def incompatible(self) -> bool:
        return bool(self.breaking)

    @property
    def changed(self) -> bool:
        d = self.dependencies
        return bool(self.added or self.removed or self.modules or self.became_unreadable or self.became_readable
                    or (self.kabi is not None and self.kabi.changes)
                    or (d is not None and (d.dep_changed or d.new_cycles or d.resolved_cycles or d.newly_unresolved)))


def exit_status(diff: ModuleDiff | TreeDiff) -> int:
    """abidiff's bitmask: 0, 4 (changed) or 12 (changed, incompatible)."""
    if diff.incompatible:
        return EXIT_CHANGE | EXIT_INCOMPATIBLE
    return EXIT_CHANGE if diff.changed else EXIT_SAME


# -- one module ---------------------------------------------------------------------------------


def _lis_positions(seq: Sequence[int]) -> set[int]:
    """Positions in ``seq`` of one longest strictly increasing subsequence (patience sort, O(n log n))."""
    tails: list[int] = []
    tail_pos: list[int] = []
    prev = [-1] * len(seq)
    for i, v in enumerate(seq):
        j = bisect.bisect_left(tails, v)
        if j == len(tails):
            tails.append(v)
            tail_pos.append(i)
        else:
            tails[j] = v
            tail_pos[j] = i
        prev[i] = tail_pos[j - 1] if j else -1
    keep: set[int] = set()
    k = tail_pos[-1] if tail_pos else -1
    while k >= 0:
        keep.add(k)
        k = prev[k]
    return keep


def _keyed(sections: Iterable[Section]) -> dict[tuple[str, int], SectionInfo]:
    """Sections by (name, occurrence): a name seen twice (rare, legal) stays two sections."""
    seen: Counter[str] = Counter()
    out: dict[tuple[str, int], SectionInfo] = {}
    for s in sections:
        if s.index == 0:
            continue  # the NULL section header is in every file
        out[(s.name, seen[s.name])] = SectionInfo.of(s)
        seen[s.name] += 1
    return out


def _reloc_target(s: SectionInfo) -> str | None:
    """The section a ``.rela<name>``/``.rel<name>`` section relocates, by the naming every toolchain uses."""
    if s.type == SHT_RELA and s.name.startswith(".rela"):
        return s.name[5:]
    if s.type == SHT_REL and s.name.startswith(".rel"):
        return s.name[4:]
    return None


def diff_sections(old: Sequence[Section], new: Sequence[Section]) -> tuple[SectionChange, ...]:
    """The section layout difference, in the new file's order (removed sections last, in old order).

    Sections are matched by name; a section that vanished and one that
    appeared with identical type, flags, size, alignment and entry size (size
    above zero) are paired as "renamed" (renamed-looking: nothing proves it),
    and so are their relocation sections.
    "order" marks the matched sections outside one longest run kept in the
    same relative order, so one section moved is one change, not every
    section after it.
    """
    o, n = _keyed(old), _keyed(new)
    pairs = [(o[k], n[k]) for k in n if k in o]
    gone = [o[k] for k in o if k not in n]
    fresh = [n[k] for k in n if k not in o]
    # Relocation sections all look alike (same type, flags, alignment, entry size): one is paired only
    # with the relocations of the section its target was renamed to, never on its attributes.
    pool: dict[tuple, list[SectionInfo]] = defaultdict(list)
    for s in fresh:
        if s.size and _reloc_target(s) is None:
            pool[s[2:]].append(s)
    renamed: dict[int, SectionInfo] = {}  # new index → old section
    for s in gone:
        cands = pool.get(s[2:]) if s.size and _reloc_target(s) is None else None
        if cands:
            renamed[cands.pop(0).index] = s
    new_name = {old_s.name: n_idx for n_idx, old_s in renamed.items()}
    by_index = {s.index: s for s in fresh}
    fresh_relocs = {(s.type, _reloc_target(s)): s for s in fresh if _reloc_target(s) is not None}
    for s in gone:
        target = _reloc_target(s)
        if target is None or target not in new_name:
            continue
        cand = fresh_relocs.get((s.type, by_index[new_name[target]].name))
        if cand is not None and cand.index not in renamed:
            renamed[cand.index] = s
    paired_old = {id(s) for s in renamed.values()}
    removed = [s for s in gone if id(s) not in paired_old]
    pairs += [(renamed[s.index], s) for s in fresh if s.index in renamed]
    pairs.sort(key=lambda p: p[1].index)
    in_order = _lis_positions([p[0].index for p in pairs])
    changes: dict[int, SectionChange] = {}
    for i, (a, b) in enumerate(pairs):
        fields = tuple(f for f in SECTION_FIELDS if getattr(a, f) != getattr(b, f))
        if i not in in_order:
            fields += ("order",)
        if a.name != b.name:
            changes[b.index] = SectionChange("renamed", a, b, fields)
        elif fields:
            changes[b.index] = SectionChange("changed", a, b, fields)
    for s in fresh:
        if s.index not in renamed:
            changes[s.index] = SectionChange("added", None, s)
    out = [changes[i] for i in sorted(changes)]
    out += [SectionChange("removed", s, None) for s in removed]
    return tuple(out)


def _version_tables(rec: ModuleRecord) -> dict[str, dict[str, int]]:
    """Import name → {table: CRC} over every version table the module carries (first entry of a name wins,
    as check_version() stops at the first match)."""
    out: dict[str, dict[str, int]] = {}
    # A variable-length __versions also parses as fixed 64-byte records, which are garbage: one reading only.
    basic = rec.versions if rec.varlen_versions is None else None
    for table, holder in ((TABLE_BASIC, basic), (TABLE_EXT, rec.ext_versions), (TABLE_VARLEN, rec.varlen_versions)):
        if holder is None:
            continue
        for m in holder.entries:
            out.setdefault(m.name, {}).setdefault(table, m.crc)
    return out


def _tables_text(tables: tuple[tuple[str, int], ...]) -> str:
    return "+".join(t for t, _ in tables) or "-"


def diff_versions(old: ModuleRecord, new: ModuleRecord) -> tuple[VersionChange, ...]:
    """Import version entries that moved between tables, appeared, disappeared or changed CRC.

    An entry "moved" when the set of tables holding it changed (``__versions``
    to ``__versions`` + extended is a move); its CRC "changed" when the CRCs
    recorded for it differ (for a module that disagrees with itself, any CRC).
    Order: the new module's entries first (in table order), then vanished ones.
    """
    a, b = _version_tables(old), _version_tables(new)
    out: list[VersionChange] = []
    for name, nt in b.items():
        ot = a.get(name)
        new_t = tuple(nt.items())
        if ot is None:
            out.append(VersionChange(name, "appeared", (), new_t))
            continue
        moved = set(ot) != set(nt)
        crc = set(ot.values()) != set(nt.values())
        if moved or crc:
            kind = "moved+crc-changed" if moved and crc else "moved" if moved else "crc-changed"
            out.append(VersionChange(name, kind, tuple(ot.items()), new_t))
    out += [VersionChange(name, "disappeared", tuple(ot.items()), ()) for name, ot in a.items() if name not in b]
    return tuple(out)


def _modinfo_values(rec: ModuleRecord) -> dict[str, list[str]]:
    """What ``modinfo`` prints, key by key: the .modinfo strings, then the signature pseudo-keys.

    The signature pseudo-keys are kmod 34's (``sig_id``, ``signer``,
    ``sig_key``, ``sig_hashalgo``, for a signature kmod accepts), with the key
    id on one line. The ``signature`` value itself is left out: it differs
    whenever the signed bytes do, which the rest of the diff already names.
    """
    out: dict[str, list[str]] = {}
    for k, v in rec.modinfo:
        out.setdefault(k, []).append(v if v is not None else "")
    sig = rec.signature
    if sig is not None and sig.kmod_accepts:
        out["sig_id"] = [sig.id_type_name]
        if sig.signer is not None:
            out["signer"] = [sig.signer]
        out["sig_key"] = [sig.key_id.hex(":").upper()]
        if sig.hash_algo is not None:
            out["sig_hashalgo"] = [sig.hash_algo]
    return out


def diff_modinfo(old: ModuleRecord, new: ModuleRecord) -> tuple[ModinfoChange, ...]:
    """Keys whose values differ as multisets (the order of .modinfo strings means nothing to anyone)."""
    a, b = _modinfo_values(old), _modinfo_values(new)
    out = []
    for key in list(a) + [k for k in b if k not in a]:
        ov, nv = a.get(key, []), b.get(key, [])
        if Counter(ov) != Counter(nv):
            out.append(ModinfoChange(key, tuple(ov), tuple(nv)))
    return tuple(out)


def _export_fields(a: ExportInfo, b: ExportInfo) -> tuple[str, ...]:
    return tuple(f for f in ("crc", "gpl_only", "namespace", "exporter") if getattr(a, f) != getattr(b, f))


def _is_incompatible(a: ExportInfo | None, b: ExportInfo | None) -> bool:
    """Whether a module built against ``a`` can fail against ``b`` (see the module docstring)."""
    if b is None:
        return a is not None
    if a is None:
        return False
    if a.crc != b.crc and b.crc is not None:
        return True
    if b.gpl_only and not a.gpl_only:
        return True
    return b.namespace is not None and b.namespace != a.namespace


def _incompatible_kind(c: ExportChange) -> str:
    if c.kind == "removed":
        return "removed"
    a, b = c.old, c.new
    assert a is not None and b is not None
    if a.crc != b.crc and b.crc is not None:
        return "crc"
    if b.gpl_only and not a.gpl_only:
        return "gpl_only"
    return "namespace"


def _export_change(name: str, a: ExportInfo | None, b: ExportInfo | None) -> ExportChange | None:
    if a is None and b is None:
        return None
    if a is None:
        return ExportChange(name, "added", None, b)
    if b is None:
        return ExportChange(name, "removed", a, None, incompatible=True)
    fields = _export_fields(a, b)
    if not fields:
        return None
    return ExportChange(name, "changed", a, b, fields, _is_incompatible(a, b))


def _module_exports(rec: ModuleRecord, owner: str) -> dict[str, ExportInfo]:
    return {x.name: ExportInfo(x.name, x.crc, x.gpl_only, x.namespace, owner) for x in rec.exports}


def _views(rec: ModuleRecord, consumers: Sequence[str], expected: Mapping[str, int] | None,
           path: str | None = None) -> dict[str, ViewSummary]:
    return {c: ViewSummary.of(CONSUMERS[c](rec, expected=expected, path=path, judge_unknown=False))
            for c in consumers}


def _effect(a: ViewSummary, b: ViewSummary) -> str | None:
    """How a consumer's reading changed; None when it did not."""
    if a == b:
        return None
    ra, rb = _RANK.get(a.verdict, 0), _RANK.get(b.verdict, 0)
    if rb > ra:
        return "breaks" if rb == 2 else "degrades"
    if rb < ra:
        return "improves"
    if b.messages > a.messages or b.false > a.false or b.lost > a.lost:
        return "warns" if b.messages > a.messages else "degrades"
    if b.messages < a.messages or b.false < a.false or b.lost < a.lost:
        return "improves"
    return "changes"  # same class and counts, another verdict (e.g. ok ↔ ignores-versions)


def _consumer_changes(old: Mapping[str, ViewSummary], new: Mapping[str, ViewSummary]) -> tuple[ConsumerChange, ...]:
    out = []
    for c, a in old.items():
        b = new.get(c)
        if b is None:
            continue
        eff = _effect(a, b)
        if eff is not None:
            out.append(ConsumerChange(c, a, b, eff))
    return tuple(out)


def _attributes(old: ModuleRecord, new: ModuleRecord) -> tuple[Attribute, ...]:
    pairs = [
        ("elfclass", old.elf.elfclass, new.elf.elfclass), ("endian", old.elf.endian, new.elf.endian),
        ("machine", machine_name(old.elf.machine), machine_name(new.elf.machine)),
        ("e_flags", old.elf.flags, new.elf.flags),
        ("modversions_format", old.modversions_format, new.modversions_format),
        ("compression", old.compression, new.compression),
    ]
    return tuple(Attribute(f, a, b) for f, a, b in pairs if a != b)


def diff_modules(old: ModuleRecord, new: ModuleRecord, consumers: Sequence[str] = DEFAULT_CONSUMERS, *,
                 name: str | None = None, old_path: str | None = None, new_path: str | None = None,
                 views: tuple[Mapping[str, ViewSummary], Mapping[str, ViewSummary]] | None = None) -> ModuleDiff:
    """Everything that differs between two builds of one module.

    Consumers (ids of :data:`kmodcompat.consumers.CONSUMERS`) read each module
    against its own CRCs, which isolates what the build itself changed;
    :func:`diff_trees` passes ``views`` computed against each tree's exports
    instead. ``old_path``/``new_path``: paths to show (a tree's relative
    paths; a changed relative path is reported as the "path" attribute).
    """
    unknown = [c for c in consumers if c not in CONSUMERS]
    if unknown:
        raise ValueError(f"unknown consumer(s): {', '.join(unknown)}; known: {', '.join(CONSUMERS)}")
    name = name or new.name
    attrs = _attributes(old, new)
    if old_path is not None and new_path is not None and old_path != new_path:
        attrs += (Attribute("path", old_path, new_path),)
    old_imports = {i.name for i in old.imports}
    new_imports = {i.name for i in new.imports}
    a, b = _module_exports(old, name), _module_exports(new, name)
    exports = [c for k in list(a) + [k for k in b if k not in a] if (c := _export_change(k, a.get(k), b.get(k)))]
    if views is None:
        views = (_views(old, consumers, None), _views(new, consumers, None))
    return ModuleDiff(
        name=name, old_path=old_path or old.path, new_path=new_path or new.path,
        attributes=attrs, sections=diff_sections(old.sections, new.sections),
        old_format=old.modversions_format, new_format=new.modversions_format,
        versions=diff_versions(old, new), modinfo=diff_modinfo(old, new),
        imports_added=tuple(dict.fromkeys(i.name for i in new.imports if i.name not in old_imports)),
        imports_removed=tuple(dict.fromkeys(i.name for i in old.imports if i.name not in new_imports)),
        exports=tuple(exports), consumers=_consumer_changes(*views), compared_consumers=tuple(consumers))


# -- kABI ---------------------------------------------------------------------------------------


def symvers_exports(path: str) -> dict[str, ExportInfo]:
    """The kernel image's exports in a Module.symvers (``crc name vmlinux EXPORT_SYMBOL[_GPL] [namespace]``).

    depmod's own reader (:func:`~kmodcompat.depmod.kernel_symbols.load_module_symvers`)
    keeps only CRCs; the kABI diff also needs the GPL-only flag and the namespace.
    A ``.gz`` file (``/boot/symvers-*.gz``) is read through gzip.
    """
    opener = gzip.open if path.endswith(".gz") else open
    out: dict[str, ExportInfo] = {}
    with opener(path, "rb") as f:
        for raw_line in f:
            parts = raw_line.rstrip(b"\r\n").split(b"\t")
            if len(parts) < 4 or parts[2] != b"vmlinux":
                continue
            try:
                crc = int(parts[0], 16)
            except ValueError:
                continue  # depmod reports such a line and skips it too
            name = parts[1].decode("utf-8", "surrogateescape")
            ns = parts[4].decode("utf-8", "surrogateescape") if len(parts) > 4 and parts[4] else None
            out[name] = ExportInfo(name, crc, parts[3].endswith(b"_GPL"), ns, "vmlinux")
    return out


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
    raw_changes = [c for k in sorted(a.keys() | b.keys()) if (c := _export_change(k, a.get(k), b.get(k)))]
    touched = {c.name for c in raw_changes if c.kind != "added"}
    new_uses = _uses(new_tree, touched)
    old_uses = _uses(old_tree, touched)
    changes: list[ExportChange] = []
    for c in raw_changes:
        if c.kind == "added":
            changes.append(c)
            continue
        nu, ou = new_uses.get(c.name, []), old_uses.get(c.name, [])
        importers = tuple(u.module for u in (ou if c.kind == "removed" else nu))
        changes.append(replace(
            c, importers=importers,
            old_builds_failing=tuple(u.module for u in ou if c.incompatible and _fails(u, c.new)),
            failing_now=tuple(u.module for u in nu if _fails(u, c.new))))
    effects, per_module = _kabi_effects(old_tree, changes, consumers)
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
        before = _views(rec, consumers, own, m.output_path)
        after = _views(rec, consumers, against, m.output_path)
        checked += 1
        per_module[m.name] = {}
        for c in consumers:
            eff = _effect(before[c], after[c]) or "same"
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
            importers=tuple(sorted(users)), kinds=tuple(sorted(Counter(_incompatible_kind(c) for c in cs).items())),
            old_builds_breaking=tuple(sorted(breaking.items()))))
    out.sort(key=lambda g: (-len(g.importers) * len(g.exports), -len(g.exports), g.exports[0]))
    return tuple(out)


# -- dependencies ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DepFacts:
    """What the dependency diff compares of one tree: plain data, so any two trees (or test cases) compare."""

    deps: Mapping[str, tuple[str, ...]]  # module → its modules.dep line, as module names
    components: tuple[tuple[str, ...], ...]  # cycles: strongly connected components (and self-loops)
    unresolved: tuple[tuple[str, str, bool], ...]  # (module, symbol, weak)

    @classmethod
    def of(cls, g: TreeGraph) -> "DepFacts":
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
                jobs: int | None) -> dict[str, dict[str, ViewSummary]]:
    mods = [(m.path, m.record) for m in tree.modules if m.record is not None]
    if not mods or not consumers:
        return {}
    res = compute_views(mods, consumers, (AS_IS,), expected, keep_formats=(AS_IS,), jobs=jobs, summarize=_summarize)
    by_path = {mv.path: mv.by_format[AS_IS] for mv in res.modules}
    return {m.name: by_path[m.path] for m in tree.modules if m.path in by_path}


def _kernel_side(tree: ModuleTree, symvers: str | None, system_map: str | None
                 ) -> tuple[KernelSymbols | None, dict[str, ExportInfo] | None, str | None, str | None, list[str]]:
    """The kernel's exports for one tree: depmod's symbols, the kABI map, and where they came from
    (found where the report looks: distributions' headers, build/, boot/)."""
    found = find_kernel_files(tree)
    symvers = symvers or found.get("symvers")
    system_map = system_map or found.get("system_map")
    kernel, notes = load_kernel(symvers, system_map)
    if kernel is not None and not kernel.symbols:
        # Debian ships a one-line placeholder System.map: as good as none.
        notes.append(f"{kernel.path}: no kernel symbols in it")
        kernel = None
    exports = None
    if symvers is not None and kernel is not None and kernel.check_symvers:
        exports = symvers_exports(symvers)
    used_symvers = symvers if exports is not None else None
    used_map = kernel.path if kernel is not None and not kernel.check_symvers else None
    return kernel, exports, used_symvers, used_map, notes


def _expected(exports: Mapping[str, ExportInfo] | None) -> dict[str, int] | None:
    """Exporter CRCs for the consumer models: only with the kernel's CRCs, else each module's own stand in."""
    if exports is None:
        return None
    return {k: v.crc for k, v in exports.items() if v.crc is not None}


def diff_trees(old: ModuleTree, new: ModuleTree, consumers: Sequence[str] = DEFAULT_CONSUMERS, *,
               old_symvers: str | None = None, new_symvers: str | None = None,
               old_system_map: str | None = None, new_system_map: str | None = None,
               old_label: str | None = None, new_label: str | None = None,
               jobs: int | None = None) -> TreeDiff:
    """The whole-tree diff: modules (by name), kABI, dependencies, and the patterns that group them.

    Kernel exports come from ``*_symvers`` / ``*_system_map`` or where the
    report finds them (the tree's headers, build/ or boot/). ``jobs``: worker
    processes for the consumer models (None: all cores).
    """
    unknown = [c for c in consumers if c not in CONSUMERS]
    if unknown:
        raise ValueError(f"unknown consumer(s): {', '.join(unknown)}; known: {', '.join(CONSUMERS)}")
    ok, ok_exports, o_sv, o_map, o_notes = _kernel_side(old, old_symvers, old_system_map)
    nk, nk_exports, n_sv, n_map, n_notes = _kernel_side(new, new_symvers, new_system_map)
    notes = [f"old: {x}" for x in o_notes] + [f"new: {x}" for x in n_notes]
    old_full = export_map(old, ok_exports)
    new_full = export_map(new, nk_exports)
    old_views = _tree_views(old, consumers, _expected(old_full if ok_exports is not None else None), jobs)
    new_views = _tree_views(new, consumers, _expected(new_full if nk_exports is not None else None), jobs)

    a, b = old.by_name(), new.by_name()
    added = tuple((m.name, m.output_path) for m in new.modules if m.name not in a)
    removed = tuple((m.name, m.output_path) for m in old.modules if m.name not in b)
    diffs: list[ModuleDiff] = []
    unchanged = 0
    became_unreadable: list[tuple[str, str]] = []
    became_readable: list[tuple[str, str]] = []
    for m in new.modules:
        om = a.get(m.name)
        if om is None:
            continue
        ro, rn = om.record, m.record
        if ro is None or rn is None:
            if ro is not None and m.error is not None:
                became_unreadable.append((m.name, m.error.reason))
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
    side = lambda t, label, sv, mp: TreeSide(label or t.dirname, t.dirname, t.kver, len(t.modules),  # noqa: E731
                                             len(t.failures), sv, mp)
    return TreeDiff(side(old, old_label, o_sv, o_map), side(new, new_label, n_sv, n_map), tuple(consumers),
                    added, removed, tuple(diffs), unchanged, tuple(became_unreadable), tuple(became_readable), kabi,
                    deps, patterns(diffs), tuple(notes))


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


# -- JSON ---------------------------------------------------------------------------------------------


def _export_info_json(x: ExportInfo | None) -> dict | None:
    if x is None:
        return None
    return {"crc": x.crc, "gpl_only": x.gpl_only, "namespace": x.namespace, "exporter": x.exporter}


def _export_change_json(c: ExportChange) -> dict:
    return {"name": c.name, "kind": c.kind, "fields": list(c.fields), "incompatible": c.incompatible,
            "old": _export_info_json(c.old), "new": _export_info_json(c.new), "importers": list(c.importers),
            "old_builds_failing": list(c.old_builds_failing), "failing_now": list(c.failing_now)}


def _summary_json(v: ViewSummary) -> dict:
    return {"verdict": v.verdict, "lost": v.lost, "false_messages": v.false, "messages": v.messages}


def _section_change_json(s: SectionChange) -> dict:
    """Added and removed sections in full; renamed and changed ones with only their index, name and the
    fields that differ (a tree diff holds a hundred thousand of them)."""
    out: dict = {"kind": s.kind, "name": s.name, "fields": list(s.fields)}
    for side in ("old", "new"):
        info: SectionInfo | None = getattr(s, side)
        if info is None:
            out[side] = None
        elif s.kind in ("added", "removed"):
            out[side] = info.as_dict()
        else:
            full = info.as_dict()
            keep = {"index", "name"} | set(s.fields) | ({"flags_text"} if "flags" in s.fields else set())
            out[side] = {k: v for k, v in full.items() if k in keep}
    return out


def module_json(d: ModuleDiff) -> dict:
    """One :class:`ModuleDiff` as the schema's ``module_diff``."""
    return {
        "name": d.name, "old_path": d.old_path, "new_path": d.new_path, "incompatible": d.incompatible,
        "attributes": [{"field": a.field, "old": a.old, "new": a.new} for a in d.attributes],
        "sections": [_section_change_json(s) for s in d.sections],
        "versions": {"old_format": d.old_format, "new_format": d.new_format,
                     "entries": [{"name": v.name, "kind": v.kind, "old": dict(v.old), "new": dict(v.new)}
                                 for v in d.versions]},
        "modinfo": [{"key": m.key, "old": list(m.old), "new": list(m.new)} for m in d.modinfo],
        "imports": {"added": list(d.imports_added), "removed": list(d.imports_removed)},
        "exports": [_export_change_json(c) for c in d.exports],
        "consumers": [{"consumer": c.consumer, "effect": c.effect, "old": _summary_json(c.old),
                       "new": _summary_json(c.new)} for c in d.consumers],
    }


def _totals(mods: Sequence[ModuleDiff], kabi: KabiDiff | None, deps: DependencyDiff | None, added: int,
            removed: int, unchanged: int, unreadable: int) -> dict:
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
        "consumer_breaks": sum(1 for m in mods for c in m.consumers if c.effect == "breaks"),
        "dep_lines_changed": len(deps.dep_changed) if deps else 0,
        "new_cycles": len(deps.new_cycles) if deps else 0,
        "newly_unresolved": sum(1 for u in deps.newly_unresolved if not u[2]) if deps else 0,
    }


def _headlines(diff: ModuleDiff | TreeDiff, totals: dict) -> list[str]:
    out = []
    status = exit_status(diff)
    if status == EXIT_SAME:
        return ["No difference."]
    verdict = "Incompatible" if status & EXIT_INCOMPATIBLE else "Compatible changes only"
    out.append(f"{verdict} (exit status {status})" + (": " + "; ".join(diff.breaking[:6]) if diff.breaking else "."))
    t = totals
    if isinstance(diff, TreeDiff):
        out.append(f"Modules: {t['modules_added']} added, {t['modules_removed']} removed, {t['modules_changed']} "
                   f"changed, {t['modules_affected']} unchanged but read differently against the new exports, "
                   f"{t['modules_unchanged']} unchanged.")
    if t["exports_added"] or t["exports_removed"] or t["exports_changed"]:
        out.append(f"Exports: {t['exports_added']} added, {t['exports_removed']} removed, {t['exports_changed']} "
                   f"changed ({t['exports_crc_changed']} CRC); {t['exports_incompatible']} incompatible.")
    if isinstance(diff, TreeDiff) and diff.kabi is not None:
        for e in diff.kabi.effects:
            n = dict(e.effects).get("breaks", 0)
            if n:
                out.append(f"Old builds of {n} of {e.modules} importing module(s) break on the new exports for "
                           f"{e.consumer} (verdicts: {', '.join(f'{k} {v}' for k, v in e.verdicts)}).")
    if t["dep_lines_changed"] or t["new_cycles"] or t["newly_unresolved"]:
        out.append(f"Dependencies: {t['dep_lines_changed']} modules.dep line(s) changed, {t['new_cycles']} new "
                   f"cycle(s), {t['newly_unresolved']} newly unresolved import(s).")
    return out


def to_json(diff: ModuleDiff | TreeDiff, old_label: str | None = None, new_label: str | None = None) -> dict:
    """The diff as the dict ``report/diff-schema.json`` describes (``schema_version`` 1)."""
    if isinstance(diff, ModuleDiff):
        mods = [diff] if diff.changed else []
        totals = _totals(mods, None, None, 0, 0, 0 if diff.changed else 1, 0)
        side = lambda label, path: {"label": label or path, "path": path, "kernel_release": None,  # noqa: E731
                                    "modules": 1, "unreadable": 0, "symvers": None, "system_map": None}
        doc = {"kind": "modules", "old": side(old_label, diff.old_path), "new": side(new_label, diff.new_path),
               "consumers": list(diff.compared_consumers),
               "modules": {"added": [], "removed": [], "became_unreadable": [], "became_readable": [],
                           "changed": [module_json(m) for m in mods]},
               "patterns": [], "kabi": None, "dependencies": None, "notes": []}
    else:
        totals = _totals(diff.modules, diff.kabi, diff.dependencies, len(diff.added), len(diff.removed),
                         diff.unchanged, len(diff.became_unreadable))
        doc = {"kind": "trees", "old": _side_json(diff.old), "new": _side_json(diff.new),
               "consumers": list(diff.consumers),
               "modules": {"added": [{"name": n, "path": p} for n, p in diff.added],
                           "removed": [{"name": n, "path": p} for n, p in diff.removed],
                           "became_unreadable": [{"name": n, "reason": r} for n, r in diff.became_unreadable],
                           "became_readable": [{"name": n, "reason": r} for n, r in diff.became_readable],
                           "changed": [module_json(m) for m in diff.modules]},
               "patterns": [_pattern_json(p) for p in diff.patterns],
               "kabi": _kabi_json(diff.kabi) if diff.kabi is not None else None,
               "dependencies": _deps_json(diff.dependencies) if diff.dependencies is not None else None,
               "notes": list(diff.notes)}
    status = exit_status(diff)
    head = {"schema_version": SCHEMA_VERSION, "generator": {"name": "kmodcompat", "version": __version__},
            "status": {"exit_code": status, "changed": bool(status & EXIT_CHANGE),
                       "incompatible": bool(status & EXIT_INCOMPATIBLE), "reasons": list(diff.breaking)},
            "totals": totals, "headlines": _headlines(diff, totals)}
    return {**head, **doc}


def _side_json(s: TreeSide) -> dict:
    return {"label": s.label, "path": s.path, "kernel_release": s.kernel_release, "modules": s.modules,
            "unreadable": s.unreadable, "symvers": s.symvers, "system_map": s.system_map}


def _pattern_json(p: Pattern) -> dict:
    return {"area": p.area, "change": p.change, "subject": p.subject, "modules": p.modules, "count": p.count,
            "details": [{"text": t, "count": n} for t, n in p.details], "distinct": p.distinct,
            "sample": list(p.sample)}


def _kabi_json(k: KabiDiff) -> dict:
    return {
        "old_exports": k.old_exports, "new_exports": k.new_exports, "kernel_compared": k.kernel_compared,
        "changes": [_export_change_json(c) for c in k.changes],
        "by_exporter": [{"exporter": e.exporter, "added": e.added, "removed": e.removed, "crc": e.crc,
                         "gpl_only": e.gpl_only, "namespace": e.namespace, "moved": e.moved,
                         "incompatible": e.incompatible, "importers": e.importers} for e in k.by_exporter],
        "groups": [{"exports": list(g.exports), "exporters": list(g.exporters), "importers": list(g.importers),
                    "kinds": dict(g.kinds), "old_builds_breaking": dict(g.old_builds_breaking)} for g in k.groups],
        "effects": [{"consumer": e.consumer, "modules": e.modules, "effects": dict(e.effects),
                     "verdicts": dict(e.verdicts)} for e in k.effects],
    }


def _deps_json(d: DependencyDiff) -> dict:
    return {"unresolved_checked": d.unresolved_checked,
            "dep_changed": [{"module": c.module, "old": list(c.old), "new": list(c.new), "added": list(c.added),
                             "removed": list(c.removed)} for c in d.dep_changed],
            "new_cycles": [list(c) for c in d.new_cycles], "resolved_cycles": [list(c) for c in d.resolved_cycles],
            "newly_unresolved": [{"module": m, "symbol": s, "weak": w} for m, s, w in d.newly_unresolved]}
