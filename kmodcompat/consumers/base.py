"""What every consumer model returns, and the facts they are judged against.

A consumer model is a function ``view(rec, expected) -> ConsumerView``:
``rec`` is the parsed module, ``expected`` the CRC each imported symbol has
at its exporter (the kernel's or another module's). Without a tree, the
module's own recorded CRCs stand in for the exporters' (``own_crcs``), so a
view isolates what the *format* does to a consumer, not ABI drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..records import ModuleRecord, Modversion

# Verdicts, from the user's point of view.
OK = "ok"  # sees and checks every versioned import, prints nothing false
PARTIAL = "partial"  # misses some import versions (they go unchecked), no false alarm
FALSE_MISMATCH = "false-mismatch"  # prints a version mismatch that is not real
UNREADABLE = "unreadable"  # fails on the module's version data
IGNORES = "ignores-versions"  # never reads versions; format makes no difference
LOADS = "loads"
LOADS_UNCHECKED = "loads-unchecked"  # loads, but some or all imports are not checked
LOADS_TAINTED = "loads-tainted"
REFUSES = "refuses"
COMPATIBLE = "compatible"
INCOMPATIBLE = "incompatible"

VERDICTS = (OK, PARTIAL, FALSE_MISMATCH, UNREADABLE, IGNORES, LOADS, LOADS_UNCHECKED, LOADS_TAINTED, REFUSES,
            COMPATIBLE, INCOMPATIBLE)


@dataclass(frozen=True, slots=True)
class ConsumerView:
    """One consumer's reading of one module."""

    consumer: str
    module: str
    verdict: str
    visible: tuple[Modversion, ...] = ()  # import versions the consumer reads (CRC as it reads it)
    lost: tuple[str, ...] = ()  # imports versioned in the file that this consumer does not see
    misread: tuple[Modversion, ...] = ()  # entries it reads wrongly (garbage name or CRC)
    unchecked: tuple[str, ...] = ()  # imports it accepts without comparing a CRC
    messages: tuple[str, ...] = ()  # what it prints, exactly
    false_messages: tuple[str, ...] = ()  # the subset of messages that report a problem that is not real
    notes: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict:
        return {
            "consumer": self.consumer, "module": self.module, "verdict": self.verdict,
            "visible": [[m.crc, m.name] for m in self.visible], "lost": list(self.lost),
            "misread": [[m.crc, m.name] for m in self.misread], "unchecked": list(self.unchecked),
            "messages": list(self.messages), "false_messages": list(self.false_messages), "notes": list(self.notes),
        }


def own_crcs(rec: ModuleRecord) -> dict[str, int]:
    """The CRC this module recorded for each import, from every table it carries.

    The extended tables win over ``__versions`` (they are the complete list
    when present); a misread layout contributes nothing, but the variable-length
    table's own entries do.
    """
    out: dict[str, int] = {}
    if rec.varlen_versions is not None:
        for m in rec.varlen_versions.entries:
            out.setdefault(m.name, m.crc)
    elif rec.versions is not None and rec.versions.well_formed:
        for m in rec.versions.entries:
            if m.terminated:
                out.setdefault(m.name, m.crc)
    if rec.ext_versions is not None:
        for m in rec.ext_versions.entries:
            out[m.name] = m.crc
    return out


def exporter_crcs(rec: ModuleRecord) -> dict[str, int]:
    """:func:`own_crcs` keyed as exporters name the symbols: ppc64 ELFv1 records
    function imports with a leading dot that no export carries (FORMATS.md §1.6)."""
    return {k.removeprefix("."): v for k, v in own_crcs(rec).items()}


def tree_crcs(kernel_crcs: Mapping[str, int], records: Iterable[ModuleRecord]) -> dict[str, int]:
    """The CRC depmod compares each import against, for a tree: exporter by symbol.

    As depmod resolves (docs/depmod-behaviour.md): a module's export hides the
    kernel's, the last module in ``records`` order wins, and an export without
    a CRC counts as 0 (kmod_elf_get_symbols' __ksymtab_strings fallback).
    """
    out = dict(kernel_crcs)
    for rec in records:
        for x in rec.exports:
            out[x.name] = x.crc if x.crc is not None else 0
    return out


def versioned_order(rec: ModuleRecord, crcs: Mapping[str, int] | None = None) -> list[str]:
    """Import names that carry a CRC, in modpost's order (symtab UND order, module_layout last).

    ``crcs``: the CRCs that count (a view's ``truth``, de-dotted); default the module's own.
    """
    if crcs is None:
        crcs = own_crcs(rec)
        names = [i.name for i in rec.imports if i.name in crcs]
        seen = set(names)
        return names + [n for n in crcs if n not in seen]
    names = [i.name.removeprefix(".") for i in rec.imports if i.name.removeprefix(".") in crcs]
    seen = set(names)
    names += [n for n in crcs if n not in seen]
    return names


def expected_for(rec: ModuleRecord, expected: Mapping[str, int] | None) -> Mapping[str, int]:
    return own_crcs(rec) if expected is None else expected
