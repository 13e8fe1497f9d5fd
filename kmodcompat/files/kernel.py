"""The kernel's own files next to a module tree: where its Module.symvers and System.map are, and reading them.

The report and the diff both look for them where distributions install
them (Debian's linux-headers package, the tree's ``build/`` link, Fedora's,
RHEL's and SUSE's ``/boot/symvers-KVER.gz``, ``/usr/lib/modules/KVER/symvers.gz``)
and read them as depmod would be given them (``-E`` preferred, as depmod
ignores ``-F`` then), a ``.gz`` inflated in memory.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..depmod.kernel_symbols import KernelSymbols, KernelSymbolsError, load_module_symvers, load_system_map

if TYPE_CHECKING:
    from ..depmod.tree import ModuleTree

__all__ = ["find_kernel_files", "load_kernel", "tree_base"]


def tree_base(tree: ModuleTree) -> str:
    """BASEDIR of a tree: its module directory without ``[usr/]lib/modules/KVER``."""
    d = tree.dirname.rstrip("/")
    for suffix in (f"/usr/lib/modules/{tree.kver}", f"/lib/modules/{tree.kver}"):
        if d.endswith(suffix):
            return d[: -len(suffix)] or "/"
    return os.path.dirname(d)


def find_kernel_files(tree: ModuleTree) -> dict[str, str]:
    """Module.symvers and System.map of the tree's kernel, where distributions put them."""
    base, kver = tree_base(tree), tree.kver
    j = lambda *p: os.path.join(base, *p)  # noqa: E731
    candidates = {
        "symvers": [j("usr/src", f"linux-headers-{kver}", "Module.symvers"), os.path.join(tree.dirname, "build",
                    "Module.symvers"), j("boot", f"symvers-{kver}.gz"), j("usr/lib/modules", kver, "symvers.gz")],
        "system_map": [j("boot", f"System.map-{kver}"), os.path.join(tree.dirname, "System.map")],
    }
    return {k: next(p for p in ps if os.path.isfile(p)) for k, ps in candidates.items()
            if any(os.path.isfile(p) for p in ps)}


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
