"""The kernel image's exports as depmod loads them: ``-F System.map`` or ``-E Module.symvers``.

tools/depmod.c ``depmod_load_system_map()`` and ``depmod_load_symvers()``
(identical in kmod 30 and 34.2). Both read with ``fgets(line, 10240)``, add
every symbol with owner NULL (the kernel), then ``depmod_add_fake_syms()``.

* System.map: the text after the second space must start with
  ``__ksymtab_`` (after one ``-P`` prefix character is skipped); the rest of
  the line is the symbol, CRC 0. A line with fewer than two spaces is
  reported as ``invalid line``.
* Module.symvers: fields split on spaces and tabs (``strtok``); only lines
  whose third field is exactly ``vmlinux`` count, the CRC is
  ``strtoull(field1, 16)``; a leading ``-P`` prefix character is stripped from
  the name by ``depmod_symbol_add()``.
* Fake symbols, added after the file: ``__this_module`` and
  ``_GLOBAL_OFFSET_TABLE_`` (always, replacing a same-named entry), and
  ``TOC.`` when ``depmod_symbol_find("TOC.")`` finds nothing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .diagnostics import ERROR, Diagnostic, diag
from ..files.stdio import fgets_lines

__all__ = ["KernelSymbols", "KernelSymbolsError", "load_module_symvers", "load_system_map"]

_LINE_MAX = 10240
_STRTOULL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)(?:0[xX](?=[0-9a-fA-F]))?([0-9a-fA-F]*)")


class KernelSymbolsError(OSError):
    """The file could not be opened: depmod stops with ``FATAL: could not load FILE: reason``."""


@dataclass(frozen=True, slots=True)
class KernelSymbols:
    """vmlinux exports in load order: (name after prefix handling, CRC, prefix already skipped)."""

    source: str  # "System.map" | "Module.symvers"
    path: str
    symbols: tuple[tuple[str, int, bool], ...]
    diagnostics: tuple[Diagnostic, ...] = ()

    @property
    def check_symvers(self) -> bool:
        """``cfg.check_symvers``: only ``-E`` compares CRCs."""
        return self.source == "Module.symvers"


def _cstr(b: bytes) -> bytes:
    nul = b.find(b"\0")
    return b if nul < 0 else b[:nul]


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise KernelSymbolsError(e.errno, os.strerror(e.errno or 0), path) from None


def load_system_map(path: str, prefix: str = "") -> KernelSymbols:
    """``depmod_load_system_map()``; ``prefix`` is the ``-P`` character ("" for none)."""
    data = _read(path)
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


def _strtoull(tok: bytes) -> tuple[int, bytes]:
    """glibc ``strtoull(tok, &end, 16)``: (value mod 2**64, the unparsed rest)."""
    m = _STRTOULL.match(tok)
    assert m is not None
    digits = m.group(2)
    if not digits:
        return 0, tok  # no conversion: end points at the start
    value = int(digits, 16)
    if value >= 1 << 64:
        value = (1 << 64) - 1  # ERANGE: ULLONG_MAX
    elif m.group(1) == b"-":
        value = (-value) & ((1 << 64) - 1)
    return value, tok[m.end():]


def load_module_symvers(path: str, prefix: str = "") -> KernelSymbols:
    """``depmod_load_symvers()``: the ``vmlinux`` lines of a Module.symvers."""
    data = _read(path)
    syms: list[tuple[str, int, bool]] = []
    diags: list[Diagnostic] = []
    for n, line in enumerate(fgets_lines(data, _LINE_MAX), 1):
        toks = [t for t in re.split(rb"[ \t]+", _cstr(line)) if t]
        if len(toks) < 3 or toks[2] != b"vmlinux":
            continue
        crc, rest = _strtoull(toks[0])
        if rest:
            # "%m" is whatever errno holds then: strtoull() leaves it alone, and what is left
            # is the ENOENT of an earlier failed lookup (observed with kmod 30 and 34.2).
            diags.append(diag(ERROR, "symvers-invalid-crc",
                              f"{path}:{n} Invalid symbol version {_text(toks[0])}: {os.strerror(2)}"))
            continue
        name = _text(toks[1])
        syms.append((name, crc, False))
    return KernelSymbols("Module.symvers", path, tuple(syms), tuple(diags))
