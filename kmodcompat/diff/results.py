"""What a diff finds: immutable records of every change, and abidiff's exit status.

Made by :mod:`.module` (one module's two builds), :mod:`.kabi` (exports and
their importers) and :mod:`.trees` (whole trees); serialised by
:mod:`kmodcompat.report.diff_json`, which is the only reader of their
layout besides the tests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from ..consumers.base import ConsumerView
from ..modversions import VersionTable
from ..records import Section

if TYPE_CHECKING:
    from .policy import PolicyResult

# Exit status bits, as abidiff (libabigail) defines them.
EXIT_SAME = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CHANGE = 4
EXIT_INCOMPATIBLE = 8

#: Version tables, by the name used in results (VersionTable.diff_id): classic ``__versions``, the 6.14+
#: ``__version_ext_crcs``/``__version_ext_names`` pair, the rejected variable-length ``__versions``.
TABLE_BASIC, TABLE_EXT, TABLE_VARLEN = (VersionTable.BASIC.diff_id, VersionTable.EXTENDED.diff_id,
                                        VersionTable.VARLEN.diff_id)


class SectionInfo(NamedTuple):
    """The compared fields of one section header."""

    index: int  # type: ignore[assignment]  # the header index; shadows tuple.index(), never called on it
    name: str
    type: int
    flags: int
    size: int
    addralign: int
    entsize: int

    @classmethod
    def of(cls, s: Section) -> SectionInfo:
        return cls(s.index, s.name, s.type, s.flags, s.size, s.addralign, s.entsize)


@dataclass(frozen=True, slots=True)
class SectionChange:
    """One section added, removed, renamed-looking or changed.

    ``fields``: for "renamed" and "changed", which of :data:`~.module.SECTION_FIELDS`
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
    def of(cls, v: ConsumerView) -> ViewSummary:
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
    policy: PolicyResult | None = None  # the kABI policy's verdicts on its export changes (two files compared)

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
        return self.breaking_under(lambda x: x.incompatible)

    def breaking_under(self, counts: Callable[[ExportChange], bool]) -> tuple[str, ...]:
        """:attr:`breaking` with the export changes ``counts`` keeps (a kABI policy's)."""
        out = [f"{self.name}: {c.consumer} {c.old.verdict} → {c.new.verdict}"
               for c in self.consumers if c.effect == "breaks"]
        out += [f"{self.name}: export {x.name} {x.kind}{' (' + ', '.join(x.fields) + ')' if x.fields else ''}"
                for x in self.exports if counts(x)]
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
    kernel_image: str | None = None
    kernel_exports: str | None = None  # files/kernel.py KernelSource.line(): the source and what it lacks


@dataclass(frozen=True, slots=True)
class TreeDiff:
    old: TreeSide
    new: TreeSide
    consumers: tuple[str, ...]
    added: tuple[tuple[str, str], ...]  # (module, path)
    removed: tuple[tuple[str, str], ...]
    modules: tuple[ModuleDiff, ...]  # modules in both trees that differ
    unchanged: int
    became_unreadable: tuple[tuple[str, str, str], ...] = ()  # (module, reason, its path in the new tree)
    became_readable: tuple[tuple[str, str], ...] = ()  # (module, the old reason)
    kabi: KabiDiff | None = None
    dependencies: DependencyDiff | None = None
    patterns: tuple[Pattern, ...] = ()
    notes: tuple[str, ...] = field(default=())
    policy: PolicyResult | None = None  # the kABI policy's verdicts (diff --symbol-list / --rules)

    @property
    def breaking(self) -> tuple[str, ...]:
        """Why the new tree is incompatible with the old one, one line per cause."""
        out: list[str] = []
        if self.kabi is not None and self.kabi.incompatible:
            out.append(exports_reason(self.kabi.incompatible))
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


@dataclass(frozen=True, slots=True)
class ExportsDiff:
    """The kABI diff alone, where one side (or both) is a Module.symvers: a baseline kept in git, the
    headers package's file. A tree side gives its importers; a Module.symvers side lists no module."""

    old: TreeSide
    new: TreeSide
    consumers: tuple[str, ...]
    kabi: KabiDiff
    notes: tuple[str, ...] = ()
    policy: PolicyResult | None = None

    @property
    def breaking(self) -> tuple[str, ...]:
        return (exports_reason(self.kabi.incompatible),) if self.kabi.incompatible else ()

    @property
    def incompatible(self) -> bool:
        return bool(self.breaking)

    @property
    def changed(self) -> bool:
        return bool(self.kabi.changes)


def exit_status(diff: ModuleDiff | TreeDiff | ExportsDiff) -> int:
    """abidiff's bitmask: 0, 4 (changed) or 12 (changed, incompatible)."""
    if diff.incompatible:
        return EXIT_CHANGE | EXIT_INCOMPATIBLE
    return EXIT_CHANGE if diff.changed else EXIT_SAME



def _tables_text(tables: tuple[tuple[str, int], ...]) -> str:
    return "+".join(t for t, _ in tables) or "-"


def exports_reason(changes: Iterable[ExportChange]) -> str:
    """The exit status's reason for incompatible export changes: "exports: 3 crc, 1 removed"."""
    kinds = Counter(incompatible_kind(c) for c in changes)
    return "exports: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))


def incompatible_kind(c: ExportChange) -> str:
    """Why an incompatible export change breaks old builds: "removed", "crc", "gpl_only" or "namespace"."""
    if c.kind == "removed":
        return "removed"
    a, b = c.old, c.new
    assert a is not None and b is not None
    if a.crc != b.crc and b.crc is not None:
        return "crc"
    if b.gpl_only and not a.gpl_only:
        return "gpl_only"
    return "namespace"
