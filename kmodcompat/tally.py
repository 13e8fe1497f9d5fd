"""The simulated formats' tables of a module, for each consumer's ``count()``: totals without re-encoded records.

A tree report asks every consumer model about every module in five simulated
formats: 220,000 views on a distribution tree, most of the report's time when
each is a re-encoded record (:class:`kmodcompat.simulate.Simulation`) read by
the full models. Yet a simulated table is modpost's clean output: unique
names, one CRC each, the order of ``.symtab``. This file holds what such a
table is in each format (:class:`FormatTables`: which tables exist, the names
and CRCs in each); each consumer's ``count(tables)``, in its own file beside
its model and through the same rule functions, counts what it would show.
Nothing here is a consumer's rule: a consumer is named in its file and the
registry only.

A module as built is counted the same way when its tables are exactly what
modpost writes for its format (:meth:`ModuleTally.as_built`), as on every
module of the real trees tested.

Tests hold the counts equal to the models' totals on every real tree and
fixture, and on trees whose exporter CRCs were perturbed. What clean tables
do not describe (ppc64 ELFv1 dot names, an import listed twice or named
``module_layout``, ``TOC.`` or ``sha256``, CRCs over 32 bits) makes
:func:`module_tally` return None, and the caller runs the models. A
registered consumer with no ``count`` is not missing: compute_views counts it
from its model's views (``Counts.of``), as it counts the formats it models; a
``count`` only saves time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

from .consumers.base import Counts
from .consumers.kernel import loader_symbols, module_vermagic
from .consumers.kmod import depmod_imports
from .modversions import basic, hashed, varlen
from .elf.layout import EM_PPC64
from .records import MODVERSION_ENTRY_SIZE, ModuleRecord, ModversionsFormat as Fmt, all_terminated, raw
from .simulate import FORMATS, import_versions

T = TypeVar("T")

_UNSET = object()

#: kmod's reading of a variable-length ``__versions`` (a size that is not a multiple of 64): no table.
ODD = "odd"


def _is_table(entries, table: dict[str, int]) -> bool:
    """``entries`` hold each name of ``table`` once, with its CRC, NUL-terminated."""
    return len(entries) == len(table) and {e.name: e.crc for e in entries} == table and all_terminated(entries)


def tally(rec: ModuleRecord, truth: Mapping[str, int], expected: Mapping[str, int] | None,
          formats: tuple[str, ...] = FORMATS,
          consumers: Sequence[str] | None = None) -> dict[str, dict[str, Counts] | None] | None:
    """Format → consumer id → :data:`Counts` (None: modpost cannot build the module in that format), for
    the consumers that count (default: every registered one with a ``count``).

    ``truth`` and ``expected`` as compute_views passes them (``exporter_crcs(rec)``
    and the tree's exporter CRCs, or None). None when the module is outside
    what clean tables describe.
    """
    counted = module_tally(rec, truth, expected)
    return None if counted is None else counted.counts(formats, consumers)


def module_tally(rec: ModuleRecord, truth: Mapping[str, int], expected: Mapping[str, int] | None,
                 vermagic: str | None = None) -> ModuleTally | None:
    """The module's facts for :func:`tally`; None when clean tables do not describe them.

    ``vermagic``: the kernel's, as compute_views hands it to the loader models. The counts have
    no check_modinfo(): they cover a module whose vermagic is the kernel's to the byte (same_magic()
    then holds with and without ``__versions``, in every format), or any module when it is unknown."""
    if vermagic is not None and module_vermagic(rec) != vermagic:
        return None
    names = [imp.name for imp in rec.imports]
    unique = set(names)
    if (rec.elf.machine == EM_PPC64 or len(unique) != len(names) or "module_layout" in unique
            or "TOC." in unique or hashed.SHOWN_NAME in unique or "" in unique
            or "\0." in "\0".join(["", *names, *truth])):
        return None
    entries = import_versions(rec, expected)  # modpost's list, as Simulation encodes it
    if any(crc >> 32 for crc, _ in entries):
        return None
    return ModuleTally(rec, truth, expected, entries)


class Counting(NamedTuple):
    """(consumer id, its ``count``) of the consumers that count, in the order asked."""

    pairs: tuple[tuple[str, Callable[[FormatTables], Counts]], ...]


def counting(consumers: Sequence[str] | None = None) -> Counting:
    """The registered consumers among ``consumers`` (default: all) that have a ``count``."""
    from .consumers import CONSUMERS

    chosen = CONSUMERS.values() if consumers is None else (CONSUMERS[c] for c in consumers)
    return Counting(tuple((c.id, c.count) for c in chosen if c.count is not None))


class ModuleTally:
    """One module's import facts, alike in every format, and its tables in each (:meth:`tables`)."""

    def __init__(self, rec: ModuleRecord, truth: Mapping[str, int], expected: Mapping[str, int] | None,
                 entries: list[tuple[int, str]]):
        self.rec = rec
        self.truth = truth
        # compute_views hands the models the tree's CRCs, else the module's own, as the exporters'.
        self.exp = truth if expected is None else expected
        self.judge = expected is not None
        self.entries = entries
        self.all = {name: crc for crc, name in entries}
        limit = basic.name_limit(rec.elf.elfclass)
        short = {name: crc for crc, name in entries if len(name) <= limit and name.isascii() or len(raw(name)) <= limit}
        # The hashed format's records of the long names, as kmod and module-init-tools read them: CRCs
        # of symbols named "sha256" (modversions/hashed.py).
        self.hashed_crcs = [crc for crc, name in entries if name not in short]
        # Formats share tables (basic's is basic+ext's when every name fits; PR #270 and 6.14 read the
        # extended one): each rule runs once per table object (:meth:`once`).
        self.short = self.all if len(short) == len(self.all) else short
        self.empty: dict[str, int] = {}
        #: What rules computed of this module's tables (:meth:`once`); the table is held by the
        #: ModuleTally, so its id is not reused while the memo lives.
        self.memo: dict[Any, Any] = {}
        # The same derivations the models make of the imports (consumers/kmod.py, consumers/kernel.py).
        self.depmod = depmod_imports(rec.imports, self.exp, self.judge)
        self.loader = loader_symbols(rec, self.exp)

    def once(self, rule: Callable[..., T], table: object, *args: Any) -> T:
        """``rule(self, table, *args)``, once per rule, table object and arguments."""
        key = (rule, id(table), *args)
        try:
            return self.memo[key]
        except KeyError:
            value = self.memo[key] = rule(self, table, *args)
            return value

    def unseen(self, table: dict[str, int]) -> int:
        """How many of the versioned imports (the truth) ``table`` does not hold."""
        return self.once(_count_unseen, table)

    def tables(self, fmt: str) -> FormatTables | None:
        """The module's tables in ``fmt``; None when modpost cannot build it so (simulate.BuildError:
        nothing to encode, or a name too long for ``__versions``)."""
        if fmt != Fmt.NONE and (not self.entries or fmt == Fmt.BASIC and len(self.short) < len(self.all)):
            return None
        return FormatTables(self, fmt)

    def counts(self, formats: Sequence[str],
               consumers: Sequence[str] | Counting | None = None) -> dict[str, dict[str, Counts] | None]:
        """Format → consumer → Counts, for ``consumers`` that count (default: all that do; or what
        :func:`counting` made of them, once for many modules)."""
        counters = consumers if isinstance(consumers, Counting) else counting(consumers)
        out: dict[str, dict[str, Counts] | None] = {}
        for fmt in formats:
            # A hashed table without a long name is the basic one byte for byte (simulate.written_format):
            # counted once. So is the module as built (as_built), which is counted as its own format.
            written = Fmt.BASIC if fmt == Fmt.HASHED and not self.hashed_crcs else fmt
            key = ("counts", written, counters)
            held = self.memo.get(key, _UNSET)
            if held is _UNSET:
                t = self.tables(written)
                held = self.memo[key] = None if t is None else {cid: count(t) for cid, count in counters.pairs}
            out[fmt] = None if held is None else dict(held)  # the caller's own: compute_views adds to it
        return out

    def as_built(self, consumers: Sequence[str] | Counting | None = None) -> dict[str, Counts] | None:
        """The counts of the module as it is, when its tables are exactly those modpost writes for its format
        from its imports (then every model reads it as that simulated format); None otherwise."""
        rec = self.rec
        fmt = rec.modversions_format
        if fmt not in (Fmt.NONE, Fmt.BASIC, Fmt.BASIC_EXT, Fmt.EXT_ONLY) or fmt != Fmt.NONE and not self.entries:
            return None
        if fmt in (Fmt.BASIC, Fmt.BASIC_EXT):
            table = self.all if fmt == Fmt.BASIC else self.short
            v = rec.versions
            sec = rec.section("__versions")
            assert v is not None and sec is not None  # the format has __versions (ModuleRecord.modversions_format)
            if not (v.alloc and v.size == MODVERSION_ENTRY_SIZE * len(v.entries)
                    and sec.offset + sec.size <= rec.image_size and _is_table(v.entries, table)):
                return None
        if fmt in (Fmt.BASIC_EXT, Fmt.EXT_ONLY):
            e = rec.ext_versions
            assert e is not None  # the format has the extended tables (ModuleRecord.modversions_format)
            if not (e.crcs_alloc and e.names_alloc and e.crc_count == len(e.entries) and e.crcs_size == 4 * e.crc_count
                    and _is_table(e.entries, self.all)):
                return None
        return self.counts((fmt,), consumers)[fmt]

    def misread_table(self) -> tuple[dict[str, int], int]:
        """The variable-length table read as fixed 64-byte records (first CRC of each name), and how many:
        what a reader of the fixed layout that does not check the size finds (the loader: kernel.py _misread)."""
        memo = self.memo.get("misread")
        if memo is None:
            elf = self.rec.elf
            blob = varlen.encode(self.entries, elf.little_endian)
            records, _ = basic.read_entries(blob, 0, len(blob), elf.elfclass, elf.little_endian)
            memo = self.memo["misread"] = ({e.name: e.crc for e in reversed(records)}, len(records))
        return memo


def _count_unseen(m: ModuleTally, table: dict[str, int]) -> int:
    return len(m.truth.keys() - table.keys())


class FormatTables:
    """What a module's version sections hold in one simulated format, as modpost writes them.

    ``versions``: ``__versions`` as a fixed-layout reader gets it (name → CRC; the hashed format's
    short names, its long names' records being :attr:`shown`), :data:`ODD` for the variable-length
    layout (its size is no multiple of 64), None when absent. ``ext_table``: the extended tables
    (name → CRC), None when absent. ``own``: the module records CRCs at all (exporter_crcs not empty).
    """

    __slots__ = ("m", "fmt", "versions", "ext_table", "shown", "own", "hashed_fmt", "varlen_entries", "memo")

    def __init__(self, m: ModuleTally, fmt: str):
        self.m = m
        self.fmt = fmt
        self.versions: dict[str, int] | str | None = m.all if fmt == Fmt.BASIC else m.short \
            if fmt in (Fmt.BASIC_EXT, Fmt.HASHED) else ODD if fmt == Fmt.VARLEN else None
        self.ext_table: dict[str, int] | None = m.all if fmt in (Fmt.BASIC_EXT, Fmt.EXT_ONLY) else None
        #: CRCs of the hashed format's records of long names, each read as a symbol named "sha256".
        self.shown: list[int] = m.hashed_crcs if fmt == Fmt.HASHED else []
        self.own = fmt != Fmt.NONE
        self.hashed_fmt = fmt == Fmt.HASHED
        #: Entries of the variable-length table (every one, in that format).
        self.varlen_entries = len(m.entries) if fmt == Fmt.VARLEN else 0
        #: What consumers reading these tables alike share (kmod releases, a kernel with and without
        #: FORCE_LOAD), by a key of their own.
        self.memo: dict[Any, Any] = {}

