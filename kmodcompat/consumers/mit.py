"""module-init-tools 3.16 (vadmium/module-init-tools 4026aad, 2011): the pre-kmod tools.

Rules from FORMATS.md §4.2, read in elfops_core.c and depmod.c:

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

from collections.abc import Mapping

from ..records import MODVERSION_ENTRY_SIZE, ModuleRecord, Modversion
from .base import FALSE_MISMATCH, OK, PARTIAL, UNREADABLE, ConsumerView, exporter_crcs, versioned_order


def dump_modversions(rec: ModuleRecord, path: str) -> tuple[list[Modversion], list[str]]:
    """(entries printed, error lines) of ``modprobe --dump-modversions``."""
    sec = rec.section("__versions")
    if sec is None:
        return [], []
    if sec.size % MODVERSION_ENTRY_SIZE:
        return [], [f"Wrong section size in '{path}'"]
    return [Modversion(e.crc, e.name.removeprefix("."), e.terminated) for e in rec.versions.entries], []


def view(rec: ModuleRecord, expected: Mapping[str, int] | None = None, truth: Mapping[str, int] | None = None,
         path: str | None = None, judge_unknown: bool | None = None) -> ConsumerView:
    path = rec.path if path is None else path
    own = exporter_crcs(rec)
    truth = own if truth is None else truth
    exp = own if expected is None else expected
    if rec.compression in ("xz", "zstd"):
        return ConsumerView("mit", path, UNREADABLE, lost=tuple(versioned_order(rec, truth)),
                            notes=(f".ko.{'xz' if rec.compression == 'xz' else 'zst'} is not a module file to "
                                   "module-init-tools: the module is invisible",))
    visible, messages = dump_modversions(rec, path)
    sec = rec.section("__versions")
    if sec is None:
        messages.append(f"WARNING: {path} is built without modversions")
    elif sec.size % MODVERSION_ENTRY_SIZE:
        messages.append(f"WARNING: invalid __versions section size in {path}")
    crc_of = {m.name: m.crc for m in visible} if sec is not None and not sec.size % MODVERSION_ENTRY_SIZE else {}
    false = []
    for imp in rec.imports:
        if imp.weak:
            continue
        name = imp.name.removeprefix(".")
        mine, want = crc_of.get(name, 0), exp.get(name, 0)
        if mine and want and mine != want:
            line = f"WARNING: {path} disagrees about version of symbol {name}"
            messages.append(line)
            if truth.get(name) == want:
                false.append(line)
    seen = {m.name for m in visible}
    lost = tuple(n for n in versioned_order(rec, truth) if n not in seen)
    verdict = FALSE_MISMATCH if false else PARTIAL if lost else OK
    if own and not visible and verdict == PARTIAL:
        verdict = UNREADABLE if sec is not None else PARTIAL
    return ConsumerView("mit", path, verdict, tuple(visible), lost, (), (), tuple(messages), tuple(false))
