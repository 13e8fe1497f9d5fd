"""The kernel's own files next to a module tree: where the kernel's exports come from, and reading them.

Every command that needs vmlinux's exports (report, views, diff, ``depmod
--kernel-image``, symvers) asks :func:`kernel_source`, which takes the first
source that gives them, in this order:

1. what the user named: ``-E Module.symvers``, ``--kernel-image FILE``,
   ``-F System.map`` (each as depmod would be given it; ``-E`` preferred, as
   depmod ignores ``-F`` then);
2. the tree's Module.symvers where distributions install it (Debian's
   linux-headers package, the tree's ``build/`` link, Fedora's, RHEL's and
   SUSE's ``/boot/symvers-KVER.gz``, ``/usr/lib/modules/KVER/symvers.gz``):
   names, CRCs, GPL-only flags, namespaces;
3. the boot image (``boot/vmlinuz-KVER`` of the tree, so ``/boot`` for the
   running kernel; files/kernel_image.py): the same fields, from the linked
   ``__ksymtab*``/``__kcrctab*`` tables;
4. a real System.map (``boot/System.map-KVER``): names only;
5. ``/proc/kallsyms`` when the tree is the running kernel's: names only.

A System.map without a single ``__ksymtab_`` line is nothing: Debian's
linux-image ships a one-line placeholder (``ffffffffffffffff B The real
System.map is in the linux-image-<version>-dbg package``), and an empty file
says no more. When no source gives the exports they are *unknown*: what no
module exports is then not checkable, never "unresolved" (report/).
:meth:`KernelSource.line` is the one line each command prints about it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..depmod.kernel_symbols import (KernelSymbols, KernelSymbolsError, load_module_symvers, load_system_map,
                                     symvers_symbols)
from .bounded import SYSTEM_MAP, read_input
from .kernel_image import KernelExports, KernelImageError, find_image, read_kernel_image
from .symvers import KERNEL_MODULE, Symvers, SymversEntry, export_type

if TYPE_CHECKING:
    from ..depmod.tree import ModuleTree

__all__ = ["KERNEL_SOURCES", "KernelSource", "KernelSourceError", "find_kernel_files", "image_symvers",
           "kernel_files", "kernel_source", "load_kernel", "tree_base"]

SYMVERS, IMAGE, SYSTEM_MAP_SOURCE, KALLSYMS = "Module.symvers", "boot image", "System.map", "/proc/kallsyms"
#: The sources, in the order they are taken.
KERNEL_SOURCES = (SYMVERS, IMAGE, SYSTEM_MAP_SOURCE, KALLSYMS)
KALLSYMS_PATH = "/proc/kallsyms"
#: The fewest ``__ksymtab_`` names a /proc/kallsyms must list to count: the smallest Debian kernel
#: exports 8,355 symbols (bookworm s390x); a kernel without CONFIG_KALLSYMS_ALL lists none of them
#: but its ``__start___ksymtab*`` markers (seen: 2), which must not pass for a whole list.
KALLSYMS_MIN_EXPORTS = 1000
#: The first line of Debian's placeholder System.map (linux-image's debian/rules.real).
PLACEHOLDER = b"The real System.map is in the linux-image-"


class KernelSourceError(Exception):
    """A source the user named explicitly cannot be used: ``str()`` is the one line "<path>: <reason>"."""


def base_of(dirname: str, kver: str) -> str:
    """BASEDIR of a module directory: without ``[usr/]lib/modules/KVER``."""
    d = dirname.rstrip("/")
    for suffix in (f"/usr/lib/modules/{kver}", f"/lib/modules/{kver}"):
        if d.endswith(suffix):
            return d[: -len(suffix)] or "/"
    return os.path.dirname(d)


def tree_base(tree: ModuleTree) -> str:
    """BASEDIR of a tree: its module directory without ``[usr/]lib/modules/KVER``."""
    return base_of(tree.dirname, tree.kver)


def kernel_files(dirname: str, kver: str) -> dict[str, str]:
    """Module.symvers and System.map of the kernel of the module directory ``dirname``, where distributions
    put them (the first that exists of each)."""
    base = base_of(dirname, kver)
    j = lambda *p: os.path.join(base, *p)  # noqa: E731
    candidates = {
        "symvers": [j("usr/src", f"linux-headers-{kver}", "Module.symvers"), os.path.join(dirname, "build",
                    "Module.symvers"), j("boot", f"symvers-{kver}.gz"), j("usr/lib/modules", kver, "symvers.gz")],
        "system_map": [j("boot", f"System.map-{kver}"), os.path.join(dirname, "System.map")],
    }
    return {k: next(p for p in ps if os.path.isfile(p)) for k, ps in candidates.items()
            if any(os.path.isfile(p) for p in ps)}


def find_kernel_files(tree: ModuleTree) -> dict[str, str]:
    """Module.symvers and System.map of the tree's kernel, where distributions put them."""
    return kernel_files(tree.dirname, tree.kver)


def load_kernel(symvers: str | None, system_map: str | None) -> tuple[KernelSymbols | None, list[str]]:
    """The kernel's exports as depmod loads them, from the first of the two that reads, and a note (file and
    reason) per one that does not. A Module.symvers keeps every field (:attr:`KernelSymbols.symvers`)."""
    notes: list[str] = []
    for path, loader in ((symvers, load_module_symvers), (system_map, load_system_map)):
        if path is None:
            continue
        try:
            return loader(path, gunzip=path.endswith(".gz")), notes
        except KernelSymbolsError as e:
            notes.append(f"{path}: {e.strerror}")
    return None, notes


def image_symvers(kernel: KernelExports) -> Symvers:
    """vmlinux's lines of a Module.symvers, from the image's exports (CRC 0 without MODVERSIONS, as modpost
    writes them), in ``__ksymtab_strings`` order (see cli/symvers.py)."""
    exports = kernel.exports or ()
    order = kernel.link_order or range(len(exports))
    entries = []
    for n, i in enumerate(order, 1):
        e = exports[i]
        crc = (e.crc or 0) & 0xFFFFFFFF
        entries.append(SymversEntry(n, f"0x{crc:08x}", crc, e.name, KERNEL_MODULE,
                                    export_type(e.gpl_only), e.namespace or None))
    return Symvers(kernel.path, tuple(entries), False)


@dataclass(frozen=True)
class KernelSource:
    """The kernel's exports for one tree or set of modules, where they came from and what they lack."""

    kind: str | None  # one of KERNEL_SOURCES; None: the exports are unknown
    path: str | None
    symbols: KernelSymbols | None  # depmod's view: check_symvers when the source has CRCs
    crcs: bool = False
    gpl_flags: bool = False
    namespaces: bool = False
    notes: tuple[str, ...] = ()  # every source passed over, and why
    detail: str = ""  # e.g. "bzImage, zstd, sections"
    modversions: bool | None = None  # False: an image without __kcrctab, a kernel that checks no CRC

    @classmethod
    def of(cls, ks: KernelSymbols | None) -> KernelSource:
        """The source of symbols read as depmod reads ``-E``/``-F`` (depmod's own options, taken as given)."""
        if ks is None:
            return cls(None, None, None, notes=("none given",))
        full = ks.symvers is not None
        return cls(ks.source, ks.path, ks, ks.crcs, full, full)

    @property
    def known(self) -> bool:
        return self.symbols is not None

    @property
    def count(self) -> int:
        return len(self.symbols.symbols) if self.symbols is not None else 0

    def lacks(self) -> list[str]:
        out = []
        if not self.crcs:
            out.append("CRCs (kernel built without MODVERSIONS)" if self.modversions is False else "CRCs")
        if not self.gpl_flags:
            out.append("GPL-only flags")
        if not self.namespaces:
            out.append("namespaces")
        return out

    def line(self) -> str:
        """One line: which source, how many exports, what it lacks (or why the exports are unknown)."""
        if not self.known:
            why = "; ".join(self.notes) or "no Module.symvers, boot image, System.map or /proc/kallsyms found"
            return (f"kernel exports unknown ({why}): imports no module exports are not checkable, "
                    "CRCs are checked against each module's own")
        what = f"{self.kind} {self.path}" + (f" ({self.detail})" if self.detail else "")
        lacks = self.lacks()
        return (f"kernel exports from {what}: {self.count} exports"
                + (f", no {', no '.join(lacks)}" if lacks else ", with CRCs, GPL-only flags and namespaces"))

    def expected(self, records) -> dict[str, int] | None:
        """Exporter CRCs depmod compares imports against (module exports over the kernel's), or None when the
        source has no CRCs (then each module's own CRCs stand in)."""
        if not self.crcs or self.symbols is None:
            return None
        from ..consumers.base import tree_crcs

        return tree_crcs({name: crc for name, crc, _ in self.symbols.symbols}, records)

    def as_dict(self) -> dict:
        return {"source": self.kind, "path": self.path, "exports": self.count if self.known else None,
                "crcs": self.crcs, "gpl_flags": self.gpl_flags, "namespaces": self.namespaces,
                "lacks": self.lacks() if self.known else None, "line": self.line(), "notes": list(self.notes),
                # The files as before this record (a Module.symvers or System.map read as depmod reads it).
                "symvers": self.path if self.kind == SYMVERS else None,
                "system_map": self.path if self.kind == SYSTEM_MAP_SOURCE else None}


def _from_symvers(path: str, prefix: str) -> KernelSource:
    ks = load_module_symvers(path, prefix, gunzip=path.endswith(".gz"))
    return KernelSource(SYMVERS, path, ks, True, True, True)


def _from_image(path: str) -> tuple[KernelSource | None, str | None]:
    """(source, None) or (None, why not)."""
    try:
        img = read_kernel_image(path)
    except KernelImageError as e:
        return None, str(e)
    if img.exports is None:
        return None, f"{path}: kernel exports unknown: {img.unknown}"
    symvers = image_symvers(img)
    crcs = any(e.crc is not None for e in img.exports)
    ks = symvers_symbols(symvers)
    ks = KernelSymbols(IMAGE, path, ks.symbols, ks.diagnostics, symvers, crcs)
    detail = ", ".join(x for x in (img.container, img.compression, img.machine_name,
                                    f"found by {img.located}") if x)
    # An image without __kcrctab is a kernel without MODVERSIONS: it checks no CRC at all.
    return KernelSource(IMAGE, path, ks, crcs, True, True, detail=detail, modversions=crcs), None


def _from_system_map(path: str, prefix: str) -> tuple[KernelSource | None, str | None]:
    ks = load_system_map(path, prefix, gunzip=path.endswith(".gz"))
    if not ks.symbols:
        try:
            head = read_input(path, SYSTEM_MAP)[:200]
        except OSError:
            head = b""
        what = ("Debian's placeholder (the real one is in the -dbg package)" if PLACEHOLDER in head
                else "empty" if not head.strip() else "no __ksymtab_ symbol in it")
        return None, f"{path}: {what}"
    return KernelSource(SYSTEM_MAP_SOURCE, path, ks), None


def _from_kallsyms(path: str) -> tuple[KernelSource | None, str | None]:
    """``ADDR TYPE NAME[\\t[MODULE]]``: vmlinux's ``__ksymtab_NAME`` data symbols (CONFIG_KALLSYMS_ALL)."""
    data = read_input(path, SYSTEM_MAP)
    names = []
    for line in data.split(b"\n"):
        parts = line.split(b" ", 2)
        if len(parts) == 3 and parts[2].startswith(b"__ksymtab_") and b"\t" not in parts[2]:
            names.append(parts[2][10:].decode("utf-8", "surrogateescape"))
    if len(names) < KALLSYMS_MIN_EXPORTS:
        return None, (f"{path}: lists {len(names)} __ksymtab_ symbol(s), not a kernel's exports "
                      "(a kernel without CONFIG_KALLSYMS_ALL lists none)")
    return KernelSource(KALLSYMS, path, KernelSymbols(KALLSYMS, path, tuple((n, 0, True) for n in names))), None


def kernel_source(dirname: str | None, kver: str | None, *, symvers: str | None = None,
                  image: str | None = None, system_map: str | None = None, prefix: str = "",
                  search: bool = True) -> KernelSource:
    """The kernel's exports for the tree at ``dirname`` (release ``kver``), from the first source that has
    them (see the module docstring). ``search`` False, or no tree: only the sources named.

    Raises :class:`KernelSourceError` when a source named explicitly cannot be read or gives no exports:
    the user asked for it, so falling back to another would answer a different question.
    """
    notes: list[str] = []
    if symvers is not None:
        try:
            return _from_symvers(symvers, prefix)
        except KernelSymbolsError as e:
            raise KernelSourceError(f"{symvers}: {e.strerror}") from None
    if image is not None:
        src, why = _from_image(image)
        if src is None:
            raise KernelSourceError(why)
        return src
    if system_map is not None:
        try:
            src, why = _from_system_map(system_map, prefix)
        except KernelSymbolsError as e:
            raise KernelSourceError(f"{system_map}: {e.strerror}") from None
        if src is None:
            raise KernelSourceError(f"{why}: no kernel exports")
        return src
    if not search or dirname is None or kver is None:
        return KernelSource(None, None, None, notes=("none given",))
    found = kernel_files(dirname, kver)
    if "symvers" in found:
        try:
            return _from_symvers(found["symvers"], prefix)
        except KernelSymbolsError as e:
            notes.append(f"{found['symvers']}: {e.strerror}")
    path = find_image(base_of(dirname, kver), kver)
    if path is not None:
        src, why = _from_image(path)
        if src is not None:
            return _noted(src, notes)
        notes.append(why or "no exports")
    if "system_map" in found:
        try:
            src, why = _from_system_map(found["system_map"], prefix)
        except KernelSymbolsError as e:
            src, why = None, f"{found['system_map']}: {e.strerror}"
        if src is not None:
            return _noted(src, notes)
        notes.append(why or "no exports")
    if _is_running(dirname, kver) and os.path.exists(KALLSYMS_PATH):
        try:
            src, why = _from_kallsyms(KALLSYMS_PATH)
        except KernelSymbolsError as e:
            src, why = None, f"{KALLSYMS_PATH}: {e.strerror}"
        if src is not None:
            return _noted(src, notes)
        notes.append(why or "no exports")
    if not notes:
        notes.append("no Module.symvers, boot image or System.map found")
    return KernelSource(None, None, None, notes=tuple(notes))


def _noted(src: KernelSource, notes: list[str]) -> KernelSource:
    return replace(src, notes=tuple(notes)) if notes else src


def _is_running(dirname: str, kver: str) -> bool:
    """The tree is the running kernel's: ``/lib/modules/$(uname -r)`` (or under /usr)."""
    return base_of(dirname, kver) == "/" and kver == os.uname().release
