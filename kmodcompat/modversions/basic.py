"""``__versions``: the classic fixed-size table of import versions.

``struct modversion_info { unsigned long crc; char name[64 - sizeof(unsigned long)]; }``
(include/linux/module.h). The CRC field is the target's ``unsigned long`` in
the target's byte order, so on big-endian 64-bit the CRC sits in the last
four bytes of the field: reading only the first four would give 0.
"""

from __future__ import annotations

import struct
from typing import cast

from ..parse import accel
from ..elf.image import MAX_TABLE_ENTRIES, ElfImage, struct_for, too_many_entries
from ..records import MODVERSION_ENTRY_SIZE, BasicVersions, Finding, Modversion, names_text, raw, text

SECTION = "__versions"
ENTRY_FMT = {64: "Q56s", 32: "I60s"}  # struct modversion_info
#: Bytes that unterminated names may read past their fields, in total, per table (see read_entries).
_RUN_ON_BUDGET = 1 << 16
_new_tuple = tuple.__new__  # builds Modversion rows without the NamedTuple's Python __new__
_RECORD = struct.Struct(f"{MODVERSION_ENTRY_SIZE}s")
#: The Modversion of each record read so far whose name has a NUL, by word size and byte order. The
#: same records recur across a tree's modules (each import of a symbol from one build): decoded once,
#: and shared, a tree's records hold each once.
_KNOWN: dict[tuple[int, bool], dict[bytes, Modversion]] = {(elfclass, little): {} for elfclass in (32, 64)
                                                           for little in (False, True)}
_KNOWN_LIMIT = 1 << 16  # records, about 15 MB; a tree has up to 20,000 distinct ones


def name_limit(elfclass: int) -> int:
    """Longest name modpost writes into ``__versions`` (55 on 64-bit, 59 on 32-bit)."""
    return MODVERSION_ENTRY_SIZE - elfclass // 8 - 1


def too_long(name: str, elfclass: int) -> bool:
    """Whether a BASIC-only build stops on ``name``: scripts/mod/modpost.c ``add_versions()`` fails with
    ``ERROR: modpost: too long symbol "<sym>" [<mod>.ko]`` when ``strlen(s->name) >= MODULE_NAME_LEN``
    (``64 - sizeof(unsigned long)``: 56 on 64-bit, 60 on 32-bit) and the extended tables are off; with
    them on it leaves the name to ``__version_ext_names`` (docs/formats.md §1.2)."""
    return len(raw(name)) > name_limit(elfclass)


def parse(elf: ElfImage) -> tuple[BasicVersions | None, list[Finding]]:
    sec = elf.section(SECTION)
    if sec is None:
        return None, []
    findings: list[Finding] = []
    if not sec.alloc:
        findings.append(Finding("versions-not-alloc", "__versions lacks SHF_ALLOC: the kernel ignores it, "
                                "kmod still reads it", SECTION))
    if not elf.in_bounds(sec):
        findings.append(Finding("versions-out-of-bounds", "__versions runs past the end of the file", SECTION))
        return BasicVersions(sec.index, sec.alloc, sec.size, MODVERSION_ENTRY_SIZE, ()), findings
    if sec.size % MODVERSION_ENTRY_SIZE:
        # kmod refuses such a table (BasicVersions.well_formed is False); the kernel
        # still reads sh_size / 64 records, which is how it misreads other layouts.
        findings.append(Finding("versions-size-not-multiple",
                                f"__versions size {sec.size} is not a multiple of {MODVERSION_ENTRY_SIZE}", SECTION))
    if sec.size // MODVERSION_ENTRY_SIZE > MAX_TABLE_ENTRIES:
        raise too_many_entries(SECTION, "records")
    entries, unterminated = read_entries(elf.data, sec.offset, sec.size, elf.elfclass, elf.little)
    record = BasicVersions(sec.index, sec.alloc, sec.size, MODVERSION_ENTRY_SIZE, tuple(entries))
    if sec.size % MODVERSION_ENTRY_SIZE:
        return record, findings  # records of another layout: their names and CRCs mean nothing
    if unterminated:
        findings.append(Finding("versions-name-unterminated",
                                f"{unterminated} __versions name(s) without NUL inside the "
                                f"{MODVERSION_ENTRY_SIZE - elf.elfclass // 8}-byte field", SECTION))
    # Entries compare by CRC first: the largest shows whether any CRC needs counting.
    high_bits = sum(1 for crc, _, _ in entries if crc >> 32) if entries and max(entries)[0] >> 32 else 0
    if high_bits:
        findings.append(Finding("versions-crc-high-bits",
                                f"{high_bits} __versions CRC(s) use the upper 32 bits (CRCs are 32-bit)", SECTION))
    return record, findings


def read_entries(data: bytes, offset: int, size: int, elfclass: int, little: bool) -> tuple[list[Modversion], int]:
    """The ``size // 64`` fixed records at ``offset`` of ``data``, and how many lack a NUL.

    A name without NUL inside its field is read on as C's strlen() does, into
    the next record and past the table, up to the end of ``data``. The bytes
    read on in total are capped (``_RUN_ON_BUDGET``): in a table of records
    without any NUL each name would run to the end of the image, quadratic
    time and memory; past the cap a name stops at the end of its field.
    Records read before with a NUL in their name are not decoded again (``_KNOWN``).
    """
    ext = accel.ext
    read = None if ext is None else ext.versions(data, offset, size - size % MODVERSION_ENTRY_SIZE, elfclass, little)
    if read is not None:  # every name ends in its field: the same rows, compiled (parse/accel.py)
        return read, 0
    crc_len = elfclass // 8
    field_len = MODVERSION_ENTRY_SIZE - crc_len
    whole = size - size % MODVERSION_ENTRY_SIZE
    records = [record for (record,) in _RECORD.iter_unpack(memoryview(data)[offset:offset + whole])]
    known = _KNOWN[elfclass, little]
    entries: list[Modversion | None] = list(map(known.get, records))  # None where not known, filled in below
    if None not in entries:
        return cast("list[Modversion]", entries), 0
    if len(known) > _KNOWN_LIMIT:
        known.clear()
    new = [i for i, entry in enumerate(entries) if entry is None]
    crcs, fields = zip(*map(struct_for(ENTRY_FMT[elfclass], little).unpack, map(records.__getitem__, new)))
    raw_names = [f.partition(b"\0")[0] for f in fields]
    unterminated = 0
    budget = _RUN_ON_BUDGET
    for i, crc, raw_name, name in zip(new, crcs, raw_names, names_text(raw_names)):
        if len(raw_name) < field_len:
            entries[i] = known[records[i]] = _new_tuple(Modversion, (crc, name, True))
            continue
        # A name filling its whole field has no NUL in it.
        unterminated += 1
        start = offset + i * MODVERSION_ENTRY_SIZE + crc_len
        field_end = start + field_len
        stop = min(len(data), field_end + budget)
        end = data.find(b"\0", field_end, stop)
        end = end if end >= 0 else stop
        budget -= end - field_end
        entries[i] = Modversion(crc, text(data[start:end]), False)
    return cast("list[Modversion]", entries), unterminated  # every None filled in above


def encode(entries: list[tuple[int, str]], elfclass: int, little: bool) -> bytes:
    """Section bytes for ``entries``, as modpost's ``add_versions`` lays them out.

    Names that do not fit (``len >= 56/60``) raise ValueError, as modpost's
    "too long symbol" error would stop the build.
    """
    st = struct_for(ENTRY_FMT[elfclass], little)
    limit = name_limit(elfclass)
    out = bytearray()
    for crc, name in entries:
        b = raw(name)
        if too_long(name, elfclass):
            raise ValueError(f"too long symbol {name!r} for __versions ({len(b)} > {limit})")
        out += st.pack(crc, b)
    return bytes(out)
