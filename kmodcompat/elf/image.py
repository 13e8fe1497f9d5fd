"""ELF access: header, section table and bounded reads from raw bytes.

The header and the section header table are read with one ``struct`` call
each: pyelftools takes ~1.5 ms per module to build its section objects
(measured on bookworm amd64), six seconds for a 4,000-module tree, while
kmod's depmod reads the whole tree in about one. pyelftools remains the
structural reference: the tests check this reader against it, and its
enumerations name machines and section types for display.

Acceptance follows kmod's ``kmod_elf_new()`` (libkmod-elf.c): a file kmod
refuses raises :class:`ElfError`; anything kmod tolerates is readable here
and problems in individual sections become findings later.
"""

from __future__ import annotations

import errno
import struct
import sys
from array import array
from collections.abc import Sequence
from functools import cache
from itertools import repeat
from operator import add
from typing import cast

from ..errors import ElfError
from ..parse import accel
from ..records import CrcSymbol, ElfHeader, Import, Modversion, Section, names_text
from .layout import EHDR as _EHDR
from .layout import EHDR_SIZE as _EHDR_SIZE
from .layout import EI_NIDENT, ELFMAG
from .layout import SHDR as _SHDR
from .layout import SHDR_SIZE as _SHDR_SIZE

_HOST_LITTLE = sys.byteorder == "little"
_new_tuple = tuple.__new__  # builds Section rows in one map, without the NamedTuple's Python __new__
_UNREAD = object()

#: Entries kmodcompat reads from one table of a module (``.modinfo`` strings, ``__versions``
#: records, extended CRCs and names, ``__ksymtab_strings``, variable-length entries). The
#: largest real tables hold 1,607 (.modinfo of usb/serial/option.ko) and 1,231 (__versions of
#: i915.ko) entries (bookworm and trixie amd64). A section table may point several tables at
#: one region of 200 MiB of zeros in a 30 KB .ko.xz: tens of millions of entries, gigabytes
#: of records. Past this many, the module is refused (:func:`too_many_entries`), never
#: analysed in part: a consumer's verdict on part of a table would be an invention.
MAX_TABLE_ENTRIES = 1 << 16
#: Symbols of one .symtab (24 MiB of Elf64_Sym); the largest real table, amdgpu's, has
#: 46,371 (trixie amd64).
MAX_SYMBOLS = 1 << 20
_STRINGS_CHUNK = 1 << 20
_ZERO_CHUNK = bytes(_STRINGS_CHUNK)


def too_many_entries(section: str, what: str = "entries", limit: int = MAX_TABLE_ENTRIES) -> ElfError:
    """The error for a table with more than ``limit`` entries: the module is refused as a whole."""
    return ElfError(f"{section} holds more than {limit} {what}: more than kmodcompat reads "
                    "(real modules hold a few thousand)", "too-many-entries")


def nul_strings(data: bytes, start: int, end: int, section: str) -> list[bytes]:
    """The non-empty runs of bytes between NULs of ``data[start:end]`` (a final one without NUL
    included), in order; :func:`too_many_entries` past :data:`MAX_TABLE_ENTRIES`.

    ``bytes.split`` of the whole would make an object for each empty piece: one per byte of a
    zero region. The region is split a chunk at a time instead (cut at a NUL), chunks of zeros
    skipped by one comparison, so the pieces in hand stay bounded and zeros cost a memcmp.
    Small tables (which cannot reach the limit) are split at once: that is faster.
    """
    if end - start <= 2 * MAX_TABLE_ENTRIES:
        return [piece for piece in data[start:end].split(b"\0") if piece]
    runs: list[bytes] = []
    pos = start
    while pos < end:
        if data.startswith(_ZERO_CHUNK, pos) and pos + _STRINGS_CHUNK <= end:  # a memcmp, no copy
            pos += _STRINGS_CHUNK
            continue
        stop = min(end, pos + _STRINGS_CHUNK)
        if stop < end:  # cut at the last NUL of the chunk (or the first after it): no string is split
            cut = data.rfind(b"\0", pos, stop)
            stop = cut if cut >= 0 else data.find(b"\0", stop, end) % (end + 1)  # -1 (none): the end
        runs += filter(None, data[pos:stop].split(b"\0"))
        if len(runs) > MAX_TABLE_ENTRIES:
            raise too_many_entries(section, "strings")
        pos = stop + 1
    return runs


@cache
def _struct(fmt: str, little: bool) -> struct.Struct:
    return struct.Struct(("<" if little else ">") + fmt)


def struct_for(fmt: str, little: bool) -> struct.Struct:
    """A cached ``struct.Struct`` in the file's byte order."""
    return _struct(fmt, little)


def column(table: bytes | memoryview, typecode: str, offset: int, entsize: int, little: bool) -> list[int]:
    """One field of every ``entsize``-byte entry of ``table``, read in one pass.

    ``typecode`` is the field's :mod:`array` type (B, H, I, Q); ``offset``, its place in
    the entry, is a multiple of its size, as in every ELF table.
    """
    return column_array(table, typecode, offset, entsize, little).tolist()


def column_array(table: bytes | memoryview, typecode: str, offset: int, entsize: int, little: bool) -> array[int]:
    """:func:`column` as an :class:`array.array`: 4 or 8 bytes a value, for tables too large for lists."""
    values = array(typecode)
    values.frombytes(table)
    if little != _HOST_LITTLE:
        values.byteswap()
    width = values.itemsize
    return values[offset // width::entsize // width]


class ElfImage:
    """Read-only view of one ELF image (the decompressed module bytes)."""

    __slots__ = ("data", "header", "sections", "little", "elfclass", "_names")
    header: ElfHeader
    sections: tuple[Section, ...]
    _names: dict[str, Section]

    def __init__(self, data: bytes):
        self.data = data
        ext = accel.ext
        read = ext.elf_image(data) if ext is not None else None  # None: not the plain case (parse/accel.py)
        if read is None:
            self._read(data)
            return
        self.header, self.sections, self._names = read
        self.little = self.header.little_endian
        self.elfclass = self.header.elfclass

    def _read(self, data: bytes) -> None:
        """The reference reader (and the only one for whatever the compiled one leaves to it)."""
        size = len(data)
        if size < 6:  # kmod_file_open() cannot even read a magic: EINVAL, not ENOEXEC
            raise ElfError(f"file too short ({size} bytes)", "truncated")
        if size <= EI_NIDENT or data[:4] != ELFMAG:
            raise ElfError("not an ELF file (bad magic)", "not-elf", errno.ENOEXEC)
        ei_class, ei_data = data[4], data[5]
        if ei_class == 1:
            elfclass = 32
        elif ei_class == 2:
            elfclass = 64
        else:
            raise ElfError(f"invalid ELF class {ei_class}", "bad-elf-header")
        if ei_data not in (1, 2):
            raise ElfError(f"invalid ELF data encoding {ei_data}", "bad-elf-header")
        little = ei_data == 1
        if size <= _EHDR_SIZE[elfclass]:  # elf_identify() refuses an image of exactly the header
            raise ElfError(f"file too short for an ELF{elfclass} header ({size} bytes)", "truncated")
        (e_type, e_machine, _ver, _entry, _phoff, e_shoff, e_flags, e_ehsize, _phentsize, _phnum,
         e_shentsize, e_shnum, e_shstrndx) = _struct(_EHDR[elfclass], little).unpack_from(data, EI_NIDENT)
        self.header = _new_tuple(ElfHeader, (elfclass, little, e_type, e_machine, e_flags, data[7], e_shoff,
                                             e_shentsize, e_shnum, e_shstrndx, e_ehsize))
        self.little = little
        self.elfclass = elfclass
        shdr_size = _SHDR_SIZE[elfclass]
        # Same order of checks as kmod_elf_new(): table fits, then entry size.
        if e_shoff + shdr_size * e_shnum > size:
            raise ElfError(f"section header table ({e_shnum} x {shdr_size} bytes at offset {e_shoff}) "
                           f"runs past the end of the file ({size} bytes)", "truncated")
        if e_shentsize != shdr_size:
            raise ElfError(f"e_shentsize is {e_shentsize}, ELF{elfclass} needs {shdr_size}", "bad-elf-header")
        # kmod_elf_new() then hands e_shstrndx to elf_get_section_info(), whose assert()s (Debian builds
        # keep them) abort the tool on SHN_UNDEF or an index not below e_shnum (e_shnum 0 included):
        # the codes say which (kmod.elf.section_assert).
        if e_shstrndx == 0:
            raise ElfError("e_shstrndx is SHN_UNDEF (0)", "shstrndx-undef")
        if e_shstrndx >= e_shnum:
            raise ElfError(f"e_shstrndx {e_shstrndx} is not a section (e_shnum {e_shnum})", "shstrndx-invalid")
        rows = list(_struct(_SHDR[elfclass], little).iter_unpack(
            memoryview(data)[e_shoff:e_shoff + shdr_size * e_shnum]))
        str_off, str_size = rows[e_shstrndx][4], rows[e_shstrndx][5]
        if str_off + str_size > size:
            raise ElfError("section name table runs past the end of the file", "truncated")
        if str_size == 0 or data[str_off + str_size - 1] != 0:
            raise ElfError("section name table does not end with NUL", "bad-elf-header")
        # sh_name >= str_size: kmod fails the lookup of such a section; it can never match a name.
        # None past that only comes from a hostile table spending StringTable's budget.
        columns = list(zip(*rows))  # sh_name, sh_type, ... sh_entsize
        names = StringTable(data, str_off, str_off + str_size).texts(columns[0])
        if None in names:
            names = [name or "" for name in names]
        self.sections = tuple(map(_new_tuple, repeat(Section), zip(range(e_shnum), names, *columns[1:])))
        # Stored last first, so that the first section (index >= 1) of a name wins.
        self._names = {sec.name: sec for sec in self.sections[:0:-1]}

    def section(self, name: str) -> Section | None:
        """First section (index >= 1) called ``name``; flags are ignored, as in kmod."""
        return self._names.get(name)

    def in_bounds(self, sec: Section) -> bool:
        return sec.offset + sec.size <= len(self.data)

    def section_bytes(self, sec: Section) -> bytes:
        """The section's bytes; callers check :meth:`in_bounds` first when it matters."""
        return self.data[sec.offset:sec.offset + sec.size]

    def cstring(self, offset: int, end: int | None = None) -> bytes | None:
        """NUL-terminated bytes at ``offset``, searching no further than ``end``; None if unterminated."""
        data = self.data
        stop = len(data) if end is None else min(end, len(data))
        nul = data.find(b"\0", offset, stop)
        if nul < 0:
            return None
        return data[offset:nul]


class StringTable:
    """NUL-terminated strings of one string table, with a bounded total cost.

    Many entries of a hostile file can point into one long run of bytes
    without NUL, each at its own offset (i, i+1, ...): reading each string in
    full costs time and memory quadratic in the table's size (a 5 MB module,
    or a 40 KB xz bomb, would need terabytes). Strings are cached by offset,
    so entries sharing an offset share one string, and the bytes scanned for
    distinct offsets are capped at ``BUDGET_FACTOR`` times the table's size
    plus ``BUDGET_SLACK``; once that is spent, strings not read yet read as
    None, like an unterminated one. Real tables never come near the cap: ld
    merges common tails, and the reads of a Debian module (the ``__crc_`` /
    ``__ksymtab_`` suffixes ksymtab reads included) cover at most 1.55 times
    its table (measured over bookworm amd64 and trixie armmp).

    Strings are interned: section and symbol names repeat across modules, and a
    string shared by records pickles once per batch (see scan.parse_many).
    """

    BUDGET_FACTOR = 8
    BUDGET_SLACK = 1 << 16

    __slots__ = ("_data", "_start", "_size", "_budget", "_cache", "_table", "_decoded")

    def __init__(self, data: bytes, start: int, end: int):
        self._data = data
        self._start = start
        self._size = max(0, min(end, len(data)) - start)
        self._budget = self.BUDGET_FACTOR * self._size + self.BUDGET_SLACK
        self._cache: dict[int, str | None] = {}
        self._table: bytes | None = None  # the table's bytes, and their text when ASCII: see _read_at_once
        self._decoded: str | None = None

    def text(self, offset: int) -> str | None:
        """The string at ``offset`` into the table, decoded; None when out of range or unterminated."""
        cache = self._cache
        value = cache.get(offset, _UNREAD)
        if value is not _UNREAD:
            return value  # type: ignore[return-value]  # a cached str or None
        value = None
        if 0 <= offset < self._size:
            start = self._start + offset
            stop = min(self._start + self._size, start + self._budget)
            nul = self._data.find(b"\0", start, stop)
            if nul >= 0:
                value = sys.intern(self._data[start:nul].decode("utf-8", "surrogateescape"))
                self._budget -= nul - start + 1
            else:
                self._budget -= stop - start
        cache[offset] = value
        return value

    def texts(self, offsets: Sequence[int]) -> list[str | None]:
        """:meth:`text` of each offset, in order, read in bulk: the same strings, cache and budget."""
        cache = self._cache
        fresh = set(offsets).difference(cache) if cache else set(offsets)
        if len(fresh) == len(offsets):  # each offset once, none read yet (a table's first read, as a rule)
            strings = self._read_at_once(offsets)
        elif fresh:
            strings = self._read_at_once(list(fresh))
            if strings is not None:
                strings = list(map(cache.__getitem__, offsets))
        else:
            strings = list(map(cache.__getitem__, offsets))
        return strings if strings is not None else list(map(self.text, offsets))

    def _read_at_once(self, offsets: Sequence[int]) -> list[str | None] | None:
        """Read and cache the strings at ``offsets`` (distinct, none read yet) at once, in order.

        None if they must be read one by one: each string's NUL is searched for
        no further than an equal share of the remaining budget. When every
        search succeeds, the scans fit the budget together, so reading the
        strings one by one, in any order, would have found the same NULs and
        spent the same budget. Otherwise nothing is read.
        """
        if not offsets:
            return []
        size = self._size
        if min(offsets) < 0 or max(offsets) >= size:  # the strings out of range read as None
            inside = [offset for offset in offsets if 0 <= offset < size]
            if self._read_at_once(inside) is None:
                return None
            self._cache.update(dict.fromkeys(set(offsets).difference(inside)))
            return list(map(self._cache.__getitem__, offsets))
        table = self._table
        if table is None:
            table = self._table = self._data[self._start:self._start + size]
            if table.isascii():  # as in every real table: offsets into the decoded table are the same
                self._decoded = table.decode("ascii")
        share = self._budget // len(offsets)
        if share >= size:  # no search can reach past its share (as a rule, for section names)
            nuls = list(map(table.find, repeat(b"\0"), offsets))
        else:
            nuls = list(map(table.find, repeat(b"\0"), offsets, map(add, offsets, repeat(share))))
        if -1 in nuls:
            return None
        self._budget -= sum(nuls) - sum(offsets) + len(nuls)
        strings: list[str]
        if self._decoded is not None:
            strings = list(map(sys.intern, map(self._decoded.__getitem__, map(slice, offsets, nuls))))
        else:
            strings = names_text(list(map(table.__getitem__, map(slice, offsets, nuls))))
        self._cache.update(zip(offsets, strings))
        return cast("list[str | None]", strings)  # every one found: no None in it


if accel.compiled is not None:  # the compiled readers take the row classes and the bounds from their homes
    accel.compiled.register(ElfHeader, Section, Import, CrcSymbol, Modversion, MAX_TABLE_ENTRIES, MAX_SYMBOLS,
                       StringTable.BUDGET_FACTOR, StringTable.BUDGET_SLACK)


def machine_name(machine: int) -> str:
    """``EM_X86_64`` style name for an e_machine value, from pyelftools' table."""
    from elftools.elf.enums import ENUM_E_MACHINE

    for k, v in ENUM_E_MACHINE.items():
        if v == machine and k != "_default_":
            return k
    return f"EM_{machine}"


def section_type_name(sh_type: int) -> str:
    from elftools.elf.enums import ENUM_SH_TYPE_BASE

    for k, v in ENUM_SH_TYPE_BASE.items():
        if v == sh_type and k != "_default_":
            return k
    return f"0x{sh_type:x}"


def section_flags_text(flags: int) -> str:
    """readelf's flag letters (W A X M S I L O G T E), enough for layout views."""
    letters = [(0x1, "W"), (0x2, "A"), (0x4, "X"), (0x10, "M"), (0x20, "S"), (0x40, "I"), (0x80, "L"),
               (0x100, "O"), (0x200, "G"), (0x400, "T"), (0x80000000, "E")]
    return "".join(ch for bit, ch in letters if flags & bit)
