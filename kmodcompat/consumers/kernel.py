r"""The kernel's module loader: does it check, refuse, or load the module?

Modelled on kernel/module/main.c and kernel/module/version.c (docs/formats.md §1.5;
``RSBAC/rsbac-6.18.y@a479fc948f9c:kernel/module/main.c`` and
``torvalds/linux@e72a6c89bd46:kernel/module/version.c``), for a kernel built
with CONFIG_MODVERSIONS. Two releases matter:

* 6.13: only ``__versions`` exists for the loader;
* 6.14 (commit 54ac1ac8edeb "modules: Support extended MODVERSIONS info"):
  ``elf_validity_cache_index_versions()`` also indexes the extended tables,
  and ``check_version()`` prefers them.

A third, never merged, is modelled for the hashed format: a kernel with Sami
Tolvanen's June 2024 RFC ("[PATCH 14/15] module: Support hashed symbol names
when checking modversions", 20240617175818.58219-31-samitolvanen@google.com),
whose ``check_version()`` compares a name of ``MODULE_NAME_LEN`` or more
characters with the ``"sha256\\0"`` + digest records (``symcmp()``); every other
kernel ``strcmp()``s it against a record named "sha256" and finds none
(:mod:`kmodcompat.modversions.hashed`).

Each may be built with CONFIG_MODULE_FORCE_LOAD, which turns "no versions"
into a taint instead of a refusal. The loader cannot be run here: every
rule below cites the line it models and is tested on fixtures (and against
real kernels under QEMU: tests/test_qemu_oracle.py).

Two profiles of the loader (:attr:`Kernel.profile`):

* ``mainline``: the kernel.org source above;
* ``debian``: Debian's kernels, which carry
  ``debian/patches/debian/module-disable-matching-missing-version-crc.patch``
  (Ben Hutchings, 2016-12-02, "module: Disable matching missing version CRC":
  "This partly reverts commit cd3caefb4663e3811d37cc2afad3cce642d60061. We
  want to fail closed if a symbol version CRC is missing, as the alternative
  may allow subverting module signing."). Its one hunk, in check_version()::

      -    /* Broken toolchain. Warn once, then let it go.. */
      -    pr_warn_once("%s: no symbol version for %s\n", info->name, symname);
      -    return 1;
      +    pr_warn("%s: no symbol version for %s\n", info->name, symname);
      +    return 0;

  Read in the patched kernel/module/version.c of Debian's linux-source-6.1
  6.1.192-3 (bookworm), linux-source-6.12 6.12.118-1 (trixie) and
  linux-source-7.2 7.2.13-1 (sid): all three return 0 there. The patch
  touches the ``__versions`` walk only: in 7.2 a name missing from the
  extended tables still takes ``pr_warn_once("%s: no extended symbol version
  for %s\n")`` and ``return 1``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from ..elf.layout import EM_PPC64
from ..modversions import VersionTable, hashed
from ..records import BasicVersions, ExtVersions, ModuleRecord, Modversion
from .base import LOADS, LOADS_TAINTED, LOADS_UNCHECKED, REFUSES, ConsumerView, Counts, Reading

if TYPE_CHECKING:
    from ..tally import FormatTables, ModuleTally


#: The loader profiles: kernel.org's, and Debian's (module-disable-matching-missing-version-crc.patch).
MAINLINE = "mainline"
DEBIAN = "debian"
PROFILES = (MAINLINE, DEBIAN)


#: UTS_VERSION as Debian's kernels spell it, at the end of linux_banner (init/version-timestamp.c: "Linux version
#: %s (%s@%s) (%s) %s"): "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)" on bookworm's 6.1, "#1 SMP
#: PREEMPT_DYNAMIC Debian 6.12.118-1 (2026-11-20)" on trixie's amd64 and "#1 SMP Debian 6.12.118-1 (2026-11-20)" on
#: its armmp image: the build number, the preemption flags, then the package's name and version where the
#: kernel.org build has its build date. The compiler's own "(Debian 12.2.0-14+deb12u1)" is no evidence: a kernel
#: built from Debian's linux-source by anyone else carries it too, and its UTS_VERSION ends in a date.
_DEBIAN_UTS_VERSION = re.compile(r"#\d*(?: [A-Z_]+)* Debian (\S+) \(\d{4}-\d\d-\d\d\)")
#: Debian's ABI names since trixie: 6.12.118+deb13-amd64.
_DEBIAN_RELEASE = re.compile(r"\+deb(\d+)(?:u\d+)?-")


def profile_of(banner: str | None, release: str | None) -> tuple[str, str]:
    """(profile, the evidence in one phrase) for a kernel known by its ``linux_banner`` (from its boot image)
    and release string: Debian's when the banner's version says it was built by Debian's packaging, or, with
    no banner, when the release has Debian's "+debN" suffix; kernel.org's otherwise."""
    if banner:
        m = _DEBIAN_UTS_VERSION.search(banner)
        if m:
            return DEBIAN, f"the kernel's version string says 'Debian {m.group(1)}'"
        return MAINLINE, "no Debian package version in the kernel's version string"
    if release and _DEBIAN_RELEASE.search(release):
        return DEBIAN, f"the release {release} has Debian's '+deb' suffix"
    return MAINLINE, "no kernel version string read (no boot image, or none readable), and no '+deb' release"


def module_name(rec: ModuleRecord) -> str:
    """``info->name``, the name the loader prints: .modinfo's "name", else the module's own
    (kernel/module/main.c elf_validity_cache_copy)."""
    return next((v for k, v in rec.modinfo if k == "name" and v), rec.name)


def module_vermagic(rec: ModuleRecord) -> str | None:
    """The module's vermagic as check_modinfo() reads it: get_modinfo(info, "vermagic"), the first."""
    return next((v for k, v in rec.modinfo if k == "vermagic"), None)


def same_magic(modmagic: str, vermagic: str, has_crcs: bool) -> bool:
    """kernel/module/version.c same_magic() (``torvalds/linux@1cd9502ee927``): "First part is kernel
    version, which we ignore if module has crcs": with ``has_crcs`` both strings are compared from their
    first space on (``strcspn(magic, " ")``), else whole."""
    if has_crcs:
        modmagic = modmagic[len(modmagic.split(" ", 1)[0]):]
        vermagic = vermagic[len(vermagic.split(" ", 1)[0]):]
    return modmagic == vermagic


#: What every command says when no boot image gives the kernel's VERMAGIC_STRING.
VERMAGIC_UNKNOWN = "the kernel's vermagic is unknown (no boot image holding it): vermagic not compared"


@dataclass(frozen=True)
class ModinfoVermagic:
    """check_modinfo()'s decision on a module's vermagic, when it is not simply "same magic"."""

    refuses: bool  # -ENOEXEC
    tainted: bool  # try_to_force_load() let it through (CONFIG_MODULE_FORCE_LOAD)
    message: str | None  # the line the kernel prints, if any
    detail: str  # why, in one phrase


def check_modinfo(rec: ModuleRecord, vermagic: str | None, force_load: bool, modversions: bool = True,
                  tainted: bool = False) -> ModinfoVermagic | None:
    """check_modinfo()'s vermagic rule (kernel/module/main.c, v6.1 to 7.x; read in
    ``RSBAC/rsbac-6.18.y@a479fc948f9c:kernel/module/main.c``), run after check_modstruct_version()
    (early_mod_check; in 6.1 from layout_and_allocate(), after it too) and before simplify_symbols():

    * no vermagic: ``try_to_force_load(mod, "bad vermagic")``: -ENOEXEC without CONFIG_MODULE_FORCE_LOAD;
      with it "%s: bad vermagic: kernel tainted." unless the kernel has TAINT_FORCED_MODULE already
      (``tainted``: module_layout's own try_to_force_load() in this load);
    * ``!same_magic(modmagic, vermagic, info->index.vers)``: "%s: version magic '%s' should be '%s'",
      -ENOEXEC. ``info->index.vers`` is find_sec("__versions") (SHF_ALLOC only); without
      CONFIG_MODVERSIONS (``modversions`` False) internal.h's same_magic() is a plain strcmp().

    ``vermagic``: the kernel's VERMAGIC_STRING, None when unknown (then a module's vermagic is not
    compared, and only its absence decides). None: nothing to say (same magic, or not compared)."""
    modmagic = module_vermagic(rec)
    name = module_name(rec)
    if modmagic is None:
        if not force_load:
            return ModinfoVermagic(True, False, None, "no vermagic (-ENOEXEC)")
        return ModinfoVermagic(False, True, None if tainted else f"{name}: bad vermagic: kernel tainted.",
                               "no vermagic: kernel tainted (CONFIG_MODULE_FORCE_LOAD)")
    if vermagic is None:
        return None
    has_crcs = modversions and rec.versions is not None and rec.versions.alloc
    if same_magic(modmagic, vermagic, has_crcs):
        return None
    return ModinfoVermagic(True, False, f"{name}: version magic '{modmagic}' should be '{vermagic}'",
                           f"'{modmagic}' should be '{vermagic}'"
                           + ("" if has_crcs else " (no __versions: the release counts too)"))


@dataclass(frozen=True)
class Kernel:
    id: str
    release: tuple[int, int]
    force_load: bool  # CONFIG_MODULE_FORCE_LOAD
    profile: str = MAINLINE  # one of PROFILES
    hashed_names: bool = False  # the 2024 RFC's check_version(): long names match their hashed record

    @cached_property  # read for every module in every format: computed once
    def fails_closed(self) -> bool:
        """A ``__versions`` entry missing for a symbol refuses the load (Debian's patch), instead of
        warning once and loading."""
        return self.profile == DEBIAN

    @property
    def version(self) -> str:
        """The release as the kernel spells it: "6.13"."""
        return "{}.{}".format(*self.release)

    @cached_property
    def reads_extended(self) -> bool:
        return self.release >= (6, 14)

    def read(self, r: Reading) -> ConsumerView:
        """Load the module into this kernel, whose exports carry ``r.exp``'s CRCs.

        Without a tree (``r.exp`` the module's own), the exporters match the
        module's CRCs, and a symbol without any CRC is taken to be exported with
        one (as on every MODVERSIONS kernel); the same holds for a symbol missing
        from a tree's CRCs. Unresolved symbols are the dependency graph's business.
        """
        rec = r.rec
        ext = rec.ext_versions
        # The table check_version() walks. find_sec() ignores sections without SHF_ALLOC (main.c find_sec).
        source: BasicVersions | ExtVersions | None = rec.versions if rec.versions is not None and rec.versions.alloc \
            else None
        if self.reads_extended and ext is not None:
            has_crcs = ext.crcs_section_index is not None and ext.crcs_alloc
            has_names = ext.names_section_index is not None and ext.names_alloc
            if has_crcs != has_names:
                # elf_validity_cache_index_versions(): pr_err without a newline, -ENOEXEC
                return self._refused(rec, r.path, "extended version crc+name presence does not match")
            if has_crcs:
                if len(ext.entries) < ext.crc_count:
                    return self._refused(rec, r.path, "more extended version crcs than names")
                source = ext
        # check_modinfo() between module_layout and the other symbols, when the kernel's vermagic is
        # known: without a kernel (views of a format) the models judge the version tables alone.
        magic = None if r.vermagic is None else check_modinfo(rec, r.vermagic, self.force_load,
                                                              tainted=source is None and self.force_load)
        # check_version() prefers the extended tables. Its outcome depends on the module, the
        # table and check_modinfo()'s decision alone: kernels (and formats) reading equal tables
        # share it; force_load matters only without one.
        if source is None:
            walk = r.shared(("kernel", None, self.force_load), self._unversioned)
            if magic is not None and walk[6]:  # module_layout was let through: check_modinfo() next
                messages = (*walk[4], *([magic.message] if magic.message else []))
                walk = (REFUSES, (), (), (), messages, (), True) if magic.refuses else (*walk[:4], messages, *walk[5:])
        else:
            table = VersionTable.EXTENDED if isinstance(source, ExtVersions) else VersionTable.BASIC
            entries = source.entries
            if isinstance(source, BasicVersions) and self.hashed_names and rec.hashed_versions is not None:
                entries = hashed.matchable(source, rec.hashed_versions)
            closed = self.fails_closed and table == VersionTable.BASIC  # the patch changes the __versions walk alone
            walk = r.per_table(("kernel", table, closed, magic), entries,
                               lambda r: _check_versions(r, table, entries, closed, magic))
        verdict, checked, lost, unchecked, messages, false, reached_modinfo = walk
        if magic is not None and reached_modinfo:
            if verdict != REFUSES:  # the only decision left is the taint: no vermagic, CONFIG_MODULE_FORCE_LOAD
                verdict = LOADS_TAINTED
            return ConsumerView(self.id, r.path, verdict, checked, lost, self._misread(rec), unchecked, messages,
                                false, (magic.detail,))
        notes: tuple[str, ...] = ()
        if isinstance(source, ExtVersions) and verdict != REFUSES and (rec.versions is None or not rec.versions.alloc):
            notes = ("no __versions: vermagic must match exactly, release included (same_magic has_crcs=0)",)
        return ConsumerView(self.id, r.path, verdict, checked, lost, self._misread(rec), unchecked, messages, false,
                            notes)

    def _unversioned(self, r: Reading) -> tuple:
        """check_version() without versions: try_to_force_load(mod, symname) for each symbol."""
        if not self.force_load:
            return REFUSES, (), (), (), (), (), False  # -ENOEXEC at module_layout, without a word
        symbols = r.shared("loader-symbols", lambda r: loader_symbols(r.rec, r.exp))[0]
        unchecked = tuple(sym for sym, _ in symbols)
        unchecked_set = set(unchecked)
        lost = tuple(n for n in r.order if n in unchecked_set)
        name = r.shared("modname", _modname)
        return LOADS_TAINTED, (), lost, unchecked, (f"{name}: module_layout: kernel tainted.",), (), True

    def _refused(self, rec: ModuleRecord, path: str, message: str) -> ConsumerView:
        return ConsumerView(self.id, path, REFUSES, misread=self._misread(rec), messages=(message,))

    def _misread(self, rec: ModuleRecord) -> tuple[Modversion, ...]:
        """Records the loader reads from a table that is not in the fixed layout."""
        if rec.versions is None or rec.versions.well_formed or not rec.versions.alloc:
            return ()
        if self.reads_extended and rec.ext_versions is not None and rec.ext_versions.crcs_section_index is not None:
            return ()  # __versions is not consulted when the extended tables exist
        return rec.versions.entries

    def count(self, t: FormatTables) -> Counts:
        """:meth:`read`'s view counted, on the clean tables of a simulated format: 6.13 reads ``__versions``
        alone, 6.14 the extended tables first; the variable-length layout is read as fixed records
        (:meth:`_misread`); the RFC's kernel matches long names with their hashed records."""
        m = t.m
        table: dict[str, int] | None
        if self.reads_extended and t.ext_table is not None:
            # Debian's patch changes the __versions walk alone: a name missing from these does not fail.
            table, misread, closed = t.ext_table, 0, False
        else:
            closed = self.fails_closed
            if self.hashed_names and t.hashed_fmt:
                table, misread = m.all, 0  # hashed.matchable(): every name, short or long, finds its record
            elif isinstance(t.versions, str):
                table, misread = m.misread_table()
            else:
                table, misread = t.versions, 0
            if table is None:
                return m.once(_unversioned_counted, None) if self.force_load else _REFUSED
        # Kernels reading the same table alike share the walk (FORCE_LOAD matters only without one).
        return m.once(_walk_counted, table, misread, closed)


def _modname(r: Reading) -> str:
    return module_name(r.rec)


def _check_versions(r: Reading, table: VersionTable, entries: tuple[Modversion, ...], closed: bool = False,
                    magic: ModinfoVermagic | None = None) -> tuple:
    """version.c check_version() for each symbol of :func:`loader_symbols`, against ``entries``
    (``table`` EXTENDED or BASIC): the view's (verdict, visible, lost, unchecked, messages, false_messages,
    whether check_modinfo() was reached), from :func:`check_versions_walk`.

    The kernel scans the table and stops at the first strcmp() match; first-occurrence maps give the
    same answer without the quadratic scan."""
    name = r.shared("modname", _modname)
    symbols, known, unknown = r.shared("loader-symbols", lambda r: loader_symbols(r.rec, r.exp))
    first = dict(zip(map(attrgetter("name"), reversed(entries)), reversed(entries)))
    crcs = {n: e.crc for n, e in first.items()}
    dedotted = None
    if r.rec.elf.machine == EM_PPC64:
        # After module_layout, module_frob_arch_sections() has de-dotted the names and
        # dedotify_versions() dropped one leading '.' of each entry (arch/powerpc module_64.c).
        later = {e.name.removeprefix("."): e for e in reversed(entries)}
        dedotted = later, {n: e.crc for n, e in later.items()}
    verdict, checked, unchecked, events, false, reached, complete = check_versions_walk(
        symbols, known, unknown, first, crcs, r.truth, closed, magic, dedotted)
    missing = "%s: no extended symbol version for %s" if table == VersionTable.EXTENDED else "%s: no symbol version for %s"
    messages = []
    false_messages = []
    for kind, sym in events:
        if kind == _MISSING:
            messages.append(missing % (name, sym))
        elif kind == _UNKNOWN:
            messages.append(f"{name}: Unknown symbol {sym} (err -22)")
        elif kind == _DISAGREES:
            messages.append(f"{name}: disagrees about version of symbol {sym}")
            if false:
                false_messages.append(messages[-1])
        else:
            messages.append(sym)  # check_modinfo()'s own line
    unchecked_set = set(unchecked)
    lost = tuple(n for n in r.order if n in unchecked_set) if complete else ()
    return verdict, tuple(checked), lost, tuple(unchecked), tuple(messages), tuple(false_messages), reached


#: What check_version() prints of a symbol (:func:`check_versions_walk`): "no (extended) symbol version
#: for", simplify_symbols()' "Unknown symbol %s (err -22)", "disagrees about version of symbol"; and a
#: line of check_modinfo()'s.
_MISSING, _UNKNOWN, _DISAGREES, _MODINFO = "missing", "unknown", "disagrees", "modinfo"
_ABSENT = object()


def check_versions_walk(symbols: tuple[tuple[str, int | None], ...], known: Mapping[str, int],
                        unknown: tuple[str, ...], first: Mapping[str, Any], crcs: Mapping[str, int], truth: Mapping[str, int],
                        closed: bool, magic: ModinfoVermagic | None = None,
                        dedotted: tuple[Mapping[str, Any], Mapping[str, int]] | None = None) -> tuple:
    """The load as check_version() decides it, for each of ``symbols`` (:func:`loader_symbols`): (verdict,
    the entries checked (``first``'s values), the symbols unchecked, the lines printed as (kind, symbol),
    whether the "disagrees" line is false, whether check_modinfo() was reached, whether the walk ended
    normally (then the unchecked imports are the versions lost)).

    ``known``, ``unknown``: the symbols' known CRCs, the symbols without one (:func:`loader_symbols`).
    ``first``/``crcs``: the table's first entry and CRC of each name; ``dedotted``: the same for the names
    looked up after module_layout, on ppc64. ``magic``: check_modinfo()'s decision, taken once
    module_layout has passed (check_modstruct_version() comes first): a refusal ends the load there,
    before any other symbol is resolved.

    ``closed``: Debian's check_version(), where a symbol missing from ``__versions`` prints
    "no symbol version for" each time (pr_warn) and fails (return 0): for module_layout,
    check_modstruct_version() fails and load_module() ends with -ENOEXEC; for any other
    symbol resolve_symbol() makes it ERR_PTR(-EINVAL), simplify_symbols() prints "Unknown
    symbol %s (err -22)" and goes on with the next symbol, and the load fails after the walk.

    version.c compares ``versions[i].crc == *crc``, the whole unsigned long against the exporter's u32
    (1cd9502ee927): a record whose upper half is not zero (a misread layout) never matches. On a
    MODVERSIONS kernel every export has a CRC; when we do not know it (want None) a found entry is
    taken to match."""
    if dedotted is None and magic is None and known.items() <= crcs.items() and all(map(crcs.__contains__, unknown)):
        return LOADS, [first[sym] for sym, _ in symbols], [], [], False, True, True  # all found, all equal
    events: list[tuple[str, str]] = []
    unchecked: list[str] = []
    checked: list[Any] = []
    warned = False  # pr_warn_once(): once per call site per boot; one module here

    def modinfo_refuses() -> bool:
        """check_modinfo(), after module_layout: its line, and whether it ends the load."""
        if magic is None:
            return False
        if magic.message:
            events.append((_MODINFO, magic.message))
        return magic.refuses

    for i, (sym, want) in enumerate(symbols):
        if i == 1:
            if modinfo_refuses():
                return REFUSES, [], [], events, False, True, False
            if dedotted is not None:
                first, crcs = dedotted
        crc = crcs.get(sym, _ABSENT)
        if crc is _ABSENT:
            unchecked.append(sym)
            if closed:
                events.append((_MISSING, sym))
                if not i:
                    return REFUSES, checked, unchecked, events, False, False, False
                events.append((_UNKNOWN, sym))
            elif not warned:
                warned = True
                events.append((_MISSING, sym))
            continue
        checked.append(first[sym])
        if want is not None and crc != want:
            events.append((_DISAGREES, sym))
            if i:
                events.append((_UNKNOWN, sym))
            return REFUSES, checked, unchecked, events, truth.get(sym) == want, i > 0, False
    if len(symbols) == 1 and modinfo_refuses():  # module_layout alone: check_modinfo() after it all the same
        return REFUSES, [], [], events, False, True, False
    if closed and unchecked:  # Debian: each symbol without an entry failed in simplify_symbols()
        return REFUSES, checked, unchecked, events, False, True, True
    return (LOADS_UNCHECKED if unchecked else LOADS), checked, unchecked, events, False, True, True


def loader_symbols(rec: ModuleRecord, exp: Mapping[str, int]) -> tuple[tuple[tuple[str, int | None], ...],
                                                                      dict[str, int], tuple[str, ...]]:
    """The symbols the loader checks, as (name looked up, exporter's CRC or None); the known CRCs by name;
    the names whose CRC is not known.

    check_modstruct_version() runs first (early_mod_check), with module_layout: a
    failure there is -ENOEXEC before any other symbol is looked at. Then
    simplify_symbols() walks .symtab and resolve_symbol() checks each UND symbol,
    on ppc64 by its de-dotted name (module_frob_arch_sections).
    """
    names = [imp.name for imp in rec.imports]
    if rec.elf.machine == EM_PPC64:
        names = list(map(str.removeprefix, names, repeat(".")))
    if ".TOC." in names or "TOC." in names:
        names = [n for n in names if n != ".TOC." and n != "TOC."]  # made SHN_ABS by dedotify() on ppc64
    out = (("module_layout", exp.get("module_layout")), *zip(names, map(exp.get, names)))
    known = {sym: want for sym, want in out if want is not None}
    return out, known, tuple(sym for sym, want in out if want is None) if len(known) < len(out) else ()


# -- counted on a simulated format's clean tables (tally.py) -------------------------------------------------

_REFUSED = Counts(0, 0, 0, 0, 0, 0, REFUSES)  # -ENOEXEC at module_layout, without a word


def _walk_counted(m: ModuleTally, table: dict[str, int], misread: int, closed: bool) -> Counts:
    symbols, known, unknown = m.loader
    verdict, checked, unchecked, events, false, _, complete = check_versions_walk(
        symbols, known, unknown, table, table, m.truth, closed)
    lost = len(m.truth.keys() & unchecked) if complete and unchecked else 0
    return Counts(len(checked), lost, misread, len(unchecked), len(events), int(false), verdict)


def _unversioned_counted(m: ModuleTally, _: None) -> Counts:
    """Kernel._unversioned() with CONFIG_MODULE_FORCE_LOAD, counted: every symbol unchecked, one taint line."""
    symbols = m.loader[0]
    return Counts(0, len(m.truth.keys() & dict(symbols).keys()), 0, len(symbols), 1, 0, LOADS_TAINTED)
