"""What every consumer model returns, and the facts they are judged against.

A consumer model is a function ``view(rec, expected) -> ConsumerView``:
``rec`` is the parsed module, ``expected`` the CRC each imported symbol has
at its exporter (the kernel's or another module's). Without a tree, the
module's own recorded CRCs stand in for the exporters' (``own_crcs``), so a
view isolates what the *format* does to a consumer, not ABI drift.

Each model's ``view`` is its ``read`` of a :class:`Reading`, which holds
what several models derive from the same question.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..records import ModuleRecord, Modversion, Section

T = TypeVar("T")
_UNSET = object()

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


@dataclass(frozen=True, slots=True)
class Counts:
    """One consumer's view of one module, counted: what :class:`kmodcompat.views.Totals` adds up."""

    visible: int
    lost: int
    misread: int
    unchecked: int
    messages: int
    false_messages: int
    verdict: str

    @classmethod
    def of(cls, v: ConsumerView) -> Counts:
        return cls(len(v.visible), len(v.lost), len(v.misread), len(v.unchecked), len(v.messages),
                   len(v.false_messages), v.verdict)


def own_crcs(rec: ModuleRecord) -> dict[str, int]:
    """The CRC this module recorded for each import, from every table it carries.

    The extended tables win over ``__versions`` (they are the complete list
    when present); a misread layout contributes nothing, but the variable-length
    table's own entries do, and a hashed ``__versions`` record counts for the
    import whose name it hashes (none when no import does).
    """
    out: dict[str, int] = {}
    if rec.varlen_versions is not None:
        for m in rec.varlen_versions.entries:
            out.setdefault(m.name, m.crc)
    elif rec.versions is not None and rec.versions.well_formed:
        entries = rec.versions.entries
        hashed = rec.hashed_versions
        if hashed is not None:  # a hashed record versions the import it resolves to, not "sha256"
            resolved = dict(zip(hashed.indices, hashed.entries))
            entries = tuple(resolved.get(i, m) for i, m in enumerate(entries) if i not in resolved or resolved[i].name)
        for m in entries:
            if m.terminated:
                out.setdefault(m.name, m.crc)
    if rec.ext_versions is not None:
        for m in rec.ext_versions.entries:
            out[m.name] = m.crc
    return out


def exporter_crcs(rec: ModuleRecord) -> dict[str, int]:
    """:func:`own_crcs` keyed as exporters name the symbols: ppc64 ELFv1 records
    function imports with a leading dot that no export carries (docs/formats.md §1.6)."""
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
    names = [n for n in (i.name.removeprefix(".") for i in rec.imports) if n in crcs]
    seen = set(names)
    names += [n for n in crcs if n not in seen]
    return names


class Reading:
    """One question put to the consumer models: a module, its exporters' CRCs, the truth.

    ``view(rec, expected, truth, path, judge_unknown, vermagic)`` of every model is its
    ``read(Reading(rec, expected, truth, path, judge_unknown, vermagic))``: the defaults
    are applied here, alike for all (exporter and true CRCs default to the
    module's own, ``path`` to the record's, ``judge_unknown`` to whether
    ``expected`` is given).

    Models handed the same Reading (compute_views hands one to all of them
    for each module and format) share what they derive from it: through
    :meth:`of`, once per Reading (kmod 34's view is also the weak-modules
    gates' depmod run); through :meth:`shared` and :meth:`per_table`, facts
    of the module alone, or of the module and one version table, which
    :meth:`for_record` carries over to the module's other builds, so that
    kmod releases, kernels and formats reading equal tables read them once.
    """

    __slots__ = ("rec", "path", "judge_unknown", "vermagic", "_expected", "_truth", "_own", "_memo", "_shared",
                 "_sections")

    def __init__(self, rec: ModuleRecord, expected: Mapping[str, int] | None = None,
                 truth: Mapping[str, int] | None = None, path: str | None = None,
                 judge_unknown: bool | None = None, vermagic: str | None = None):
        self.rec = rec
        #: The kernel's VERMAGIC_STRING, which the loader models compare the module's with
        #: (consumers/kernel.py check_modinfo); None: unknown, not compared.
        self.vermagic = vermagic
        self.path = rec.path if path is None else path
        self.judge_unknown = expected is not None if judge_unknown is None else judge_unknown
        self._expected = expected
        self._truth = truth
        self._own: dict[str, int] | None = None
        self._memo: dict[Any, Any] = {}
        self._shared: dict[Any, Any] = {}
        self._sections: dict[str, Section | None] = {}

    @property
    def own(self) -> dict[str, int]:
        """:func:`exporter_crcs` of the record."""
        if self._own is None:
            self._own = exporter_crcs(self.rec)
        return self._own

    @property
    def exp(self) -> Mapping[str, int]:
        """The exporters' CRCs."""
        return self.own if self._expected is None else self._expected

    @property
    def truth(self) -> Mapping[str, int]:
        """The CRCs the module was really built against."""
        return self.own if self._truth is None else self._truth

    def of(self, kind: Any, obj: Any, compute: Callable[[Any], T]) -> T:
        """``compute(obj)``, once per ``kind`` and object (by identity, without hashing it) in this Reading."""
        key = (kind, id(obj))
        held = self._memo.get(key)
        if held is None:
            held = self._memo[key] = (obj, compute(obj))  # holding obj keeps its id from being reused
        return held[1]

    def shared(self, key: Any, compute: Callable[[Reading], T]) -> T:
        """``compute(self)`` for a fact of ``key`` and of the imports, header, ``.modinfo``, path and CRCs
        alone: once per module (see :meth:`for_record`)."""
        value = self._shared.get(key, _UNSET)
        if value is _UNSET:
            value = self._shared[key] = compute(self)
        return value

    def per_table(self, kind: Any, table: Any, compute: Callable[[Reading], T]) -> T:
        """:meth:`shared` for a fact of ``table`` (and the module) alone: computed once per equal
        table, whichever model or format reads it, and looked up once per table object."""
        return self.of(kind, table, lambda t: self.shared((kind, t), compute))

    def for_record(self, rec: ModuleRecord) -> Reading:
        """The same question about another build of the module.

        The shared facts carry over when ``rec`` holds the very same imports,
        header and ``.modinfo`` and the CRCs were given (defaults would be
        each record's own).
        """
        other = Reading(rec, self._expected, self._truth, self.path, self.judge_unknown, self.vermagic)
        old = self.rec
        if (self._expected is not None and self._truth is not None and rec.imports is old.imports
                and rec.elf is old.elf and rec.modinfo is old.modinfo and rec.path == old.path):
            other._shared = self._shared
        return other

    @property
    def order(self) -> tuple[str, ...]:
        """:func:`versioned_order` against the truth."""
        return self.shared("order", lambda r: tuple(versioned_order(r.rec, r.truth)))

    def section(self, name: str) -> Section | None:
        """``rec.section(name)``."""
        try:
            return self._sections[name]
        except KeyError:
            found = self._sections[name] = self.rec.section(name)
            return found
