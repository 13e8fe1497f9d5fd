"""Format simulation: the same module, its import versions written in another format.

``simulate(rec, data, fmt)`` returns the bytes of a real relocatable ELF in
which the version sections (``__versions``, ``__version_ext_crcs``,
``__version_ext_names``) are replaced by those modpost would have written in
format ``fmt``; every other section is kept byte for byte. The result can be
fed to real kmod, busybox or readelf.

Entry selection follows modpost (docs/formats.md §1.2-1.3): imports in .symtab
order that have a known CRC, then ``module_layout``; basic ``__versions`` holds
only names shorter than MODULE_NAME_LEN (a basic-only build with a longer
name fails: :class:`BuildError`, as modpost's "too long symbol" does); the
hashed format (the 2024 RFC, :mod:`.modversions.hashed`) writes every name in
``__versions``, the long ones as ``"sha256\\0"`` + digest.

The rewrite removes the old version sections from the section table and
renumbers the rest (sh_link, sh_info, e_shstrndx and every symbol's
st_shndx follow), then appends the new sections, a new ``.shstrtab`` and a new
section header table at the end of the file. A signature is dropped: the
content it signed has changed.
"""

from __future__ import annotations

from collections.abc import Mapping

from dataclasses import replace
from functools import cached_property, cache

from .consumers.base import own_crcs
from .elf.image import ElfImage, struct_for
from .errors import ElfError
from .modversions import basic, extended, hashed, varlen
from .elf.layout import (EHDR, EHDR_SIZE, EI_NIDENT, ELFMAG, SHDR, SHDR_SIZE, SHF_ALLOC, SHT_PROGBITS, SHT_REL, SHT_RELA,
                         SHT_STRTAB, SYM)
from .records import ModuleRecord, ModversionsFormat as Fmt, Section, raw
from .parse.signature import unsigned_length

#: Every format a module can be simulated in: the one list of format ids (views, reports, the CLI read it).
FORMATS = (Fmt.NONE, Fmt.BASIC, Fmt.BASIC_EXT, Fmt.EXT_ONLY, Fmt.VARLEN, Fmt.HASHED)
VERSION_SECTIONS = (basic.SECTION, extended.CRCS, extended.NAMES)
SHF_INFO_LINK = 0x40
SHN_LORESERVE, SHN_ABS = 0xFF00, 0xFFF1


class BuildError(ValueError):
    """modpost would refuse to build the module in this format."""


class LayoutError(ValueError):
    """The module's own layout cannot be rewritten (a section table the rewrite cannot follow).

    Only hostile files get here: a signature trailer over the section table, a ``.symtab``
    past the end of the file, the section name table itself named like a version section.
    """


class NoVersionsError(BuildError):
    """No CRC is known for any import (a tree built without MODVERSIONS): nothing to encode.

    Pass the exporters' CRCs (``extra``, e.g. from Module.symvers) to simulate it.
    """


def import_versions(rec: ModuleRecord, extra: Mapping[str, int] | None = None) -> list[tuple[int, str]]:
    """(crc, name) in modpost's order: resolved imports with a CRC, then ``module_layout``.

    CRCs come from the module's own tables, else from ``extra`` (e.g. the
    exporters' CRCs in a tree); imports with no known CRC are left out, as
    modpost skips them. The names the module's own table lists come first, in
    that table's order: modpost walked the symbol table of the module's object
    before the final link, and the ``.ko``'s own ``.symtab`` does not keep that
    order (docs/formats.md §1.2). The others follow in ``.symtab`` order.
    """
    own = own_crcs(rec)
    extra = extra or {}
    imported = {imp.name for imp in rec.imports}
    # The most complete table: the extended one lists every import, __versions only the short names.
    table = [m.name for m in rec.ext_versions.entries] if rec.ext_versions is not None else list(own)
    out: list[tuple[int, str]] = []
    seen: set[str] = set()
    for name in (*(n for n in table if n in imported), *(imp.name for imp in rec.imports)):
        if name in seen or name == "module_layout":
            continue
        if name in own:
            out.append((own[name], name))
        elif name in extra:
            out.append((extra[name], name))
        else:
            continue
        seen.add(name)
    if "module_layout" in own:
        out.append((own["module_layout"], "module_layout"))
    elif "module_layout" in extra:
        out.append((extra["module_layout"], "module_layout"))
    return out


def written_format(entries: list[tuple[int, str]], fmt: str, elfclass: int) -> str:
    """The format a module simulated in ``fmt`` is recognised as: a hashed table without a long name
    is byte for byte the basic one (nothing in it says "hashed"), so it is basic."""
    if fmt == Fmt.HASHED and not any(hashed.is_hashed_name(name, elfclass) for _, name in entries):
        return Fmt.BASIC
    return fmt


def encode(entries: list[tuple[int, str]], fmt: str, elfclass: int, little: bool) -> dict[str, tuple[bytes, int]]:
    """Section name → (bytes, alignment) for ``fmt``."""
    return _Tables(entries, elfclass, little).encode(fmt)


class _Tables:
    """:func:`encode` of one list of entries in several formats: a table two formats share is encoded once."""

    def __init__(self, entries: list[tuple[int, str]], elfclass: int, little: bool):
        self.entries = entries
        self.elfclass = elfclass
        self.little = little
        self.limit = basic.name_limit(elfclass)
        self.short = [(c, n) for c, n in entries if not basic.too_long(n, elfclass)]

    @cached_property
    def basic_table(self) -> bytes:
        """``__versions`` of the names that fit (every name, in a basic-only build that succeeds)."""
        return basic.encode(self.short, self.elfclass, self.little)

    @cached_property
    def ext_tables(self) -> tuple[bytes, bytes]:
        return extended.encode(self.entries, self.little)

    @cached_property
    def varlen_table(self) -> bytes:
        return varlen.encode(self.entries, self.little)

    @cached_property
    def hashed_table(self) -> bytes:
        """``__versions`` with every name, the long ones hashed (basic's own table when none is long)."""
        if len(self.short) == len(self.entries):
            return self.basic_table
        return hashed.encode(self.entries, self.elfclass, self.little)

    def encode(self, fmt: str) -> dict[str, tuple[bytes, int]]:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
        entries, limit = self.entries, self.limit
        if not entries and fmt != Fmt.NONE:
            raise NoVersionsError("no import has a known CRC: the module was built without MODVERSIONS")
        out: dict[str, tuple[bytes, int]] = {}
        # The extended and variable-length tables hold u32 CRCs, as does __versions on 32-bit (its
        # unsigned long); a CRC read from a 64-bit field or an absolute __crc_ symbol can be wider.
        if fmt in (Fmt.BASIC_EXT, Fmt.EXT_ONLY, Fmt.VARLEN) or (fmt in (Fmt.BASIC, Fmt.HASHED) and self.elfclass == 32):
            wide = [(crc, name) for crc, name in entries if crc >> 32]
            if wide:
                raise BuildError(f"CRC {wide[0][0]:#x} of {wide[0][1]} does not fit in 32 bits "
                                 f"({len(wide)} such CRC(s)): modpost's CRCs are 32-bit")
        if fmt == Fmt.BASIC and len(self.short) < len(entries):
            long = [n for _, n in entries if basic.too_long(n, self.elfclass)]
            raise BuildError(f'modpost: too long symbol "{long[0]}" ({len(long)} name(s) over {limit} characters)')
        if fmt in (Fmt.BASIC, Fmt.BASIC_EXT):
            out[basic.SECTION] = (self.basic_table, self.elfclass // 8)
        if fmt in (Fmt.BASIC_EXT, Fmt.EXT_ONLY):
            crcs, names = self.ext_tables
            out[extended.CRCS] = (crcs, 4)
            out[extended.NAMES] = (names, 1)
        if fmt == Fmt.VARLEN:
            out[varlen.SECTION] = (self.varlen_table, 1)
        if fmt == Fmt.HASHED:
            out[basic.SECTION] = (self.hashed_table, self.elfclass // 8)
        return out


def simulate(rec: ModuleRecord, data: bytes, fmt: str, extra: Mapping[str, int] | None = None) -> bytes:
    """The module image ``data`` (decompressed) rewritten with its versions in ``fmt``."""
    sections = encode(import_versions(rec, extra), fmt, rec.elf.elfclass, rec.elf.little_endian)
    return rewrite_sections(data[:unsigned_length(data)], VERSION_SECTIONS, sections)


def simulate_or_same(rec: ModuleRecord, data: bytes, fmt: str, extra: Mapping[str, int] | None = None) -> bytes | None:
    """:func:`simulate`, or None when ``data`` already holds exactly the version sections ``fmt`` gives it
    (a basic tree simulated as basic): the module file itself, signature and compression included, is then
    the simulation, and nothing a rewrite would change (the section order, the signature) changes."""
    sections = encode(import_versions(rec, extra), fmt, rec.elf.elfclass, rec.elf.little_endian)
    image = data[:unsigned_length(data)]
    try:
        elf = ElfImage(image)
    except ElfError:
        elf = None
    if elf is not None:
        present = [s for s in elf.sections[1:] if s.name in VERSION_SECTIONS]
        if sorted(s.name for s in present) == sorted(sections) and all(
                elf.in_bounds(s) and elf.section_bytes(s) == sections[s.name][0] for s in present):
            return None
    return rewrite_sections(image, VERSION_SECTIONS, sections)


def simulate_record(rec: ModuleRecord, fmt: str, extra: Mapping[str, int] | None = None) -> ModuleRecord:
    """The record :func:`simulate` then parsing would give, without the module's bytes.

    The version sections are encoded as for the file, then read back by the
    same parsers from a minimal ELF holding only them, so the tables and
    findings cannot drift from the byte-level path; the rest of the record is
    the original's, less the signature. Tree-wide views use this: it costs
    no decompression.
    """
    return Simulation(rec, extra).record(fmt)


class Simulation:
    """:func:`simulate_record` of one module in several formats: what no format changes is done once."""

    def __init__(self, rec: ModuleRecord, extra: Mapping[str, int] | None = None):
        self.rec = rec
        self._tables = _Tables(import_versions(rec, extra), rec.elf.elfclass, rec.elf.little_endian)
        self._base = rec.signature.offset if rec.signature is not None and rec.signature.kmod_accepts \
            else rec.image_size
        kept = [s for s in rec.sections if s.name not in VERSION_SECTIONS]
        self._sections = tuple(s if s.index == i else Section(i, *s[1:]) for i, s in enumerate(kept))
        self._findings = tuple(f for f in rec.findings if f.section not in VERSION_SECTIONS
                               and not f.code.startswith("signature"))

    def record(self, fmt: str) -> ModuleRecord:
        """:func:`simulate_record` in ``fmt``."""
        rec = self.rec
        tables = self._tables.encode(fmt)
        sections = list(self._sections)
        end = self._base
        for name, (blob, alignment) in tables.items():
            end += -end % alignment
            sections.append(Section(len(sections), name, SHT_PROGBITS, SHF_ALLOC, 0, end, len(blob), 0, 0,
                                    alignment, 0))
            end += len(blob)
        vers = ext = var = hsh = None
        findings = self._findings
        if tables:  # without version sections every parser finds nothing
            mini = ElfImage(_tables_image(tables, rec.elf.elfclass, rec.elf.little_endian))
            vers, f1 = basic.parse(mini)
            var, f2 = varlen.parse(mini)
            ext, f3 = extended.parse(mini)
            hsh, f4 = hashed.parse(mini, vers, rec.imports)
            index = {name: i for i, name in enumerate(tables, len(self._sections))}
            if vers is not None:
                vers = replace(vers, section_index=index[basic.SECTION])
            if ext is not None:
                ext = replace(ext, crcs_section_index=index[extended.CRCS], names_section_index=index[extended.NAMES])
            findings += tuple(f1 + f2 + f3 + f4)
        return replace(rec, sections=tuple(sections), versions=vers, ext_versions=ext, varlen_versions=var,
                       hashed_versions=hsh, signature=None, findings=findings, image_size=end)


def _tables_image(tables: dict[str, tuple[bytes, int]], elfclass: int, little: bool) -> bytes:
    """``rewrite_sections(_empty_elf(elfclass, little), (), tables)``, written directly.

    The same bytes (the tests compare them) without parsing the empty image
    and looking its names up each time: the tables' names are all new to it.
    """
    is64 = elfclass == 64
    out = bytearray(_empty_elf(elfclass, little))
    names = bytearray(b"\0.shstrtab\0")
    rows = [(0,) * 10, ()]
    for name, (blob, alignment) in tables.items():
        out += bytes(-len(out) % max(alignment, 1))
        rows.append((len(names), SHT_PROGBITS, SHF_ALLOC, 0, len(out), len(blob), 0, 0, alignment, 0))
        names += raw(name) + b"\0"
        out += blob
    rows[1] = (1, SHT_STRTAB, 0, 0, len(out), len(names), 0, 0, 1, 0)
    out += names
    return _end_with_section_headers(out, rows, 1, is64, little)


@cache
def _empty_elf(elfclass: int, little: bool) -> bytes:
    """ELF header + NULL section + .shstrtab: the smallest image the reader accepts."""
    is64 = elfclass == 64
    ehdr_size, shdr_size = EHDR_SIZE[elfclass], SHDR_SIZE[elfclass]
    names = b"\0.shstrtab\0"
    shoff = ehdr_size + len(names) + (-(ehdr_size + len(names)) % 8)
    ident = ELFMAG + bytes([2 if is64 else 1, 1 if little else 2, 1]) + bytes(9)
    ehdr = struct_for(EHDR[elfclass], little).pack(
        1, 0, 1, 0, 0, shoff, 0, ehdr_size, 0, 0, shdr_size, 2, 1)
    body = ident + ehdr + names
    body += bytes(shoff - len(body))
    shdr = struct_for(SHDR[elfclass], little)
    return body + bytes(shdr_size) + shdr.pack(1, 3, 0, 0, ehdr_size, len(names), 0, 0, 1, 0)


def rewrite_sections(data: bytes, remove: tuple[str, ...], add: dict[str, tuple[bytes, int]]) -> bytes:
    """Drop the sections named in ``remove`` (and relocations against them), append ``add``.

    Raises :class:`LayoutError` for a layout the rewrite cannot follow.
    """
    try:
        elf = ElfImage(data)
    except ElfError as e:  # e.g. a signature trailer that covers the section table: cut, it is gone
        raise LayoutError(f"the image in front of the signature is no ELF file: {e.reason}") from None
    h = elf.header
    little = elf.little
    is64 = h.elfclass == 64
    dropped = {s.index for s in elf.sections[1:] if s.name in remove}
    dropped |= {s.index for s in elf.sections[1:]
                if s.type in (SHT_REL, SHT_RELA) and s.info in dropped}
    if h.shstrndx in dropped:
        raise LayoutError(f"the section name table (section {h.shstrndx}) is itself a version section "
                          "or a relocation of one")
    keep = [s for s in elf.sections if s.index not in dropped]
    remap = {s.index: i for i, s in enumerate(keep)}

    out = bytearray(data)
    # Symbols that pointed into a dropped section become absolute: nothing refers to them.
    symtab = elf.section(".symtab")
    if symtab is not None and dropped:
        if not elf.in_bounds(symtab):
            raise LayoutError(".symtab runs past the end of the file: its symbols cannot be renumbered")
        entsize, _, shndx_at, _, _ = SYM[64 if is64 else 32]
        half = struct_for("H", little)
        for off in range(symtab.offset + entsize, symtab.offset + symtab.size - entsize + 1, entsize):  # whole entries
            (shndx,) = half.unpack_from(out, off + shndx_at)
            if 0 < shndx < SHN_LORESERVE:
                half.pack_into(out, off + shndx_at, remap.get(shndx, SHN_ABS))

    def align(n: int) -> None:
        out.extend(b"\0" * (-len(out) % max(n, 1)))

    old_names = elf.sections[h.shstrndx]
    shstr = bytearray(data[old_names.offset:old_names.offset + old_names.size])
    name_off: dict[str, int] = {}

    def name_index(name: str) -> int:
        if name not in name_off:
            i = bytes(shstr).find(raw(name) + b"\0")
            if i < 0 or (i and shstr[i - 1] != 0 and not name == ""):
                i = len(shstr)
                shstr.extend(raw(name) + b"\0")
            name_off[name] = i
        return name_off[name]

    rows = []
    for s in keep:
        info = remap.get(s.info, 0) if (s.type in (SHT_REL, SHT_RELA) or s.flags & SHF_INFO_LINK) else s.info
        link = remap.get(s.link, 0) if s.link else 0
        rows.append([name_index(s.name), s.type, s.flags, s.addr, s.offset, s.size, link, info, s.addralign,
                     s.entsize])
    for name, (blob, alignment) in add.items():
        align(alignment)
        rows.append([name_index(name), SHT_PROGBITS, SHF_ALLOC, 0, len(out), len(blob), 0, 0, alignment, 0])
        out.extend(blob)
    shstrndx = remap[h.shstrndx]
    rows[shstrndx][4] = len(out)
    rows[shstrndx][5] = len(shstr)
    out.extend(shstr)
    return _end_with_section_headers(out, rows, shstrndx, is64, little)


def _end_with_section_headers(out: bytearray, rows: list, shstrndx: int, is64: bool, little: bool) -> bytes:
    """``out`` with the section header table of ``rows`` appended (aligned) and the ELF header pointing at it."""
    out += bytes(-len(out) % (8 if is64 else 4))
    shoff = len(out)
    shdr = struct_for(SHDR[64 if is64 else 32], little)
    for r in rows:
        out += shdr.pack(*r)
    # e_shoff, e_shnum, e_shstrndx in the ELF header (fields 5, 11 and 12 of elf.layout.EHDR after e_ident).
    ehdr = struct_for(EHDR[64 if is64 else 32], little)
    fields = list(ehdr.unpack_from(out, EI_NIDENT))
    fields[5], fields[11], fields[12] = shoff, len(rows), shstrndx
    ehdr.pack_into(out, EI_NIDENT, *fields)
    return bytes(out)
