"""libkmod/libkmod-elf.c: the readers depmod and modprobe take a module's symbols and versions from.

Each function mirrors one libkmod entry point on a parsed record, following
the release's :class:`~kmodcompat.kmod.profile.Kmod` profile (kmod v30, v34.2,
PR #270; docs/formats.md §3). A failing call raises :class:`KmodError` with the
errno libkmod returns.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from functools import partial
from itertools import compress, repeat
from operator import attrgetter, not_
from typing import NamedTuple

from ..errors import ModuleReadError
from ..modversions import dedot
from ..elf.layout import STB_WEAK
from ..records import MODVERSION_ENTRY_SIZE, ModuleRecord, Modversion, all_terminated
from .profile import Kmod


class KmodError(Exception):
    """A libkmod call failing with an errno; ``str()`` is strerror()."""

    def __init__(self, err: int):
        self.errno = err
        super().__init__(os.strerror(err))


class KmodAbort(Exception):
    """libkmod would fail an assert() here: the tool aborts (SIGABRT), printing ``line(program)``."""

    #: ModuleReadError codes of the images kmod_elf_new() aborts on (elf.image.ElfImage), by assertion.
    OPEN_CODES = {"shstrndx-undef": "idx != SHN_UNDEF", "shstrndx-invalid": "idx < elf->header.section.count"}

    def __init__(self, kmod: Kmod, expression: str):
        function, line = kmod.section_assert
        self.assertion = (f"../libkmod/libkmod-elf.c:{line + (expression != 'idx != SHN_UNDEF')}: {function}: "
                          f"Assertion `{expression}' failed.")
        super().__init__(self.assertion)

    def line(self, program: str) -> str:
        """glibc's __assert_fail() message: ``PROGRAM: FILE:LINE: FUNCTION: Assertion `EXPR' failed.``"""
        return f"{program}: {self.assertion}"


def open_abort(kmod: Kmod, err: ModuleReadError) -> KmodAbort | None:
    """The abort kmod_elf_new() ends in for an image ``err`` refuses, if it is one."""
    expression = KmodAbort.OPEN_CODES.get(err.code)
    return KmodAbort(kmod, expression) if expression is not None else None


class KmodSymbol(NamedTuple):
    """A symbol as libkmod reports it: name, CRC (0 when unversioned), weak binding."""

    name: str
    crc: int
    weak: bool


_name = attrgetter("name")
_crc = attrgetter("crc")
_binding = attrgetter("binding")
#: KmodSymbol from a (name, crc, weak) tuple without the NamedTuple's Python-level
#: __new__ (as records._unpickle_flat builds rows): a tree's 190k dependency symbols in C.
_new_symbol = partial(tuple.__new__, KmodSymbol)


def get_modversions(kmod: Kmod, rec: ModuleRecord) -> tuple[Modversion, ...]:
    """kmod_elf_get_modversions(): ``__versions`` only, leading '.' stripped
    (the table's own tuple when no name has a dot).

    Raises KmodError as libkmod returns it: missing section (ENOENT/ENODATA),
    size not a multiple of 64, or (v34) a name without NUL (EINVAL). PR #270
    reads the extended tables instead when both exist.
    """
    if kmod.reads_extended and rec.section("__version_ext_crcs") and rec.section("__version_ext_names"):
        return _extended_modversions(rec)
    sec = rec.section("__versions")
    if sec is None:
        raise KmodError(kmod.missing_section_errno)
    if sec.offset + sec.size > rec.image_size:
        raise KmodError(errno.EINVAL)
    if sec.size == 0:
        return ()
    if sec.size % MODVERSION_ENTRY_SIZE:
        raise KmodError(errno.EINVAL)
    entries = rec.versions.entries if rec.versions is not None else ()
    if kmod.names_must_be_terminated and not all_terminated(entries):
        raise KmodError(errno.EINVAL)
    return dedot(entries)


def _extended_modversions(rec: ModuleRecord) -> tuple[Modversion, ...]:
    """PR #270 ffe6c67 "libkmod: Support EXTENDED_MODVERSIONS": crc size must be a
    multiple of 4, then crc_size/4 names are walked; running out of names or an
    unterminated one is EINVAL; one leading '.' is stripped (docs/formats.md §3.3, §3.12)."""
    ext = rec.ext_versions
    if ext is None or ext.crcs_size % 4 or len(ext.entries) < ext.crc_count:
        raise KmodError(errno.EINVAL)
    return dedot(ext.entries)


def get_symbols(kmod: Kmod, rec: ModuleRecord) -> list[KmodSymbol]:
    """kmod_elf_get_symbols(): what depmod and ``--show-exports`` take as exports.

    ``__crc_*`` symbols first (name, resolved CRC, binding, in .symtab
    order); only when there is none (no MODVERSIONS, or nothing exported),
    every non-empty string of ``__ksymtab_strings`` with CRC 0. Since
    kernel 5.4 that fallback also yields namespace names (docs/formats.md §3.5).
    """
    if rec.crc_symbols:
        if any(f.code == "crc-section-invalid" for f in rec.findings):  # kmod_elf_resolve_crc()
            raise KmodAbort(kmod, "idx < elf->header.section.count")
        return [KmodSymbol(c.name, c.crc, c.binding == STB_WEAK) for c in rec.crc_symbols]
    if rec.ksymtab_strings is None:
        raise KmodError(kmod.missing_section_errno)  # the fallback's section lookup fails
    if kmod.names_must_be_terminated and not rec.ksymtab_strings_terminated:
        raise KmodError(errno.EINVAL)  # v34 (e5ef157): __ksymtab_strings must end with NUL
    return [KmodSymbol(name, 0, False) for name in rec.ksymtab_strings]


def get_dependency_symbols(kmod: Kmod, rec: ModuleRecord) -> list[KmodSymbol]:
    """kmod_elf_get_dependency_symbols(): depmod's imports with the CRC it compares.

    Each UND symbol takes the CRC of the first ``__versions`` entry of the
    same name (exact match, no de-dotting), else 0: there is no zero guard
    later, so an import versioned only in the extended tables "disagrees"
    under ``depmod -e -E``. Entries no import matched (``module_layout``)
    are appended. A ``__versions`` whose size is not a multiple of 64 counts
    as absent. v34 skips unterminated names while matching and fails the
    whole call (EINVAL) if one is left unmatched.
    """
    imports = rec.imports
    names = list(map(_name, imports))
    crcs, rest = match_versions(dependency_versions(kmod, rec), names)
    weak = map(STB_WEAK.__eq__, map(_binding, imports))  # Import.weak, without a call per import
    return list(map(_new_symbol, zip(names, map(crcs.get, names, repeat(0)), weak))) + \
        [KmodSymbol(e.name, e.crc, False) for e in rest]


def dependency_versions(kmod: Kmod, rec: ModuleRecord) -> tuple[Modversion, ...]:
    """The table kmod_elf_get_dependency_symbols() matches the imports against.

    Raises KmodError where the whole call fails.
    """
    entries: tuple[Modversion, ...] = ()
    if kmod.reads_extended:
        # PR #270 4e79a46 "Centralize modversions parsing": ENODATA means no versions,
        # any other error is returned and depmod drops the module's dependencies.
        # Analysis (the PR branch is not in the stored sources): the entries come
        # back de-dotted while .symtab names keep their dot, so on ppc64 ELFv1 the
        # strcmp() match below fails and dotted imports compare CRC 0.
        try:
            entries = get_modversions(kmod, rec)
        except KmodError as e:
            if e.errno != kmod.missing_section_errno:
                raise
    elif rec.versions is not None and rec.versions.well_formed:
        entries = rec.versions.entries
    # An unterminated name is skipped while matching, so it is always left over: EINVAL.
    if kmod.names_must_be_terminated and not all_terminated(entries):
        raise KmodError(errno.EINVAL)
    return entries


def match_versions(entries: tuple[Modversion, ...],
                   import_names: Iterable[str]) -> tuple[dict[str, int], list[Modversion]]:
    """kmod_elf_get_dependency_symbols()'s strcmp() match: each import name's CRC, from the first
    entry of that name; the entries no import took, in order."""
    names = list(map(_name, entries))
    crcs = dict(zip(names, map(_crc, entries)))
    if len(crcs) == len(names):
        # Every name once (modpost writes each symbol once): an entry is left over
        # exactly when no import names it.
        imported = set(import_names)
        return crcs, list(compress(entries, map(not_, map(imported.__contains__, names))))
    first = dict(zip(reversed(names), range(len(names) - 1, -1, -1)))  # the lowest index of each name wins
    visited = set(map(first.get, import_names))
    visited.discard(None)  # imports no entry versions
    rest = [e for i, e in enumerate(entries) if i not in visited]
    return dict(zip(reversed(names), map(_crc, reversed(entries)))), rest
