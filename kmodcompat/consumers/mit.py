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

from ..elf.layout import STB_WEAK
from ..records import MODVERSION_ENTRY_SIZE, ModuleRecord, Modversion
from ..modversions import dedot
from .base import FALSE_MISMATCH, OK, PARTIAL, UNREADABLE, ConsumerView, Reading
from .kmod import hashed_shown


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
    if rec.compression in ("xz", "zstd"):
        return ConsumerView(consumer, path, UNREADABLE, lost=r.order,
                            notes=(f".ko.{'xz' if rec.compression == 'xz' else 'zst'} is not a module file to "
                                   "module-init-tools: the module is invisible",))
    vers = rec.versions
    table = None if vers is None else "bad-size" if not vers.well_formed else vers.entries
    # The tools' reading depends on the module and the table alone: an equal table is read once.
    visible, lost, messages, false = r.per_table("mit-versions", table, _read_versions)
    verdict = FALSE_MISMATCH if false else PARTIAL if lost else OK
    if verdict == PARTIAL and not visible and r.own:
        verdict = UNREADABLE if vers is not None else PARTIAL
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
        for name, want in r.shared("mit-imports", _versioned_imports):
            mine = crc_of.get(name, 0)
            if mine and mine != want:
                line = f"WARNING: {path} disagrees about version of symbol {name}"
                messages.append(line)
                if truth.get(name) == want:
                    false.append(line)
    seen = {m.name for m in visible}
    lost = tuple(n for n in r.order if n not in seen)
    return tuple(visible), lost, tuple(messages), tuple(false)


def _versioned_imports(r: Reading) -> tuple[tuple[str, int], ...]:
    """(name, exporter's CRC) of the non-weak imports, where that CRC is not 0 (find_symbol ignores a 0)."""
    exp = r.exp
    out = []
    for imp in r.rec.imports:
        if imp.binding != STB_WEAK:
            name = imp.name.removeprefix(".")
            want = exp.get(name, 0)
            if want:
                out.append((name, want))
    return tuple(out)
