"""The kernel's module loader: does it check, refuse, or load the module?

Modelled on kernel/module/main.c and kernel/module/version.c (docs/formats.md §1.5;
``RSBAC/rsbac-6.18.y@a479fc948f9c:kernel/module/main.c`` and
``torvalds/linux@e72a6c89bd46:kernel/module/version.c``), for a kernel built
with CONFIG_MODVERSIONS. Two releases matter:

* 6.13: only ``__versions`` exists for the loader;
* 6.14 (commit 54ac1ac8edeb "modules: Support extended MODVERSIONS info"):
  ``elf_validity_cache_index_versions()`` also indexes the extended tables,
  and ``check_version()`` prefers them.

Each may be built with CONFIG_MODULE_FORCE_LOAD, which turns "no versions"
into a taint instead of a refusal. The loader cannot be run here: every
rule below cites the line it models and is tested on fixtures.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

from ..elf.layout import EM_PPC64
from ..records import ModuleRecord, Modversion
from .base import LOADS, LOADS_TAINTED, LOADS_UNCHECKED, REFUSES, ConsumerView, Reading


@dataclass(frozen=True)
class Kernel:
    id: str
    release: tuple[int, int]
    force_load: bool  # CONFIG_MODULE_FORCE_LOAD

    @property
    def version(self) -> str:
        """The release as the kernel spells it: "6.13"."""
        return "{}.{}".format(*self.release)

    @property
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
        # find_sec() ignores sections without SHF_ALLOC (main.c find_sec).
        table = "vers" if rec.versions is not None and rec.versions.alloc else None
        if self.reads_extended and ext is not None:
            has_crcs = ext.crcs_section_index is not None and ext.crcs_alloc
            has_names = ext.names_section_index is not None and ext.names_alloc
            if has_crcs != has_names:
                # elf_validity_cache_index_versions(): pr_err without a newline, -ENOEXEC
                return self._refused(rec, r.path, "extended version crc+name presence does not match")
            if has_crcs:
                if len(ext.entries) < ext.crc_count:
                    return self._refused(rec, r.path, "more extended version crcs than names")
                table = "ext"
        # check_version() prefers the extended tables. Its outcome depends on the module and the
        # table alone: kernels (and formats) reading equal tables share it; force_load matters
        # only without one.
        if table is None:
            walk = r.shared(("kernel", None, self.force_load), self._unversioned)
        else:
            entries = ext.entries if table == "ext" else rec.versions.entries
            walk = r.per_table(("kernel", table), entries, lambda r: _check_versions(r, table, entries))
        verdict, checked, lost, unchecked, messages, false = walk
        notes = ()
        if table == "ext" and verdict != REFUSES and (rec.versions is None or not rec.versions.alloc):
            notes = ("no __versions: vermagic must match exactly, release included (same_magic has_crcs=0)",)
        return ConsumerView(self.id, r.path, verdict, checked, lost, self._misread(rec), unchecked, messages, false,
                            notes)

    def _unversioned(self, r: Reading) -> tuple:
        """check_version() without versions: try_to_force_load(mod, symname) for each symbol."""
        if not self.force_load:
            return REFUSES, (), (), (), (), ()  # -ENOEXEC at module_layout, without a word
        symbols, _ = r.shared("loader-symbols", _loader_symbols)
        unchecked = tuple(sym for sym, _ in symbols)
        unchecked_set = set(unchecked)
        lost = tuple(n for n in r.order if n in unchecked_set)
        name = r.shared("modname", _modname)
        return LOADS_TAINTED, (), lost, unchecked, (f"{name}: module_layout: kernel tainted.",), ()

    def _refused(self, rec: ModuleRecord, path: str, message: str) -> ConsumerView:
        return ConsumerView(self.id, path, REFUSES, misread=self._misread(rec), messages=(message,))

    def _misread(self, rec: ModuleRecord) -> tuple[Modversion, ...]:
        """Records the loader reads from a table that is not in the fixed layout."""
        if rec.versions is None or rec.versions.well_formed or not rec.versions.alloc:
            return ()
        if self.reads_extended and rec.ext_versions is not None and rec.ext_versions.crcs_section_index is not None:
            return ()  # __versions is not consulted when the extended tables exist
        return rec.versions.entries


def _modname(r: Reading) -> str:
    return next((v for k, v in r.rec.modinfo if k == "name" and v), r.rec.name)


def _check_versions(r: Reading, table: str, entries: tuple[Modversion, ...]) -> tuple:
    """version.c check_version() for each symbol of :func:`_loader_symbols`, against ``entries``
    (``table`` "ext" or "vers"): the view's (verdict, visible, lost, unchecked, messages, false_messages)."""
    truth = r.truth
    name = r.shared("modname", _modname)
    symbols, known = r.shared("loader-symbols", _loader_symbols)
    missing = "%s: no extended symbol version for %s" if table == "ext" else "%s: no symbol version for %s"
    # The kernel scans the table and stops at the first strcmp() match; a
    # first-occurrence map gives the same answer without the quadratic scan.
    names = list(map(attrgetter("name"), reversed(entries)))
    first = dict(zip(names, reversed(entries)))
    ppc64 = r.rec.elf.machine == EM_PPC64
    if not ppc64:
        found = list(map(first.get, [sym for sym, _ in symbols]))
        if None not in found and known.items() <= dict(zip(names, map(attrgetter("crc"), reversed(entries)))).items():
            return LOADS, tuple(found), (), (), (), ()  # every symbol found, every known CRC equal
    messages: list[str] = []
    false: list[str] = []
    unchecked: list[str] = []
    checked: list[Modversion] = []
    warned = False  # pr_warn_once(): once per call site per boot; one module here
    for i, (sym, want) in enumerate(symbols):
        if i == 1 and ppc64:
            # After module_layout, module_frob_arch_sections() has de-dotted the names and
            # dedotify_versions() dropped one leading '.' of each entry (arch/powerpc module_64.c).
            first = {e.name.removeprefix("."): e for e in reversed(entries)}
        e = first.get(sym)
        if e is None:
            if not warned:
                warned = True
                messages.append(missing % (name, sym))
            unchecked.append(sym)
            continue
        checked.append(e)
        # version.c: `versions[i].crc == *crc`, the whole unsigned long against
        # the exporter's u32 (1cd9502ee927): a record whose upper half is not
        # zero (a misread layout) never matches. On a MODVERSIONS kernel every
        # export has a CRC; when we do not know it (want None) a found entry is
        # taken to match.
        if want is not None and e.crc != want:
            line = f"{name}: disagrees about version of symbol {sym}"
            messages.append(line)
            if truth.get(sym) == want:
                false.append(line)
            if i:
                messages.append(f"{name}: Unknown symbol {sym} (err -22)")
            return REFUSES, tuple(checked), (), tuple(unchecked), tuple(messages), tuple(false)
    unchecked_set = set(unchecked)
    lost = tuple(n for n in r.order if n in unchecked_set)
    return (LOADS_UNCHECKED if unchecked else LOADS), tuple(checked), lost, tuple(unchecked), tuple(messages), ()


def _loader_symbols(r: Reading) -> tuple[tuple[tuple[str, int | None], ...], dict[str, int]]:
    """The symbols the loader checks, as (name looked up, exporter's CRC or None); the known CRCs by name.

    check_modstruct_version() runs first (early_mod_check), with module_layout: a
    failure there is -ENOEXEC before any other symbol is looked at. Then
    simplify_symbols() walks .symtab and resolve_symbol() checks each UND symbol,
    on ppc64 by its de-dotted name (module_frob_arch_sections).
    """
    ppc64 = r.rec.elf.machine == EM_PPC64
    exp = r.exp
    out = [("module_layout", exp.get("module_layout"))]
    for imp in r.rec.imports:
        sym = imp.name.removeprefix(".") if ppc64 else imp.name
        if sym == ".TOC." or sym == "TOC.":
            continue  # made SHN_ABS by dedotify() on ppc64
        out.append((sym, exp.get(sym)))
    return tuple(out), {sym: want for sym, want in out if want is not None}

