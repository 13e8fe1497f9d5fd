"""Module.symvers: every export of a kernel build, one line each, read the one way depmod reads it.

modpost writes it (scripts/mod/modpost.c ``write_dump()``), one line per
export, fields separated by tabs:

* since v5.6 (and 5.4.y stable), after Jessica Yu's "modpost: move the
  namespace field in Module.symvers last": ``0x%08x CRC, symbol, module
  ("vmlinux" for the image), EXPORT_SYMBOL or EXPORT_SYMBOL_GPL, namespace``
  (empty for none, so the line ends in a tab); the export type is
  ``EXPORT_SYMBOL%s`` with ``_GPL`` for GPL-only exports since v5.13, when
  EXPORT_SYMBOL_GPL_FUTURE and EXPORT_UNUSED_SYMBOL[_GPL] went away;
* v2.6.18 to v5.3: the same first four fields (``export_str()``:
  EXPORT_SYMBOL, EXPORT_SYMBOL_GPL, EXPORT_SYMBOL_GPL_FUTURE,
  EXPORT_UNUSED_SYMBOL, EXPORT_UNUSED_SYMBOL_GPL), no namespace;
* v5.4 and v5.5 (cb9b55d21fe0 "modpost: add support for symbol
  namespaces"): the namespace third, before the module. depmod reads the
  third field as the module, which is why the field moved; a namespaced
  line of those files is read here as depmod reads it (not as vmlinux's).

kmod's depmod (tools/depmod.c ``depmod_load_symvers()``, kmod 30 to 34.2)
is the reader every kernel-export view here must agree with, so its rules
are the one parse (:func:`parse_symvers`): ``fgets(line, 10240)`` (an
over-long line is read as several), fields cut by ``strtok(line, " \\t")``
(a NUL ends the line, spaces separate like tabs, empty fields vanish, the
line's '\\n' stays on the last field: a three-field line's module is never
"vmlinux"), lines with fewer than three fields skipped, the CRC read by
``strtoull(field, &end, 16)`` and invalid when anything is left over. The
export type and namespace are the fourth and fifth fields, without the line
ending. A ``.gz`` file is inflated in memory, bounded (:mod:`.bounded`).

depmod's ``-E`` view (:mod:`kmodcompat.depmod.kernel_symbols`), the kABI
diff's kernel exports and the report's exporter CRCs are all derived from
the records this module gives.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .bounded import MODULE_SYMVERS, InputKind, read_input
from .stdio import fgets_lines

__all__ = ["KERNEL_MODULE", "Symvers", "SymversEntry", "dump_line", "export_type", "parse_symvers", "read_symvers",
           "strtoull"]

#: The module field of the kernel image's own exports (modpost's ``is_vmlinux()`` name).
KERNEL_MODULE = "vmlinux"
#: depmod_load_symvers()'s ``char line[10240]``.
LINE_MAX = 10240
#: ``strtok(line, " \t")`` fields of a NUL-free line (a file without spaces is cut on tabs alone).
_FIELD = re.compile(r"[^ \t]+")
#: A CRC as modpost writes it (``0x%08x``): strtoull() reads it whole, and so does int(…, 16).
_PLAIN_CRC = re.compile(r"0x[0-9a-fA-F]{1,16}")
_STRTOULL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)(?:0[xX](?=[0-9a-fA-F]))?([0-9a-fA-F]*)")
_ULLONG_MAX = (1 << 64) - 1


class SymversEntry(NamedTuple):
    """One line of a Module.symvers with at least three fields."""

    line: int  # fgets() line number, as depmod's diagnostics count
    crc_text: str  # the first field as written
    crc: int | None  # strtoull(crc_text, 16); None when it is not all hex (depmod: "Invalid symbol version")
    symbol: str
    module: str  # "vmlinux" for the kernel image (the third field as strtok cuts it)
    export_type: str | None  # "EXPORT_SYMBOL", "EXPORT_SYMBOL_GPL", ...; None without a fourth field
    namespace: str | None  # None for none

    @property
    def gpl_only(self) -> bool:
        """EXPORT_SYMBOL_GPL (and the pre-5.13 EXPORT_UNUSED_SYMBOL_GPL); EXPORT_SYMBOL_GPL_FUTURE is not."""
        return self.export_type is not None and self.export_type.endswith("_GPL")

    @property
    def in_kernel(self) -> bool:
        """An export of the kernel image: the only lines ``depmod -E`` loads."""
        return self.module == KERNEL_MODULE


class Symvers(NamedTuple):
    path: str
    entries: tuple[SymversEntry, ...]
    compressed: bool  # read through gzip


def strtoull(field: bytes) -> tuple[int, bytes]:
    """glibc ``strtoull(field, &end, 16)``: (value mod 2**64, saturated on overflow; the unparsed rest)."""
    m = _STRTOULL.match(field)
    assert m is not None
    digits = m.group(2)
    if not digits:
        return 0, field  # no conversion: end points at the start
    value = int(digits, 16)
    if value > _ULLONG_MAX:
        value = _ULLONG_MAX  # ERANGE
    elif m.group(1) == b"-":
        value = (-value) & _ULLONG_MAX
    return value, field[m.end():]


def parse_symvers(data: bytes) -> tuple[SymversEntry, ...]:
    """The lines of a Module.symvers depmod does not skip outright, in file order (see the module docstring)."""
    nul = b"\0" in data
    spaced = b" " in data  # modpost separates with tabs only; a space separates as well for depmod
    fields_of = _FIELD.findall
    plain_crc = _PLAIN_CRC.fullmatch
    out: list[SymversEntry] = []
    add = out.append
    new = tuple.__new__  # SymversEntry(...) without its keyword handling: half the cost per line
    for n, raw in enumerate(fgets_lines(data, LINE_MAX), 1):
        if nul:
            cut = raw.find(b"\0")
            if cut >= 0:
                raw = raw[:cut]
        # Decoded whole: the separators are ASCII, so fields decoded apart would be the same characters.
        line = raw.decode("utf-8", "surrogateescape")
        if spaced:
            fields = fields_of(line)
        else:
            fields = line.split("\t")
            if "" in fields:  # strtok() skips empty fields
                fields = [f for f in fields if f]
        if len(fields) < 3:
            continue
        crc_text, symbol, module = fields[0], fields[1], fields[2]
        export = ns = None
        if len(fields) > 3:
            export = fields[3].rstrip("\r\n") or None
            if len(fields) > 4:
                ns = fields[4].rstrip("\r\n") or None
        if plain_crc(crc_text):
            crc: int | None = int(crc_text, 16)
        else:
            value, rest = strtoull(crc_text.encode("utf-8", "surrogateescape"))
            crc = None if rest else value
        add(new(SymversEntry, (n, crc_text, crc, symbol, module, export, ns)))
    return tuple(out)


def export_type(gpl_only: bool) -> str:
    """The export type modpost writes for an export: ``EXPORT_SYMBOL%s`` with ``_GPL`` for a GPL-only one
    (write_dump(), v5.13+)."""
    return "EXPORT_SYMBOL_GPL" if gpl_only else "EXPORT_SYMBOL"


def dump_line(crc: int, symbol: str, module: str, gpl_only: bool, namespace: str | None) -> str:
    """One export's line as modpost's write_dump() writes it (v5.6+: the namespace last, empty for none)."""
    return f"0x{crc & 0xFFFFFFFF:08x}\t{symbol}\t{module}\t{export_type(gpl_only)}\t{namespace or ''}\n"


def read_symvers(path: str, gunzip: bool = False, kind: InputKind = MODULE_SYMVERS) -> Symvers:
    """A Module.symvers file, inflated first when ``gunzip``, through :func:`~.bounded.read_input` (a regular
    file within ``kind``'s cap); raises :class:`~.bounded.InputFileError`."""
    return Symvers(path, parse_symvers(read_input(path, kind, gzip=gunzip)), gunzip)

