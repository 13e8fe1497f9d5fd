"""Symbol table, imports and exports, read in bulk from raw section bytes.

``.symtab`` gives what every consumer needs:

* imports: UND symbols in table order (kmod_elf_get_dependency_symbols);
* ``__crc_<sym>`` symbols resolved as kmod_elf_resolve_crc does (absolute
  before 5.19, a u32 inside ``__kcrctab*`` since);
* the export entries: ``__ksymtab_<sym>`` labels in the ``__ksymtab*``
  sections, their GPL-only flag (section name, or ``__kflagstab`` in 7.x),
  their namespace (``__kstrtabns_<sym>`` label into ``__ksymtab_strings``).

``.symtab`` is read a field at a time, each field of every symbol in one C
call, and the labels are found by one search of ``.strtab``; Python code then
visits only the undefined symbols and the labels, and decodes only their names
(and, in a module with exports, those of its global symbols, for their kinds).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import compress, repeat
from typing import NamedTuple

from . import accel
from ..elf.image import MAX_SYMBOLS, ElfImage, StringTable, column, nul_strings, struct_for, too_many_entries
from ..elf.layout import EM_SPARC, EM_SPARCV9, SHN_ABS, SHN_UNDEF, STT_SPARC_REGISTER, SYM
from ..records import CrcSymbol, Export, Finding, Import, text

#: Elf_Sym: size, offsets of st_info and st_shndx, type and offset of st_value (st_name is a u32 at 0).
_CRC_PREFIX = b"__crc_"
_KSYMTAB_PREFIX = b"__ksymtab_"
_KSTRTABNS_PREFIX = b"__kstrtabns_"
#: Where a label can start in .strtab: "__" before the rest of a prefix. Only "__" is consumed, and
#: no prefix has "_" as its third byte, so labels overlapping each other are all found.
_LABEL = re.compile(rb"__(?=crc_|ksymtab_|kstrtabns_)")
_LABEL_REACH = len(_KSTRTABNS_PREFIX) - 1  # bytes a label starting inside .strtab can read past its end
_BAD_CRC = (1 << 64) - 1  # kmod's (uint64_t)-1 for a CRC it cannot resolve

_KINDS = {0: "notype", 1: "object", 2: "func", 10: "func"}  # STT_GNU_IFUNC (10) is code too
#: Sections whose exports are GPL-only by their place (include/linux/export.h, every era).
GPL_SECTIONS = frozenset({"__ksymtab_gpl", "__ksymtab_unused_gpl"})
#: 7.x: one byte per ``__ksymtab`` entry in ``__kflagstab``, same sorted order (include/linux/module_symbol.h).
KSYM_FLAG_GPL_ONLY = 1
_new_tuple = tuple.__new__  # builds rows without the NamedTuple's Python __new__
# bytes.translate tables
_NOT_LOCAL = bytes(st_info >> 4 != 0 for st_info in range(256))  #: st_info -> 1 when not STB_LOCAL
_BINDING = bytes(st_info >> 4 for st_info in range(256))  #: st_info -> STB_*
_TYPE = bytes(st_info & 0xF for st_info in range(256))  #: st_info -> STT_*
_IS_ZERO = bytes(byte == 0 for byte in range(256))


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
    entsize, info_at, shndx_at, value_type, value_at = SYM[elf.elfclass]
    data = elf.data
    size = symtab.size - symtab.size % entsize
    if size != symtab.size:
        findings.append(Finding("symtab-size-not-multiple",
                                f".symtab size {symtab.size} is not a multiple of {entsize}", ".symtab"))
        return SymbolScan((), (), (), tuple(findings), False)
    if size // entsize > MAX_SYMBOLS:
        raise too_many_entries(".symtab", "symbols", MAX_SYMBOLS)
    str_off, str_size = strtab.offset, strtab.size
    ext = accel.ext
    fast = None if ext is None else ext.scan_symbols(data, symtab.offset, size, str_off, str_size, elf.elfclass,
                                                     elf.little, elf.header.machine, elf.sections)
    if fast is not None:  # the plain case, compiled (parse/accel.py): the same rows as below
        imports, crc_rows, ksym_rows, spaces, kind_rows = fast  # spaces: each label's namespace, read
        exports = _exports(elf, ksym_rows, spaces.get, {c.name: c.crc for c in crc_rows}, kind_rows, findings)
        return SymbolScan(imports, crc_rows, exports, tuple(findings), True)
    names = StringTable(data, str_off, str_off + str_size)  # bounded reads: see StringTable
    little = elf.little
    table = memoryview(data)[symtab.offset + entsize:symtab.offset + size]  # entry 0 is the null symbol
    st_names = column(table, "I", 0, entsize, little)
    st_infos = bytes(table[info_at::entsize])
    # 1 for each symbol whose st_shndx is SHN_UNDEF, both its bytes zero: the bytes of every
    # st_shndx OR-ed together as two big integers, in one C call, for compress().
    undefined_sel = (int.from_bytes(table[shndx_at::entsize]) | int.from_bytes(table[shndx_at + 1::entsize])
                     ).to_bytes(len(st_names)).translate(_IS_ZERO)
    rows = range(len(st_names))
    labels: dict[int, bytes] = {}  # symbol -> its label prefix
    label_offsets = {m.start() - str_off for m in _LABEL.finditer(data, str_off, str_off + str_size + _LABEL_REACH)}
    if label_offsets:  # as a rule, only in modules with exports
        st_shndxs = column(table, "H", shndx_at, entsize, little)
        value_struct = struct_for(value_type, little)

        def st_value(i: int) -> int:
            return value_struct.unpack_from(table, i * entsize + value_at)[0]

        nsec = len(elf.sections)
        for i in compress(rows, map(label_offsets.__contains__, st_names)):
            st_shndx = st_shndxs[i]
            st_name = st_names[i]
            if st_shndx == SHN_UNDEF or st_name >= str_size:
                continue
            if data.startswith(_CRC_PREFIX, str_off + st_name):
                labels[i] = _CRC_PREFIX
            elif st_shndx < nsec:
                is_ksymtab = data.startswith(_KSYMTAB_PREFIX, str_off + st_name)
                labels[i] = _KSYMTAB_PREFIX if is_ksymtab else _KSTRTABNS_PREFIX
    # A label's name after its prefix is the table's string at st_name + len(prefix), with the
    # same NUL: reading it there shares the cache and the budget (a prefix running past the
    # table's end reads as out of range, as an unterminated name did). The names are read in
    # table order, as kmod reads them, and as StringTable spends its budget.
    if labels:
        undefined = list(compress(rows, undefined_sel))
        visited = sorted([*undefined, *labels])
        read = dict(zip(visited, names.texts([st_names[i] + len(labels.get(i, b"")) for i in visited])))
        und_names = list(map(read.__getitem__, undefined))
    else:
        und_names = names.texts(list(compress(st_names, undefined_sel)))
    # Names outside .strtab (their symbols are skipped) or without NUL. An undefined symbol's
    # name outside .strtab reads as None too: it counts once.
    bad_names = und_names.count(None)
    if st_names and max(st_names) >= str_size:
        bad_names += sum(map(str_size.__le__, compress(st_names, undefined_sel.translate(_IS_ZERO))))
    und_infos = bytes(compress(st_infos, undefined_sel))
    if elf.header.machine in (EM_SPARC, EM_SPARCV9):  # register declarations are no imports
        und_names = [None if info & 0xF == STT_SPARC_REGISTER else name for name, info in zip(und_names, und_infos)]
    # Named symbols only: None and "" are false.
    imports = tuple(map(_new_tuple, repeat(Import), compress(
        zip(und_names, und_infos.translate(_BINDING), und_infos.translate(_TYPE)), und_names)))

    crcs: list[CrcSymbol] = []
    crc_bad_section = 0
    ksym_labels: list[tuple[str, int, int]] = []  # (name, shndx, value)
    ns_labels: dict[str, tuple[int, int]] = {}
    for i, prefix in labels.items():
        name = read[i]
        if prefix == _CRC_PREFIX:
            if name is None:
                bad_names += 1
            else:
                crc = _resolve_crc(elf, st_value(i), st_shndxs[i])
                crc_bad_section += st_shndxs[i] >= nsec and st_shndxs[i] != SHN_ABS
                crcs.append(_new_tuple(CrcSymbol, (name, crc, st_infos[i] >> 4, st_shndxs[i])))
        elif name is None:
            continue
        elif prefix == _KSYMTAB_PREFIX:
            ksym_labels.append((name, st_shndxs[i], st_value(i)))
        else:
            ns_labels[name] = (st_shndxs[i], st_value(i))
    if crc_bad_section:
        # kmod_elf_resolve_crc() asks elf_get_section_info() for that index: an assert() aborts kmod.
        findings.append(Finding("crc-section-invalid", f"{crc_bad_section} __crc_ symbol(s) in no section (st_shndx "
                                f"past the section table): kmod aborts reading them", ".symtab"))
    if bad_names:
        findings.append(Finding("symtab-bad-name", f"{bad_names} symbol name(s) outside .strtab or without NUL",
                                ".symtab"))
    kinds = {}
    if ksym_labels:
        # strtab offset -> STT_* of the defined global and weak symbols: an exported symbol's kind
        not_local = compress(zip(st_names, st_infos, st_shndxs), st_infos.translate(_NOT_LOCAL))
        defined_globals = {st_name: st_info & 0xF for st_name, st_info, st_shndx in not_local
                           if st_shndx != SHN_UNDEF and st_shndx != SHN_ABS and st_name < str_size}
        wanted = {name for name, _, _ in ksym_labels}
        for name, stt in zip(names.texts(list(defined_globals)), defined_globals.values()):
            if name in wanted:
                kinds[name] = _KINDS.get(stt, "other")
    ns_tables: dict[int, StringTable] = {}
    exports = _exports(elf, ksym_labels, lambda name: _namespace(elf, ns_labels.get(name), ns_tables),
                       {c.name: c.crc for c in crcs}, kinds, findings)
    return SymbolScan(imports, tuple(crcs), exports, tuple(findings), True)


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


def _exports(elf: ElfImage, labels: list[tuple[str, int, int]], namespace_of: Callable[[str], str | None],
             crc_by_name: dict[str, int], kinds: dict[str, str], findings: list[Finding]) -> tuple[Export, ...]:
    """The Export rows of the ``__ksymtab_`` labels; ``namespace_of(name)``: the export's namespace."""
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
    for shndx in sorted(by_section):
        sname = sections[shndx].name
        entries = sorted(by_section[shndx])
        if flags is not None and sname == "__ksymtab" and len(flags) < len(entries):
            findings.append(Finding("kflagstab-short", f"__kflagstab has {len(flags)} entries for "
                                    f"{len(entries)} exports", "__kflagstab"))
        for rank, (_value, name) in enumerate(entries):
            gpl = export_gpl_only(sname, flags, rank)
            crc = crc_by_name.get(name)
            if crc == _BAD_CRC:
                crc = None
            out.append(_new_tuple(Export, (name, crc, gpl, namespace_of(name), sname, kinds.get(name, "unknown"))))
    return tuple(out)


def export_gpl_only(section: str, flags: bytes | None, rank: int) -> bool:
    """Whether the ``rank``-th entry of ``section`` is GPL-only: by its section, or by ``__kflagstab`` (7.x)."""
    if section in GPL_SECTIONS:
        return True
    if flags is not None and section == "__ksymtab" and rank < len(flags):
        return bool(flags[rank] & KSYM_FLAG_GPL_ONLY)  # entries and flags share the sorted order
    return False


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
    end = sec.offset + sec.size
    strings = nul_strings(elf.data, sec.offset, end, "__ksymtab_strings")  # bounded: see nul_strings
    return tuple(map(text, strings)), sec.size == 0 or elf.data[end - 1] == 0


class SymbolLayout(NamedTuple):
    """One ``struct kernel_symbol`` as linked into vmlinux (include/linux/export-internal.h, export.h before 6.5).

    With CONFIG_HAVE_ARCH_PREL32_RELOCATIONS every field is an ``int`` offset from the
    field's own address (``.long sym - .``); without, a pointer. 5.4 added the
    namespace field (``value, name, namespace``); before it there were two.
    """

    prel32: bool
    word: int  # bytes per field: 4 for PREL32, sizeof(void *) otherwise
    fields: int  # 3 since 5.4, 2 before
    little: bool

    @property
    def entsize(self) -> int:
        return self.word * self.fields


class LinkedTable(NamedTuple):
    """One linked export table of a kernel image: what the module loader searches."""

    section: str  # "__ksymtab" or "__ksymtab_gpl"
    address: int  # link address of the first entry (a raw image's file offset when PREL32)
    entries: bytes
    crcs: bytes | None  # its ``__kcrctab*``: one u32 per entry, same order; None without MODVERSIONS


def linked_exports(tables: list[LinkedTable], layout: SymbolLayout, string_at, flags: bytes | None = None,
                   name_addresses: list[int] | None = None) -> tuple[Export, ...]:
    """The exports of linked ``__ksymtab*`` tables, in table order; ValueError on the first inconsistency.

    In a module the entries are unrelocated and read through their ``.symtab``
    labels (scan_symbols); in vmlinux they are linked: each field resolves to an
    address, and ``string_at(address)`` reads the NUL-terminated bytes there (None
    when the address is outside the image). Entries are sorted by name, as the
    loader's bsearch (kernel/module/main.c find_exported_symbol_in_section)
    requires and the linker script's ``SORT(___ksymtab+*)`` guarantees; a table
    that is not is no export table. ``__kcrctab*`` runs parallel to its table
    (``SORT(___kcrctab+*)``), as ``__kflagstab`` does to ``__ksymtab`` in 7.x.
    ``name_addresses``, when given, receives each export's name address, in the
    same order: ``__ksymtab_strings`` keeps the objects' link order, which is
    modpost's order of vmlinux's exports in Module.symvers.
    """
    entsize = layout.entsize
    typecode = ("i" if layout.prel32 else "I") if layout.word == 4 else "Q"
    out: list[Export] = []
    for table in tables:
        count, rest = divmod(len(table.entries), entsize)
        if rest:
            raise ValueError(f"{table.section} size {len(table.entries)} is not a multiple of {entsize}")
        crcs = None
        if table.crcs is not None:
            if len(table.crcs) != 4 * count:
                raise ValueError(f"{table.section} has {count} entries, its CRC table {len(table.crcs) // 4}")
            crcs = column(table.crcs, "I", 0, 4, layout.little)
        if flags is not None and table.section == "__ksymtab" and len(flags) != count:
            raise ValueError(f"__ksymtab has {count} entries, __kflagstab {len(flags)}")
        fields = [column(table.entries, typecode, k * layout.word, entsize, layout.little)
                  for k in range(1, layout.fields)]
        if layout.prel32:  # each offset is relative to its own field
            fields = [[table.address + i * entsize + k * 4 + off for i, off in enumerate(col)]
                      for k, col in enumerate(fields, 1)]
        names = [string_at(addr) for addr in fields[0]]
        if None in names or b"" in names:
            i = names.index(None) if None in names else names.index(b"")
            raise ValueError(f"{table.section} entry {i}: no name at 0x{fields[0][i]:x}")
        if any(a >= b for a, b in zip(names, names[1:])):
            raise ValueError(f"{table.section} is not sorted by name")
        if len(fields) > 1:
            spaces = [string_at(addr) if addr != (table.address + i * entsize + 8 if layout.prel32 else 0)
                      else b"" for i, addr in enumerate(fields[1])]
            if None in spaces:
                raise ValueError(f"{table.section} entry {spaces.index(None)}: namespace outside the image")
        else:
            spaces = [b""] * count
        if name_addresses is not None:
            name_addresses.extend(fields[0])
        for rank, (name, space) in enumerate(zip(names, spaces)):
            out.append(_new_tuple(Export, (text(name), None if crcs is None else crcs[rank],
                                           export_gpl_only(table.section, flags, rank), text(space) if space else None,
                                           table.section, "unknown")))
    return tuple(out)
