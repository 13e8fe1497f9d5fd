"""The kernel's module loader: does it check, refuse, or load the module?

Modelled on kernel/module/main.c and kernel/module/version.c (FORMATS.md §1.5;
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

from collections.abc import Mapping
from dataclasses import dataclass

from ..records import ModuleRecord, Modversion
from .base import LOADS, LOADS_TAINTED, LOADS_UNCHECKED, REFUSES, ConsumerView, exporter_crcs, versioned_order


@dataclass(frozen=True)
class Kernel:
    id: str
    release: tuple[int, int]
    force_load: bool  # CONFIG_MODULE_FORCE_LOAD

    @property
    def reads_extended(self) -> bool:
        return self.release >= (6, 14)

    def view(self, rec: ModuleRecord, expected: Mapping[str, int] | None = None,
             truth: Mapping[str, int] | None = None, path: str | None = None,
             judge_unknown: bool | None = None) -> ConsumerView:
        """Load ``rec`` into this kernel, whose exports carry the ``expected`` CRCs.

        ``expected`` None: the exporters match the module's own CRCs, and a
        symbol without any CRC is taken to be exported with one (as on every
        MODVERSIONS kernel); the same holds for a symbol missing from a given
        ``expected``. Unresolved symbols are the dependency graph's business
        (``judge_unknown`` is accepted for a uniform signature).
        """
        path = rec.path if path is None else path
        ppc64 = rec.elf.machine == 21
        own = exporter_crcs(rec)
        exp = own if expected is None else expected
        truth = own if truth is None else truth
        name = next((v for k, v in rec.modinfo if k == "name" and v), rec.name)
        messages: list[str] = []
        false: list[str] = []
        unchecked: list[str] = []
        warned_once: set[str] = set()

        def warn_once(fmt: str, sym: str) -> None:
            # pr_warn_once(): once per call site per boot; one module here.
            if fmt not in warned_once:
                warned_once.add(fmt)
                messages.append(fmt % (name, sym))

        # find_sec() ignores sections without SHF_ALLOC (main.c find_sec).
        vers = rec.versions if rec.versions is not None and rec.versions.alloc else None
        ext_entries: tuple[Modversion, ...] | None = None
        ext = rec.ext_versions
        if self.reads_extended and ext is not None:
            has_crcs = ext.crcs_section_index is not None and ext.crcs_alloc
            has_names = ext.names_section_index is not None and ext.names_alloc
            if has_crcs != has_names:
                # elf_validity_cache_index_versions(): pr_err without a newline, -ENOEXEC
                messages.append("extended version crc+name presence does not match")
                return self._refused(rec, path, messages)
            if has_crcs:
                if len(ext.entries) < ext.crc_count:
                    messages.append("more extended version crcs than names")
                    return self._refused(rec, path, messages)
                ext_entries = ext.entries
        tainted = False
        checked: list[Modversion] = []
        dedotted = False  # module_frob_arch_sections() has run (ppc64: after module_layout)

        def first_by_name(entries, strip: bool) -> dict[str, Modversion]:
            # The kernel scans the table and stops at the first strcmp() match; a
            # first-occurrence map gives the same answer without the quadratic scan.
            out: dict[str, Modversion] = {}
            for e in entries:
                out.setdefault(e.name.removeprefix(".") if strip else e.name, e)
            return out

        tables: dict[tuple[str, bool], dict[str, Modversion]] = {}

        def lookup(kind: str, entries, sym: str) -> Modversion | None:
            key = (kind, dedotted)
            if key not in tables:
                tables[key] = first_by_name(entries, dedotted)
            return tables[key].get(sym)

        def check_version(sym: str) -> bool | None:
            """version.c check_version(): True ok, False mismatch, None refused (no versions, no force)."""
            nonlocal tainted
            # On a MODVERSIONS kernel every export has a CRC; when we do not know it
            # (want None) the lookup still runs and a found entry is taken to match.
            want = exp.get(sym)
            if ext_entries is not None:
                return compare("ext", ext_entries, sym, want, "%s: no extended symbol version for %s")
            if vers is None:
                # try_to_force_load(mod, symname)
                if not self.force_load:
                    return None
                if not tainted:
                    messages.append(f"{name}: {sym}: kernel tainted.")
                tainted = True
                unchecked.append(sym)
                return True
            return compare("vers", vers.entries, sym, want, "%s: no symbol version for %s")

        def compare(kind: str, entries, sym: str, want: int | None, missing: str) -> bool:
            """The table walk of check_version(): the first entry named ``sym`` decides."""
            # dedotify_versions() drops one leading '.' of each entry (arch/powerpc module_64.c)
            e = lookup(kind, entries, sym)
            if e is not None:
                checked.append(e)
                # version.c: `versions[i].crc == *crc`, the whole unsigned long against
                # the exporter's u32 (1cd9502ee927): a record whose upper half is not
                # zero (a misread layout) never matches.
                return want is None or e.crc == want
            warn_once(missing, sym)
            unchecked.append(sym)
            return True

        def mismatch(sym: str) -> None:
            line = f"{name}: disagrees about version of symbol {sym}"
            messages.append(line)
            if truth.get(sym) == exp.get(sym):
                false.append(line)

        # check_modstruct_version() runs first (early_mod_check), with module_layout;
        # a failure there is -ENOEXEC before any other symbol is looked at.
        ok = check_version("module_layout")
        if ok is None:
            return self._refused(rec, path, messages, unchecked, checked)
        if ok is False:
            mismatch("module_layout")
            return self._refused(rec, path, messages, unchecked, checked, false)
        # simplify_symbols() walks .symtab; resolve_symbol() checks each UND symbol.
        # ppc64 de-dots names first (module_frob_arch_sections, after module_layout).
        dedotted = ppc64
        for imp in rec.imports:
            sym = imp.name.removeprefix(".") if ppc64 else imp.name
            if sym == ".TOC." or sym == "TOC.":
                continue  # made SHN_ABS by dedotify() on ppc64
            ok = check_version(sym)
            if ok is None:
                return self._refused(rec, path, messages, unchecked, checked)
            if ok is False:
                mismatch(sym)
                messages.append(f"{name}: Unknown symbol {sym} (err -22)")
                return self._refused(rec, path, messages, unchecked, checked, false)
        notes = []
        if ext_entries is not None and vers is None:
            notes.append("no __versions: vermagic must match exactly, release included (same_magic has_crcs=0)")
        if tainted:
            verdict = LOADS_TAINTED
        elif unchecked:
            verdict = LOADS_UNCHECKED
        else:
            verdict = LOADS
        unchecked_set = set(unchecked)
        lost = tuple(n for n in versioned_order(rec, truth) if n in unchecked_set)
        return ConsumerView(self.id, path, verdict, tuple(checked), lost, self._misread(rec), tuple(unchecked),
                            tuple(messages), tuple(false), tuple(notes))

    def _refused(self, rec: ModuleRecord, path: str, messages: list[str], unchecked: list[str] = (),
                 checked: list[Modversion] = (), false: list[str] = ()) -> ConsumerView:
        return ConsumerView(self.id, path, REFUSES, tuple(checked), (), self._misread(rec), tuple(unchecked),
                            tuple(messages), tuple(false))

    def _misread(self, rec: ModuleRecord) -> tuple[Modversion, ...]:
        """Records the loader reads from a table that is not in the fixed layout."""
        if rec.versions is None or rec.versions.well_formed or not rec.versions.alloc:
            return ()
        if self.reads_extended and rec.ext_versions is not None and rec.ext_versions.crcs_section_index is not None:
            return ()  # __versions is not consulted when the extended tables exist
        return rec.versions.entries


KERNEL_6_13 = Kernel("kernel-6.13", (6, 13), False)
KERNEL_6_13_FORCE = Kernel("kernel-6.13+force", (6, 13), True)
KERNEL_6_14 = Kernel("kernel-6.14", (6, 14), False)
KERNEL_6_14_FORCE = Kernel("kernel-6.14+force", (6, 14), True)
KERNELS = (KERNEL_6_13, KERNEL_6_13_FORCE, KERNEL_6_14, KERNEL_6_14_FORCE)
