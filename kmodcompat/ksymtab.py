"""Symbol table, imports and exports, read in bulk from raw section bytes.

One pass over ``.symtab`` yields what every consumer needs:

* imports: UND symbols in table order (kmod_elf_get_dependency_symbols);
* ``__crc_<sym>`` symbols resolved as kmod_elf_resolve_crc does (absolute
  before 5.19, a u32 inside ``__kcrctab*`` since);
* the export entries: ``__ksymtab_<sym>`` labels in the ``__ksymtab*``
  sections, their GPL-only flag (section name, or ``__kflagstab`` in 7.x),
  their namespace (``__kstrtabns_<sym>`` label into ``__ksymtab_strings``).

Only symbols whose name is interesting are decoded; the rest cost one
bytes comparison each.
"""

from __future__ import annotations

from typing import NamedTuple

from .elf import ElfImage, StringTable, struct_for
from .records import (EM_SPARC, EM_SPARCV9, SHN_ABS, SHN_UNDEF, STT_SPARC_REGISTER, CrcSymbol, Export, Finding,
                      Import, text)

_SYM = {64: ("IBBHQQ", 24), 32: ("IIIBBH", 16)}
_CRC_PREFIX = b"__crc_"
_KSYMTAB_PREFIX = b"__ksymtab_"
_KSTRTABNS_PREFIX = b"__kstrtabns_"
_BAD_CRC = (1 << 64) - 1  # kmod's (uint64_t)-1 for a CRC it cannot resolve

_KINDS = {0: "notype", 1: "object", 2: "func", 10: "func"}  # STT_GNU_IFUNC (10) is code too
_GPL_SECTIONS = frozenset({"__ksymtab_gpl", "__ksymtab_unused_gpl"})


class SymbolScan(NamedTuple):
    imports: tuple[Import, ...]
    crc_symbols: tuple[CrcSymbol, ...]
    exports: tuple[Export, ...]
    findings: tuple[Finding, ...]
    usable: bool  # kmod found a .symtab/.strtab pair it could walk


def scan_symbols(elf: ElfImage) -> SymbolScan:
    findings: list[Finding] = []
    symtab = elf.section(".symtab")
    strtab = elf.section(".strtab")
    if symtab is None or strtab is None:
        return SymbolScan((), (), (), (Finding("symtab-missing", "no .symtab/.strtab: stripped module"),), False)
    if not (elf.in_bounds(symtab) and elf.in_bounds(strtab)):
        return SymbolScan((), (), (), (Finding("symtab-out-of-bounds", ".symtab or .strtab runs past the end of the file",
                                               ".symtab"),), False)
    fmt, entsize = _SYM[elf.elfclass]
    data = elf.data
    size = symtab.size - symtab.size % entsize
    if size != symtab.size:
        findings.append(Finding("symtab-size-not-multiple",
                                f".symtab size {symtab.size} is not a multiple of {entsize}", ".symtab"))
        return SymbolScan((), (), (), tuple(findings), False)
    str_off, str_end = strtab.offset, strtab.offset + strtab.size
    names = StringTable(data, str_off, str_end)  # bounded reads: see StringTable
    rows = struct_for(fmt, elf.little).iter_unpack(memoryview(data)[symtab.offset + entsize:symtab.offset + size])
    is64 = elf.elfclass == 64
    sparc = elf.header.machine in (EM_SPARC, EM_SPARCV9)
    sections = elf.sections
    nsec = len(sections)

    imports: list[Import] = []
    crcs: list[CrcSymbol] = []
    ksym_labels: list[tuple[str, int, int]] = []  # (name, shndx, value)
    ns_labels: dict[str, tuple[int, int]] = {}
    defined_globals: dict[int, int] = {}  # strtab offset -> STT_* of defined global/weak symbols
    bad_names = 0
    for row in rows:
        if is64:
            st_name, st_info, _other, st_shndx, st_value, _size = row
        else:
            st_name, st_value, _size, st_info, _other, st_shndx = row
        if st_name >= strtab.size:
            bad_names += 1
            continue
        start = str_off + st_name
        if st_shndx == SHN_UNDEF:
            name = names.text(st_name)
            if name is None:
                bad_names += 1
                continue
            if not name:
                continue
            if sparc and st_info & 0xF == STT_SPARC_REGISTER:
                continue
            imports.append(Import(name, st_info >> 4, st_info & 0xF))
            continue
        if st_info >> 4 and st_shndx != SHN_ABS:  # global or weak definition: an exported symbol's kind
            defined_globals[st_name] = st_info & 0xF
        if not data.startswith(b"__", start):  # every label we want starts so
            continue
        # A label's name after its prefix is the table's string at st_name + len(prefix), with the
        # same NUL: reading it there shares the cache and the budget (a prefix running past the
        # table's end reads as out of range, as an unterminated name did).
        if data.startswith(_CRC_PREFIX, start):
            name = names.text(st_name + len(_CRC_PREFIX))
            if name is None:
                bad_names += 1
                continue
            crcs.append(CrcSymbol(name, _resolve_crc(elf, st_value, st_shndx), st_info >> 4))
        elif data.startswith(_KSYMTAB_PREFIX, start) and st_shndx < nsec:
            name = names.text(st_name + len(_KSYMTAB_PREFIX))
            if name is not None:
                ksym_labels.append((name, st_shndx, st_value))
        elif data.startswith(_KSTRTABNS_PREFIX, start) and st_shndx < nsec:
            name = names.text(st_name + len(_KSTRTABNS_PREFIX))
            if name is not None:
                ns_labels[name] = (st_shndx, st_value)
    if bad_names:
        findings.append(Finding("symtab-bad-name", f"{bad_names} symbol name(s) outside .strtab or without NUL",
                                ".symtab"))
    kinds = {}
    if defined_globals and ksym_labels:
        wanted = {name for name, _, _ in ksym_labels}
        for st_name, stt in defined_globals.items():
            name = names.text(st_name)
            if name in wanted:
                kinds[name] = _KINDS.get(stt, "other")
    exports = _exports(elf, ksym_labels, ns_labels, {c.name: c.crc for c in crcs}, kinds, findings)
    return SymbolScan(tuple(imports), tuple(crcs), exports, tuple(findings), True)


def _resolve_crc(elf: ElfImage, value: int, shndx: int) -> int:
    """kmod_elf_resolve_crc(): absolute CRCs as they are, relative ones read as u32 in their section."""
    if shndx == SHN_UNDEF or shndx == SHN_ABS:
        return value
    if shndx >= len(elf.sections):
        return _BAD_CRC
    sec = elf.sections[shndx]
    if not elf.in_bounds(sec) or value > sec.size - 4:
        return _BAD_CRC
    return struct_for("I", elf.little).unpack_from(elf.data, sec.offset + value)[0]


def _exports(elf: ElfImage, labels: list[tuple[str, int, int]], ns_labels: dict[str, tuple[int, int]],
             crc_by_name: dict[str, int], kinds: dict[str, str], findings: list[Finding]) -> tuple[Export, ...]:
    sections = elf.sections
    by_section: dict[int, list[tuple[int, str]]] = {}
    for name, shndx, value in labels:
        sname = sections[shndx].name
        if sname.startswith("__ksymtab") and sname != "__ksymtab_strings":
            by_section.setdefault(shndx, []).append((value, name))
    if not by_section:
        return ()
    flags: bytes | None = None
    kflagstab = elf.section("__kflagstab")
    if kflagstab is not None and elf.in_bounds(kflagstab):
        flags = elf.section_bytes(kflagstab)
    out: list[Export] = []
    ns_tables: dict[int, StringTable] = {}
    for shndx in sorted(by_section):
        sname = sections[shndx].name
        entries = sorted(by_section[shndx])
        if flags is not None and sname == "__ksymtab" and len(flags) < len(entries):
            findings.append(Finding("kflagstab-short", f"__kflagstab has {len(flags)} entries for "
                                    f"{len(entries)} exports", "__kflagstab"))
        for rank, (_value, name) in enumerate(entries):
            if sname in _GPL_SECTIONS:
                gpl = True
            elif flags is not None and sname == "__ksymtab" and rank < len(flags):
                gpl = bool(flags[rank] & 1)  # KSYM_FLAG_GPL_ONLY; entries and flags share the sorted order
            else:
                gpl = False
            crc = crc_by_name.get(name)
            if crc == _BAD_CRC:
                crc = None
            out.append(Export(name, crc, gpl, _namespace(elf, ns_labels.get(name), ns_tables), sname,
                              kinds.get(name, "unknown")))
    return tuple(out)


def _namespace(elf: ElfImage, label: tuple[int, int] | None, tables: dict[int, StringTable]) -> str | None:
    if label is None:
        return None
    shndx, value = label
    sec = elf.sections[shndx]
    if not elf.in_bounds(sec):
        return None
    table = tables.get(shndx)
    if table is None:  # one bounded reader per section: every export may point into the same one
        table = tables[shndx] = StringTable(elf.data, sec.offset, sec.offset + sec.size)
    return table.text(value) or None


def ksymtab_strings(elf: ElfImage) -> tuple[tuple[str, ...] | None, bool]:
    """Non-empty strings of ``__ksymtab_strings`` (kmod's export fallback), and whether it ends with NUL."""
    sec = elf.section("__ksymtab_strings")
    if sec is None or not elf.in_bounds(sec):
        return None, True
    raw = elf.section_bytes(sec)
    return tuple(text(s) for s in raw.split(b"\0") if s), raw.endswith(b"\0")
