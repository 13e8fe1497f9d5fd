"""One module's two builds: sections, version tables, ``.modinfo``, imports, exports, consumer verdicts.

:func:`diff_modules` is the public entry; :func:`export_change`,
:func:`consumer_views` and :func:`view_effect` are shared with the kABI and
tree diffs. Sections are matched by name and their order compared with a
longest increasing subsequence, so nothing here is quadratic.
"""

from __future__ import annotations

import bisect
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

from ..consumers import CONSUMERS, DEFAULT_CONSUMERS
from ..consumers.base import COMPATIBLE, FALSE_MISMATCH, IGNORES, INCOMPATIBLE, LOADS, LOADS_TAINTED, \
    LOADS_UNCHECKED, OK, PARTIAL, REFUSES, UNREADABLE, Reading
from ..elf.image import machine_name
from ..elf.layout import SHT_REL, SHT_RELA
from ..records import ModuleRecord, Section
from .policy import KabiPolicy, judge_kabi, module_paths, symvers_module_name
from .results import TABLE_BASIC, TABLE_EXT, TABLE_VARLEN, Attribute, ConsumerChange, ExportChange, ExportInfo, \
    ModinfoChange, ModuleDiff, SectionChange, SectionInfo, VersionChange, ViewSummary

#: Consumers compared by default: the ones the report's headlines name (they check CRCs).

#: Section header fields compared (offset, link and info follow from the rest of the file).
SECTION_FIELDS = ("type", "flags", "size", "addralign", "entsize")

#: Verdict classes: 0 works and checks, 1 works with less checking, 2 fails or cries wolf.
_RANK = {OK: 0, IGNORES: 0, LOADS: 0, COMPATIBLE: 0, PARTIAL: 1, LOADS_UNCHECKED: 1, LOADS_TAINTED: 1,
         FALSE_MISMATCH: 2, UNREADABLE: 2, REFUSES: 2, INCOMPATIBLE: 2}


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
    # A hashed record (the 2024 RFC, docs/formats.md §2.5) versions the long import its digest names, not "sha256".
    hashed = {} if rec.hashed_versions is None else {
        i: e.name for i, e in zip(rec.hashed_versions.indices, rec.hashed_versions.entries) if e.name}
    for table, holder in ((TABLE_BASIC, basic), (TABLE_EXT, rec.ext_versions), (TABLE_VARLEN, rec.varlen_versions)):
        if holder is None:
            continue
        for i, m in enumerate(holder.entries):
            name = hashed.get(i, m.name) if table == TABLE_BASIC else m.name
            out.setdefault(name, {}).setdefault(table, m.crc)
    return out


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


def export_change(name: str, a: ExportInfo | None, b: ExportInfo | None) -> ExportChange | None:
    """The change from ``a`` to ``b`` of one export (None: the same, or absent from both)."""
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


def consumer_views(rec: ModuleRecord, consumers: Sequence[str], expected: Mapping[str, int] | None,
                   path: str | None = None) -> dict[str, ViewSummary]:
    """Each consumer's reading of ``rec`` (against ``expected`` exporter CRCs; None: its own). One Reading for
    all: the models share what they derive from it (consumers/base.py)."""
    reading = Reading(rec, expected, None, path, False)
    return {c: ViewSummary.of(CONSUMERS[c].read(reading)) for c in consumers}


def view_effect(a: ViewSummary, b: ViewSummary) -> str | None:
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
    out: list[ConsumerChange] = []
    for c, a in old.items():
        b = new.get(c)
        if b is None:
            continue
        eff = view_effect(a, b)
        if eff is not None:
            out.append(ConsumerChange(c, a, b, eff))
    return tuple(out)


def _attributes(old: ModuleRecord, new: ModuleRecord) -> tuple[Attribute, ...]:
    pairs: list[tuple[str, str | int | None, str | int | None]] = [
        ("elfclass", old.elf.elfclass, new.elf.elfclass), ("endian", old.elf.endian, new.elf.endian),
        ("machine", machine_name(old.elf.machine), machine_name(new.elf.machine)),
        ("e_flags", old.elf.flags, new.elf.flags),
        ("modversions_format", old.modversions_format, new.modversions_format),
        ("compression", old.compression, new.compression),
    ]
    return tuple(Attribute(f, a, b) for f, a, b in pairs if a != b)


def diff_modules(old: ModuleRecord, new: ModuleRecord, consumers: Sequence[str] = DEFAULT_CONSUMERS, *,
                 name: str | None = None, old_path: str | None = None, new_path: str | None = None,
                 views: tuple[Mapping[str, ViewSummary], Mapping[str, ViewSummary]] | None = None,
                 policy: KabiPolicy | None = None) -> ModuleDiff:
    """Everything that differs between two builds of one module.

    Consumers (ids of :data:`kmodcompat.consumers.CONSUMERS`) read each module
    against its own CRCs, which isolates what the build itself changed;
    :func:`diff_trees` passes ``views`` computed against each tree's exports
    instead. ``old_path``/``new_path``: paths to show (a tree's relative
    paths; a changed relative path is reported as the "path" attribute). ``policy``: the kABI policy
    judging the export changes of two module files (:mod:`.policy`; a tree diff judges its kABI diff).
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
    exports = [c for k in list(a) + [k for k in b if k not in a] if (c := export_change(k, a.get(k), b.get(k)))]
    if views is None:
        views = (consumer_views(old, consumers, None), consumer_views(new, consumers, None))
    judged = None
    if policy is not None:  # a module file alone is named by its file name (policy.symvers_module_name)
        judged = judge_kabi(policy, exports, a, b,
                            module_paths({name: symvers_module_name(os.path.abspath(old.path))}),
                            module_paths({name: symvers_module_name(os.path.abspath(new.path))}))
    return ModuleDiff(
        name=name, old_path=old_path or old.path, new_path=new_path or new.path,
        attributes=attrs, sections=diff_sections(old.sections, new.sections),
        old_format=old.modversions_format, new_format=new.modversions_format,
        versions=diff_versions(old, new), modinfo=diff_modinfo(old, new),
        imports_added=tuple(dict.fromkeys(i.name for i in new.imports if i.name not in old_imports)),
        imports_removed=tuple(dict.fromkeys(i.name for i in old.imports if i.name not in new_imports)),
        exports=tuple(exports), consumers=_consumer_changes(*views), compared_consumers=tuple(consumers),
        policy=judged)
