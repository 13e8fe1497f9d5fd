"""module-init-tools 3.16 (vadmium/module-init-tools 4026aad, 2011): the pre-kmod tools.

Rules from docs/formats.md §4.2, read in elfops_core.c and depmod.c:

* ``PERBIT(dump_modversions)``: no ``__versions`` → prints nothing and succeeds;
  ``secsize % sizeof(*info)`` → -1, which modprobe reports as
  ``Wrong section size in '<f>'``; else ``0x%08lx\\t%s`` per entry, ``skip_dot(name)``.
* depmod ``load_dep_syms`` with ``-E``: no ``__versions`` → warn
  ``<f> is built without modversions``; bad size → warn
  ``invalid __versions section size in <f>`` and versions are ignored.
* depmod ``find_symbol``: "disagrees about version of symbol" only when **both**
  CRCs are non-zero and differ, so a missing CRC is never reported.
* only ``.ko`` and ``.ko.gz`` are module files; ``.ko.xz`` and ``.ko.zst`` are invisible.

It cannot be run here; the rules are tested on fixtures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import TYPE_CHECKING

from ..elf.layout import STB_WEAK
from ..records import MODVERSION_ENTRY_SIZE, Import, ModuleRecord, Modversion
from ..modversions import dedot
from .base import FALSE_MISMATCH, OK, PARTIAL, UNREADABLE, ConsumerView, Counts, Reading
from .kmod import hashed_shown

if TYPE_CHECKING:
    from ..tally import FormatTables, ModuleTally

#: The compressions module-init-tools does not know: such a file is not a module to it.
UNKNOWN_COMPRESSIONS = ("xz", "zstd")


def dump_modversions(rec: ModuleRecord, path: str) -> tuple[list[Modversion], list[str]]:
    """(entries printed, error lines) of ``modprobe --dump-modversions``."""
    vers = rec.versions  # None exactly when there is no __versions section (modversions.basic.parse)
    if vers is None:
        return [], []
    if not vers.well_formed:
        return [], [f"Wrong section size in '{path}'"]
    return list(dedot(vers.entries)), []


def read(consumer: str, r: Reading) -> ConsumerView:
    """What module-init-tools shows of the module (``consumer``: its registered id): ``modprobe
    --dump-modversions`` and ``depmod -E``."""
    rec, path = r.rec, r.path
    if rec.compression in UNKNOWN_COMPRESSIONS:
        return ConsumerView(consumer, path, UNREADABLE, lost=r.order,
                            notes=(f".ko.{'xz' if rec.compression == 'xz' else 'zst'} is not a module file to "
                                   "module-init-tools: the module is invisible",))
    vers = rec.versions
    table = None if vers is None else "bad-size" if not vers.well_formed else vers.entries
    # The tools' reading depends on the module and the table alone: an equal table is read once.
    visible, lost, messages, false = r.per_table("mit-versions", table, _read_versions)
    verdict = verdict_of(false, lost, visible, r.own, vers is not None)
    # A hashed record (the 2024 RFC) reads as a symbol named sha256, as in kmod; depmod looks the
    # long import up by name, finds no CRC (0) and, 0 never disagreeing, says nothing of it.
    misread = hashed_shown(rec, visible) if rec.hashed_versions is not None else ()
    return ConsumerView(consumer, path, verdict, visible, lost, misread, (), messages, false)


def _read_versions(r: Reading) -> tuple:
    """dump_modversions and depmod -E's checks: (visible, lost, messages, false messages)."""
    rec, path, truth = r.rec, r.path, r.truth
    visible, messages = dump_modversions(rec, path)
    sec = r.section("__versions")
    if sec is None:
        messages.append(f"WARNING: {path} is built without modversions")
    elif sec.size % MODVERSION_ENTRY_SIZE:
        messages.append(f"WARNING: invalid __versions section size in {path}")
    crc_of = {m.name: m.crc for m in visible} if sec is not None and not sec.size % MODVERSION_ENTRY_SIZE else {}
    false = []
    if crc_of:
        imports = r.shared("mit-imports", lambda r: versioned_imports(r.rec.imports, r.exp))
        for name, is_false in disagreements(imports, crc_of, truth):
            line = f"WARNING: {path} disagrees about version of symbol {name}"
            messages.append(line)
            if is_false:
                false.append(line)
    seen = {m.name for m in visible}
    lost = tuple(n for n in r.order if n not in seen)
    return tuple(visible), lost, tuple(messages), tuple(false)


# -- the rules, on tables: the model above and count() both run them --------------------------------------

def versioned_imports(imports: Sequence[Import], exp: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    """(name, exporter's CRC) of the non-weak imports, where that CRC is not 0 (find_symbol ignores a 0)."""
    names = [imp.name.removeprefix(".") for imp in imports if imp.binding != STB_WEAK]
    return tuple((name, want) for name, want in zip(names, map(exp.get, names, repeat(0))) if want)


def disagreements(imports: tuple[tuple[str, int], ...], crc_of: Mapping[str, int],
                  truth: Mapping[str, int]) -> list[tuple[str, bool]]:
    """depmod's find_symbol(): the imports whose CRC in ``__versions`` (``crc_of``) is not 0 and differs
    from the exporter's, each with whether the warning is false (built against the exporter's CRC)."""
    out = []
    for name, want in imports:
        mine = crc_of.get(name, 0)
        if mine and mine != want:
            out.append((name, truth.get(name) == want))
    return out


def verdict_of(false: object, lost: object, visible: object, own: object, has_versions: bool) -> str:
    """A false warning first, then versions lost (unreadable when a ``__versions`` gave nothing of a
    module that records CRCs)."""
    if false:
        return FALSE_MISMATCH
    if not lost:
        return OK
    return UNREADABLE if not visible and own and has_versions else PARTIAL


# -- counted on a simulated format's clean tables (tally.py) -------------------------------------------------

def count(t: FormatTables) -> Counts:
    """:func:`read`'s view counted, on the clean tables of a simulated format."""
    m = t.m
    lost_all = len(m.truth)
    if m.rec.compression in UNKNOWN_COMPRESSIONS:
        return Counts(0, lost_all, 0, 0, 0, 0, UNREADABLE)  # not a module file to it
    v = t.versions
    if not isinstance(v, dict):
        # None: "built without modversions"; the variable-length layout: "Wrong section size" and
        # "invalid __versions section size".
        messages = 1 if v is None else 2
        return Counts(0, lost_all, 0, 0, messages, 0, verdict_of(False, lost_all, 0, t.own, v is not None))
    messages, false = m.once(_disagreements_counted, v)
    lost = m.unseen(v)
    # Hashed records: read as "sha256", never compared.
    return Counts(len(v) + len(t.shown), lost, len(t.shown), 0, messages, false,
                  verdict_of(false, lost, v, t.own, True))


def _disagreements_counted(m: ModuleTally, table: dict[str, int]) -> tuple[int, int]:
    found = disagreements(m.once(_versioned, m.exp), table, m.truth)
    return len(found), sum(false for _, false in found) if found else 0


def _versioned(m: ModuleTally, exp: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    return versioned_imports(m.rec.imports, exp)
