"""The simulated formats' totals, counted from each module's facts instead of re-encoded records.

A tree report asks every consumer model about every module in five simulated
formats: 220,000 views on a distribution tree, most of the report's time when
each is a re-encoded record (:class:`kmodcompat.simulate.Simulation`) read by
the full models. Yet a simulated table is modpost's clean output: unique
names, one CRC each, the order of ``.symtab``. On such tables each model's
rules reduce to counting, per import, whether its name is in the table, the
CRC it carries there and the exporter's CRC, which is what :func:`tally` does.

A module as built is counted the same way when its tables are exactly what
modpost writes for its format (:meth:`ModuleTally.as_built`), as on every
module of the real trees tested.

The counts are the models' own, rule for rule (the comments name the model
each follows), and tests hold them equal to the models' totals on every real
tree and fixture, and on trees whose exporter CRCs were perturbed. What the
rules here do not cover (ppc64 ELFv1 dot names, an import listed twice or
named ``module_layout``, ``TOC.`` or ``sha256``, CRCs over 32 bits) makes :func:`tally`
return None, and the caller runs the models. A registered consumer with no rule here
is not missing: compute_views counts it from its model's views (``Counts.of``), as it counts the
formats it models; a rule here only saves time.
"""

from __future__ import annotations

from collections.abc import Mapping

from .consumers.base import (COMPATIBLE, FALSE_MISMATCH, IGNORES, INCOMPATIBLE, LOADS, LOADS_TAINTED,
                             LOADS_UNCHECKED, OK, PARTIAL, REFUSES, UNREADABLE, Counts)
from .consumers import (BUSYBOX, KERNEL_6_13, KERNEL_6_13_DEBIAN, KERNEL_6_13_DEBIAN_FORCE, KERNEL_6_13_FORCE,
                        KERNEL_6_14, KERNEL_6_14_DEBIAN, KERNEL_6_14_DEBIAN_FORCE, KERNEL_6_14_FORCE, KERNEL_HASHED_RFC,
                        MIT, WEAK_MODULES, WEAK_MODULES2)
from .consumers.kernel import module_vermagic
from .consumers.kmod import DEPMOD_FAKE_SYMBOLS
from .kmod.profile import KMOD30, KMOD34, KMOD_PR270
from .modversions import basic, hashed, varlen
from .elf.layout import EM_PPC64
from .records import MODVERSION_ENTRY_SIZE, ModuleRecord, ModversionsFormat as Fmt, all_terminated, raw
from .simulate import FORMATS, import_versions

_MISSING = object()


def _is_table(entries, table: dict[str, int]) -> bool:
    """``entries`` hold each name of ``table`` once, with its CRC, NUL-terminated."""
    return len(entries) == len(table) and {e.name: e.crc for e in entries} == table and all_terminated(entries)


def tally(rec: ModuleRecord, truth: Mapping[str, int], expected: Mapping[str, int] | None,
          formats: tuple[str, ...] = FORMATS) -> dict[str, dict[str, Counts] | None] | None:
    """Format → consumer id → :data:`Counts` (None: modpost cannot build the module in that format).

    ``truth`` and ``expected`` as compute_views passes them (``exporter_crcs(rec)``
    and the tree's exporter CRCs, or None). None when the module is outside
    what the counting rules cover.
    """
    counted = module_tally(rec, truth, expected)
    return None if counted is None else counted.counts(formats)


def module_tally(rec: ModuleRecord, truth: Mapping[str, int], expected: Mapping[str, int] | None,
                 vermagic: str | None = None) -> ModuleTally | None:
    """The module's facts for :func:`tally`; None when they are outside what the counting rules cover.

    ``vermagic``: the kernel's, as compute_views hands it to the loader models. The counting rules have
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
    return ModuleTally(rec, names, truth, expected, entries)


class ModuleTally:
    """One module's import facts, and every consumer's counts in each format."""

    def __init__(self, rec: ModuleRecord, names: list[str], truth: Mapping[str, int],
                 expected: Mapping[str, int] | None, entries: list[tuple[int, str]]):
        self.rec = rec
        self.nonweak = [imp.name for imp in rec.imports if not imp.weak]
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
        # extended one): each rule runs once per table object.
        self.short = self.all if len(short) == len(self.all) else short
        self.empty: dict[str, int] = {}
        self._memo: dict[tuple, object] = {}
        # The kernel's loader checks module_layout, then every UND symbol (kernel.py _loader_symbols).
        self.loader = [("module_layout", self.exp.get("module_layout"))] + [(n, self.exp.get(n)) for n in names]
        loaded = {"module_layout", *names}
        self.lost_unversioned = sum(1 for n in truth if n in loaded)

    def counts(self, formats: tuple[str, ...]) -> dict[str, dict[str, Counts] | None]:
        out: dict[str, dict[str, Counts] | None] = {}
        for fmt in formats:
            if fmt != Fmt.NONE and (not self.entries or fmt == Fmt.BASIC and len(self.short) < len(self.all)):
                out[fmt] = None  # simulate.BuildError: nothing to encode, or a name too long for __versions
                continue
            out[fmt] = self.views(fmt)
        return out

    def as_built(self) -> dict[str, Counts] | None:
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
        return self.counts((fmt,))[fmt]

    def views(self, fmt: str) -> dict[str, Counts]:
        """Every consumer's counts in ``fmt``: which tables exist decides which rules apply."""
        truth = self.truth
        # kmod's __versions: a dict when readable, "odd" for the variable-length layout, None when absent.
        # The hashed format's is the short names' dict, plus the records named "sha256" (hashed_crcs).
        versions = self.all if fmt == Fmt.BASIC else self.short if fmt in (Fmt.BASIC_EXT, Fmt.HASHED) else \
            "odd" if fmt == Fmt.VARLEN else None
        extended = fmt in (Fmt.BASIC_EXT, Fmt.EXT_ONLY)
        own = fmt != Fmt.NONE  # exporter_crcs of the simulated record is not empty
        shown = self.hashed_crcs if fmt == Fmt.HASHED else []
        # kmod rejects the variable-length entries; it reads each hashed record as a symbol "sha256".
        misread = len(self.entries) if fmt == Fmt.VARLEN else len(shown)

        kmod = self._kmod(versions, own, misread, shown)
        if extended:  # PR #270 prefers the extended tables, then goes through them for depmod too
            pr270 = self._kmod_verdict(len(self.all), self._lost(self.all), misread, 0, *self._depmod(self.all), own)
        elif versions == "odd":  # EINVAL, not ENODATA: depmod drops the module's dependencies silently
            pr270 = self._kmod_verdict(0, len(truth), misread, 1, 0, 0, own)
        else:
            pr270 = kmod
        # depmod's lines, not modprobe's
        lines, false = kmod.messages - (not isinstance(versions, dict)), kmod.false_messages
        gate = Counts(0, 0, 0, 0, lines, false, INCOMPATIBLE if lines else COMPATIBLE)
        out = {KMOD30.id: kmod, KMOD34.id: kmod, KMOD_PR270.id: pr270,
               BUSYBOX.id: Counts(0, 0, 0, len(truth), 0, 0, IGNORES), MIT.id: self._mit(versions, own, shown),
               WEAK_MODULES.id: gate, WEAK_MODULES2.id: gate}
        # The loader: 6.13 reads __versions alone, 6.14 the extended tables first; it reads the
        # variable-length layout as fixed records (kernel.py _misread).
        vers_table, records = self._misread_table() if isinstance(versions, str) else (versions, 0)
        # Debian's kernels fail closed on a name missing from __versions (kernel.py fails_closed), not
        # from the extended tables.
        for kernel, forced, table, closed in (
                (KERNEL_6_13, KERNEL_6_13_FORCE, vers_table, False),
                (KERNEL_6_14, KERNEL_6_14_FORCE, self.all if extended else vers_table, False),
                (KERNEL_6_13_DEBIAN, KERNEL_6_13_DEBIAN_FORCE, vers_table, True),
                (KERNEL_6_14_DEBIAN, KERNEL_6_14_DEBIAN_FORCE, self.all if extended else vers_table, not extended)):
            if table is None:
                out[kernel.id] = Counts(0, 0, 0, 0, 0, 0, REFUSES)
                out[forced.id] = Counts(0, self.lost_unversioned, 0, len(self.loader), 1, 0, LOADS_TAINTED)
            else:
                out[kernel.id] = out[forced.id] = self._loader(table, records, closed)
        # The RFC's loader (kernel.py hashed_names): a 6.13 that also matches long names with their hashed records.
        out[KERNEL_HASHED_RFC.id] = self._loader(self.all, 0, False) if fmt == Fmt.HASHED else out[KERNEL_6_13.id]
        return out

    # -- kmod (consumers/kmod.py Kmod._read) -------------------------------------------

    def _kmod(self, versions, own: bool, misread: int, shown: list[int]) -> Counts:
        if isinstance(versions, dict):
            messages, false = self._depmod(versions)
            if shown:
                messages, false = self._depmod_hashed(shown, messages, false)
            return self._kmod_verdict(len(versions) + len(shown), self._lost(versions), misread, 0, messages, false,
                                      own)
        # No __versions (ENOENT/ENODATA) or one of the wrong size (EINVAL): modprobe's FATAL
        # line, and depmod matches the imports against nothing.
        return self._kmod_verdict(0, len(self.truth), misread, 1, *self._depmod(self.empty), own)

    @staticmethod
    def _kmod_verdict(visible: int, lost: int, misread: int, fatal: int, messages: int, false: int,
                      own: bool) -> Counts:
        verdict = FALSE_MISMATCH if false else UNREADABLE if not visible and own else PARTIAL if lost else OK
        return Counts(visible, lost, misread, 0, fatal + messages, false, verdict)

    def _once(self, rule, table: dict[str, int], *args):
        key = (rule, id(table), args)
        if key not in self._memo:
            self._memo[key] = rule(table, *args)
        return self._memo[key]

    def _lost(self, table: dict[str, int]) -> int:
        return self._once(self._count_lost, table)

    def _count_lost(self, table: dict[str, int]) -> int:
        return sum(1 for n in self.truth if n not in table)

    def _depmod(self, table: dict[str, int]) -> tuple[int, int]:
        return self._once(self._depmod_warnings, table)

    def _depmod_warnings(self, table: dict[str, int]) -> tuple[int, int]:
        """kmod.py _depmod_warnings: (warnings, false ones) of ``depmod -e -E`` against ``table``."""
        exp, truth, judge = self.exp, self.truth, self.judge
        messages = false = 0
        for name in self.nonweak:
            want = exp.get(name)
            if want is None:
                messages += judge and name not in DEPMOD_FAKE_SYMBOLS  # needs unknown symbol
            elif table.get(name, 0) != want:
                messages += 1  # disagrees about version of symbol
                false += truth.get(name) == want
        if "module_layout" in table:  # the entry no import took
            want = exp.get("module_layout")
            if want is None:
                messages += judge
            elif table["module_layout"] != want:
                messages += 1
                false += truth.get("module_layout") == want
        return messages, false

    def _depmod_hashed(self, shown: list[int], messages: int, false: int) -> tuple[int, int]:
        """kmod.py _depmod_warnings on the hashed records, left over as symbols named "sha256": every line false."""
        want = self.exp.get(hashed.SHOWN_NAME)
        for crc in shown:
            bad = self.judge if want is None else crc != want  # needs unknown symbol / disagrees
            messages += bad
            false += bad
        return messages, false

    # -- module-init-tools (consumers/mit.py) ----------------------------------------------

    def _mit(self, versions, own: bool, shown: list[int]) -> Counts:
        if isinstance(versions, dict):
            counts = self._once(self._mit_view, versions, own)
            if shown and self.rec.compression not in ("xz", "zstd"):  # hashed records: read as "sha256", never compared
                counts = Counts(counts.visible + len(shown), counts.lost, len(shown), 0, counts.messages,
                                counts.false_messages, counts.verdict)
            return counts
        return self._mit_view(versions, own)

    def _mit_view(self, versions, own: bool) -> Counts:
        lost_all = len(self.truth)
        if self.rec.compression in ("xz", "zstd"):
            return Counts(0, lost_all, 0, 0, 0, 0, UNREADABLE)  # not a module file to it
        if versions is None:  # "built without modversions"
            return Counts(0, lost_all, 0, 0, 1, 0, PARTIAL if lost_all else OK)
        if versions == "odd":  # "Wrong section size" and "invalid __versions section size"
            return Counts(0, lost_all, 0, 0, 2, 0, UNREADABLE if lost_all and own else PARTIAL if lost_all else OK)
        exp, truth = self.exp, self.truth
        messages = false = 0
        for name in self.nonweak:
            want = exp.get(name, 0)
            mine = versions.get(name, 0)
            if want and mine and mine != want:  # find_symbol: both CRCs non-zero and different
                messages += 1
                false += truth.get(name) == want
        lost = self._lost(versions)
        verdict = FALSE_MISMATCH if false else PARTIAL if lost else OK
        if verdict == PARTIAL and not versions and own:
            verdict = UNREADABLE
        return Counts(len(versions), lost, 0, 0, messages, false, verdict)

    # -- the kernel's loader (consumers/kernel.py _check_versions) --------------------------

    def _misread_table(self) -> tuple[dict[str, int], int]:
        """The variable-length table read as fixed 64-byte records (first CRC of each name), and how many."""
        elf = self.rec.elf
        blob = varlen.encode(self.entries, elf.little_endian)
        records, _ = basic.read_entries(blob, 0, len(blob), elf.elfclass, elf.little_endian)
        return {e.name: e.crc for e in reversed(records)}, len(records)

    def _loader(self, table: dict[str, int], misread: int, closed: bool = False) -> Counts:
        return self._once(self._check_versions, table, misread, closed)

    def _check_versions(self, table: dict[str, int], misread: int, closed: bool) -> Counts:
        """check_version() for module_layout and each import, stopping at the first mismatch;
        ``closed``: Debian's, where each missing name fails (kernel.py _check_versions)."""
        truth = self.truth
        unchecked: list[str] = []
        checked = messages = 0
        for i, (name, want) in enumerate(self.loader):
            crc = table.get(name, _MISSING)
            if crc is _MISSING and closed:
                unchecked.append(name)
                if not i:  # module_layout: -ENOEXEC after "no symbol version for"
                    return Counts(0, 0, misread, 1, 1, 0, REFUSES)
                messages += 2  # "no symbol version for", "Unknown symbol ... (err -22)"
                continue
            if crc is _MISSING:
                messages += not unchecked  # "no symbol version for", pr_warn_once()
                unchecked.append(name)
                continue
            checked += 1
            if want is not None and crc != want:  # "disagrees", then "Unknown symbol" past module_layout
                return Counts(checked, 0, misread, len(unchecked), messages + 1 + (i > 0),
                              int(truth.get(name) == want), REFUSES)
        lost = sum(1 for n in unchecked if n in truth)
        verdict = (REFUSES if closed else LOADS_UNCHECKED) if unchecked else LOADS
        return Counts(checked, lost, misread, len(unchecked), messages, 0, verdict)
