"""The kernel image's exports as depmod loads them: ``-F System.map`` or ``-E Module.symvers``.

tools/depmod.c ``depmod_load_system_map()`` and ``depmod_load_symvers()``
(identical in kmod 30 and 34.2). Both read with ``fgets(line, 10240)``, add
every symbol with owner NULL (the kernel), then ``depmod_add_fake_syms()``.

* System.map: the text after the second space must start with
  ``__ksymtab_`` (after one ``-P`` prefix character is skipped); the rest of
  the line is the symbol, CRC 0. A line with fewer than two spaces is
  reported as ``invalid line``.
* Module.symvers: read by :mod:`kmodcompat.files.symvers`, whose one parse
  follows depmod's (fields split on spaces and tabs by ``strtok``, the CRC
  by ``strtoull(field1, 16)``); only lines whose third field is exactly
  ``vmlinux`` count, one with an invalid CRC is reported and skipped; a
  leading ``-P`` prefix character is stripped from the name by
  ``depmod_symbol_add()``.
* Fake symbols, added after the file: ``__this_module`` and
  ``_GLOBAL_OFFSET_TABLE_`` (always, replacing a same-named entry), and
  ``TOC.`` when ``depmod_symbol_find("TOC.")`` finds nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..files.bounded import SYSTEM_MAP, InputFileError, read_input
from ..files.stdio import fgets_lines
from ..files.symvers import Symvers, read_symvers
from .diagnostics import ERROR, Diagnostic, diag

__all__ = ["KernelSymbols", "KernelSymbolsError", "load_module_symvers", "load_system_map", "symvers_symbols"]

_LINE_MAX = 10240

#: The file could not be read (:func:`kmodcompat.files.bounded.read_input`: missing, not a regular file,
#: past its cap): depmod stops with ``FATAL: could not load FILE: reason``.
KernelSymbolsError = InputFileError


@dataclass(frozen=True, slots=True)
class KernelSymbols:
    """vmlinux exports in load order: (name after prefix handling, CRC, prefix already skipped)."""

    source: str  # "System.map" | "Module.symvers" | "boot image" | "/proc/kallsyms" (files/kernel.py)
    path: str
    symbols: tuple[tuple[str, int, bool], ...]
    diagnostics: tuple[Diagnostic, ...] = ()
    symvers: Symvers | None = None  # the Module.symvers with every field (GPL-only flag, namespace, modules')
    crcs: bool = False  # the symbols carry the kernel's CRCs (a Module.symvers; a MODVERSIONS boot image)

    @property
    def check_symvers(self) -> bool:
        """``cfg.check_symvers``: only ``-E`` compares CRCs (and a boot image read as its Module.symvers)."""
        return self.crcs


def _cstr(b: bytes) -> bytes:
    nul = b.find(b"\0")
    return b if nul < 0 else b[:nul]


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def load_system_map(path: str, prefix: str = "", gunzip: bool = False) -> KernelSymbols:
    """``depmod_load_system_map()``; ``prefix`` is the ``-P`` character ("" for none).

    ``gunzip``: the file is gzipped (depmod itself reads every file as it is)."""
    data = read_input(path, SYSTEM_MAP, gzip=gunzip)
    syms: list[tuple[str, int, bool]] = []
    diags: list[Diagnostic] = []
    pre = prefix.encode() if prefix else b""
    for n, line in enumerate(fgets_lines(data, _LINE_MAX), 1):
        line = _cstr(line)
        a = line.find(b" ")
        b = line.find(b" ", a + 1) if a >= 0 else -1
        if b < 0:
            diags.append(diag(ERROR, "system-map-invalid-line", f"{path}:{n}: invalid line: {_text(line)}"))
            continue
        p = line[b + 1:]
        if pre and p.startswith(pre):
            p = p[1:]
        if not p.startswith(b"__ksymtab_"):
            continue
        nl = p.find(b"\n")
        if nl >= 0:
            p = p[:nl]
        syms.append((_text(p[10:]), 0, True))
    return KernelSymbols("System.map", path, tuple(syms), tuple(diags))


def symvers_symbols(symvers: Symvers) -> KernelSymbols:
    """``depmod_load_symvers()`` over a read Module.symvers: its ``vmlinux`` lines, in file order."""
    syms: list[tuple[str, int, bool]] = []
    diags: list[Diagnostic] = []
    for e in symvers.entries:
        if not e.in_kernel:
            continue
        if e.crc is None:
            # "%m" is whatever errno holds then: strtoull() leaves it alone, and what is left
            # is the ENOENT of an earlier failed lookup (observed with kmod 30 and 34.2).
            diags.append(diag(ERROR, "symvers-invalid-crc",
                              f"{symvers.path}:{e.line} Invalid symbol version {e.crc_text}: {os.strerror(2)}"))
            continue
        syms.append((e.symbol, e.crc, False))
    return KernelSymbols("Module.symvers", symvers.path, tuple(syms), tuple(diags), symvers, True)


def load_module_symvers(path: str, prefix: str = "", gunzip: bool = False) -> KernelSymbols:
    """``depmod_load_symvers()``: the ``vmlinux`` lines of a Module.symvers (``prefix``: handled when
    the symbols are added). ``gunzip``: the file is gzipped (depmod itself reads every file as it is)."""
    return symvers_symbols(read_symvers(path, gunzip))
