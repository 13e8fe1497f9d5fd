"""kmod as a consumer: what a kmod release shows of a module, ``--dump-modversions`` and ``depmod -e -E``.

Built on the libkmod layer (:mod:`kmodcompat.kmod`): the release's profile
decides how libkmod-elf.c reads the tables; this file judges what the user
of that kmod sees (import versions lost, false "disagrees" warnings).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from operator import attrgetter
from typing import TYPE_CHECKING

from ..kmod.elf import KmodError, dependency_versions, get_modversions, match_versions
from ..kmod.profile import Kmod
from ..elf.layout import STB_WEAK
from ..modversions.hashed import SHOWN_NAME as HASHED_NAME
from ..records import Import, ModuleRecord, Modversion
from .base import FALSE_MISMATCH, OK, PARTIAL, UNREADABLE, ConsumerView, Counts, Reading

if TYPE_CHECKING:
    from ..tally import FormatTables, ModuleTally

#: Symbols depmod adds itself when it loads -E/-F (depmod_add_fake_syms), so never "unknown".
DEPMOD_FAKE_SYMBOLS = frozenset({"__this_module", "_GLOBAL_OFFSET_TABLE_", "TOC."})

_name = attrgetter("name")


def read(kmod: Kmod, r: Reading) -> ConsumerView:
    """What this kmod shows of the module: ``--dump-modversions`` and ``depmod -e -E``.

    ``r.truth`` decides whether a "disagrees" warning is false; symbols missing
    from ``r.exp`` are reported unknown when ``r.judge_unknown`` (which only a
    complete tree can tell). Once per model and Reading: the weak-modules gates
    ask for kmod 34's.
    """
    return r.of("kmod", kmod, lambda _: _read(kmod, r))


def _read(kmod: Kmod, r: Reading) -> ConsumerView:
    rec, path = r.rec, r.path
    messages: list[str] = []
    try:
        visible = get_modversions(kmod, rec)
    except KmodError as e:
        visible = ()
        messages.append(f"modprobe: FATAL: could not get modversions of {path}: {e}")
    # What is lost and what depmod says depend on the module and the table alone: a
    # table equal to one read before (another kmod, another format) is not read again.
    lost = r.per_table("unseen", visible, lambda r: _unseen(r.order, visible))
    try:
        entries = dependency_versions(kmod, rec)
    except KmodError:
        false: tuple[str, ...] = ()  # PR #270: depmod drops the module's dependencies without a word
    else:
        warnings, false = r.per_table("depmod", entries, lambda r: _depmod_warnings(
            r, *match_versions(entries, map(_name, r.rec.imports))))
        messages += warnings
    verdict = verdict_of(false, visible, r.own, lost)
    misread: tuple[Modversion, ...] = ()
    if rec.varlen_versions is not None:
        misread = rec.varlen_versions.entries  # kmod rejects the table: every entry is lost to it
    elif rec.hashed_versions is not None:
        misread = hashed_shown(rec, visible)
    return ConsumerView(kmod.id, path, verdict, visible, lost, misread, (), tuple(messages), false)


def hashed_shown(rec: ModuleRecord, visible: tuple[Modversion, ...]) -> tuple[Modversion, ...]:
    """The hashed ``__versions`` records (the 2024 RFC) among what kmod read, as it reads them: a symbol
    named "sha256" (the name field's C string), what ``--dump-modversions`` prints for each.

    Only when ``visible`` is ``__versions`` itself (PR #270 reads the extended tables instead)."""
    v, hashed = rec.versions, rec.hashed_versions
    if v is None or hashed is None or len(visible) != len(v.entries):
        return ()
    shown = tuple(visible[i] for i in hashed.indices)
    return shown if all(e.name == HASHED_NAME for e in shown) else ()


def _unseen(order: tuple[str, ...], visible: tuple[Modversion, ...]) -> tuple[str, ...]:
    seen = set(map(_name, visible))
    return tuple(n for n in order if n not in seen)


# -- the rules, on tables: the model below and count() both run them --------------------------------------

#: What a ``depmod -e -E`` warning says of a symbol (:func:`depmod_checks`).
UNKNOWN, DISAGREES = "needs unknown symbol", "disagrees about version of symbol"

#: (the non-weak imports as (.symtab name, name looked up, exporter's CRC or None), the known CRCs by
#: .symtab name, the names depmod calls unknown, in order).
DepmodImports = tuple[tuple[tuple[str, str, int | None], ...], dict[str, int], tuple[str, ...]]


def depmod_imports(imports: Sequence[Import], exp: Mapping[str, int], judge_unknown: bool) -> DepmodImports:
    """The imports depmod looks up (depmod_load_module_dependencies(): weak ones are skipped), with the
    exporters' CRCs; ``judge_unknown``: whether a symbol no exporter has is "unknown" (a complete tree)."""
    raw_names = [imp.name for imp in imports if imp.binding != STB_WEAK]
    names = list(map(str.removeprefix, raw_names, repeat(".")))  # depmod_symbol_find() strips one leading dot
    wants = list(map(exp.get, names))
    unknown = tuple(n for n, want in zip(names, wants) if want is None and n not in DEPMOD_FAKE_SYMBOLS) \
        if judge_unknown else ()
    known = {raw_name: want for raw_name, want in zip(raw_names, wants) if want is not None}
    return tuple(zip(raw_names, names, wants)), known, unknown


def depmod_checks(imports: DepmodImports, crcs: Mapping[str, int], rest: Iterable[tuple[int, str]],
                  exp: Mapping[str, int], truth: Mapping[str, int], judge_unknown: bool,
                  hashed: bool) -> list[tuple[str, str, bool]]:
    """``depmod -e -E`` on the dependency symbols: each warning as (:data:`UNKNOWN` or :data:`DISAGREES`,
    symbol, whether it is false), in depmod's order.

    ``crcs``: the CRC kmod_elf_get_dependency_symbols() gives each import (by .symtab name; 0 when none),
    ``rest``: (CRC, name) of the entries no import took (module_layout; the hashed format's records).
    A warning is false when the module was built against the exporter's CRC (``truth``). A hashed record
    (the 2024 RFC) left over is a "symbol" named sha256 the module never imports: whatever depmod says
    of it is false (``hashed``)."""
    symbols, wants, unknown = imports
    if wants.items() <= crcs.items():
        # Every import's CRC is its exporter's: the imports draw only the unknown-symbol warnings.
        events = [(UNKNOWN, name, False) for name in unknown]
        checks = []
    else:
        events = []
        checks = [(crcs.get(raw_name, 0), name, want) for raw_name, name, want in symbols]
    first_rest = len(checks)
    for crc, name in rest:
        name = name.removeprefix(".")
        checks.append((crc, name, exp.get(name)))
    for i, (crc, name, want) in enumerate(checks):
        bogus = hashed and i >= first_rest and name == HASHED_NAME
        if want is None:
            if judge_unknown and name not in DEPMOD_FAKE_SYMBOLS:
                events.append((UNKNOWN, name, bogus))
            continue
        if crc != want:
            events.append((DISAGREES, name, truth.get(name) == want or bogus))
    return events


def verdict_of(false: object, visible: object, own: object, lost: object) -> str:
    """The user's verdict: a false warning first, then nothing readable where the module has versions,
    then versions lost."""
    return FALSE_MISMATCH if false else UNREADABLE if not visible and own else PARTIAL if lost else OK


def _depmod_warnings(r: Reading, crcs: dict[str, int],
                     rest: list[Modversion]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``depmod -e -E`` on the dependency symbols (:func:`~kmodcompat.kmod.elf.get_dependency_symbols`):
    all warnings, the false ones."""
    path = r.path
    imports = r.shared("depmod-imports", lambda r: depmod_imports(r.rec.imports, r.exp, r.judge_unknown))
    events = depmod_checks(imports, crcs, ((e.crc, e.name) for e in rest), r.exp, r.truth, r.judge_unknown,
                           r.rec.hashed_versions is not None)
    messages = tuple(f"depmod: WARNING: {path} {kind} {name}" for kind, name, _ in events)
    return messages, tuple(line for line, (_, _, false) in zip(messages, events) if false)


# -- counted on a simulated format's clean tables (tally.py) -------------------------------------------------

def count(kmod: Kmod, t: FormatTables) -> Counts:
    """:func:`read`'s view counted, on the clean tables of a simulated format."""
    return _counted(kmod, t)[0]


def depmod_counts(kmod: Kmod, t: FormatTables) -> tuple[int, int] | None:
    """(warnings, false ones) of this kmod's ``depmod -e -E`` on the clean tables; None when depmod drops
    the module's dependencies without a word (PR #270, a table it cannot read)."""
    return _counted(kmod, t)[1]


def _counted(kmod: Kmod, t: FormatTables) -> tuple[Counts, tuple[int, int] | None]:
    """The view counted, and depmod's part of it. On clean tables (every name terminated) releases differ
    only where PR #270 reads the extended tables (or fails on the variable-length layout) and in the
    errno they print: any two that read the tables alike count them once."""
    extended = kmod.reads_extended and (t.ext_table is not None or isinstance(t.versions, str))
    key = ("kmod", extended)
    try:
        return t.memo[key]
    except KeyError:
        counted = t.memo[key] = _count(extended, t)
        return counted


def _count(extended: bool, t: FormatTables) -> tuple[Counts, tuple[int, int] | None]:
    """get_modversions() and dependency_versions() as they read each format; ``extended``: as PR #270
    reads it (the extended tables first, and EINVAL, not ENODATA, on a table of the wrong size)."""
    m = t.m
    misread = t.varlen_entries or len(t.shown)  # kmod rejects the variable-length entries
    if extended and t.ext_table is not None:  # PR #270 prefers the extended tables, for depmod too
        table, visible, fatal = t.ext_table, len(t.ext_table), 0
        depmod = m.once(_depmod_counted, table, False)
    elif isinstance(t.versions, dict):
        table, visible, fatal = t.versions, len(t.versions) + len(t.shown), 0
        depmod = m.once(_depmod_counted, table, t.hashed_fmt)
    elif extended:  # PR #270 on the variable-length layout: EINVAL drops the dependencies silently
        return Counts(0, len(m.truth), misread, 0, 1, 0, verdict_of(False, 0, t.own, m.truth)), None
    else:
        # No __versions (ENOENT/ENODATA) or one of the wrong size (EINVAL): modprobe's FATAL line, and
        # depmod matches the imports against nothing.
        table, visible, fatal = m.empty, 0, 1
        depmod = m.once(_depmod_counted, table, False)
    messages, false = depmod
    lost = m.unseen(table)
    return Counts(visible, lost, misread, 0, fatal + messages, false, verdict_of(false, visible, t.own, lost)), depmod


def _depmod_counted(m: ModuleTally, table: dict[str, int], hashed: bool) -> tuple[int, int]:
    rest = [(table["module_layout"], "module_layout")] if "module_layout" in table else []  # no import takes it
    if hashed:
        rest += [(crc, HASHED_NAME) for crc in m.hashed_crcs]
    events = depmod_checks(m.depmod, table, rest, m.exp, m.truth, m.judge, hashed)
    return len(events), sum(false for _, _, false in events) if events else 0
