"""busybox modutils (1.35 to 1.37): never reads version information.

busybox has no ELF parser (mirror/busybox 371fe9f71, modutils/*.c has no
``__versions`` or ``modversion``; docs/formats.md §4.1). Its depmod scans the raw,
decompressed bytes: dependencies from ``depends=``, aliases from ``alias=``,
exports from every string starting ``__ksymtab_`` (except ``__ksymtab_gpl*`` and
``__ksymtab_strings``). So every modversions format looks the same to it, long
Rust names included, and no CRC is ever compared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..records import ModuleRecord
from .base import IGNORES, ConsumerView, Counts, Reading

if TYPE_CHECKING:
    from ..tally import FormatTables


def read(consumer: str, r: Reading) -> ConsumerView:
    """What busybox sees of the module (``consumer``: its registered id): no version at all."""
    return ConsumerView(consumer, r.path, IGNORES, unchecked=r.order,
                        notes=("dependencies come from .modinfo depends=, never from symbol versions",))


def count(t: FormatTables) -> Counts:
    """:func:`read`'s view counted: every versioned import unchecked, in every format."""
    return Counts(0, 0, 0, len(t.m.truth), 0, 0, IGNORES)


def depends(rec: ModuleRecord) -> list[str]:
    """modutils/depmod.c parse_module(): the ``depends=`` list, '-' read as '_'."""
    out: list[str] = []
    for v in rec.modinfo_values("depends"):
        out += [d.replace("-", "_") for d in v.split(",") if d]
    return out


def exported_symbols(rec: ModuleRecord) -> set[str]:
    """The exports busybox's depmod lists in modules.symbols.

    modutils/depmod.c parse_module(): after ``__ksymtab_`` it skips anything
    starting ``gpl`` (meant for ``__ksymtab_gpl``, it also drops every export
    whose own name starts with "gpl") and ``strings``. It scans raw bytes in
    file order, so only the set is modelled, not the order.
    """
    return {x.name for x in rec.exports if not x.name.startswith("gpl") and x.name != "strings"}
