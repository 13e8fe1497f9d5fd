"""``__versions``: the classic fixed-size table of import versions.

``struct modversion_info { unsigned long crc; char name[64 - sizeof(unsigned long)]; }``
(include/linux/module.h). The CRC field is the target's ``unsigned long`` in
the target's byte order, so on big-endian 64-bit the CRC sits in the last
four bytes of the field: reading only the first four would give 0.
"""

from __future__ import annotations

from ..elf import ElfImage, struct_for
from ..records import MODVERSION_ENTRY_SIZE, BasicVersions, Finding, Modversion, raw, text

SECTION = "__versions"
_ENTRY_FMT = {64: "Q56s", 32: "I60s"}


def name_limit(elfclass: int) -> int:
    """Longest name modpost writes into ``__versions`` (55 on 64-bit, 59 on 32-bit)."""
    return MODVERSION_ENTRY_SIZE - elfclass // 8 - 1


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
    data = elf.data
    crc_len = elf.elfclass // 8
    entries = []
    unterminated = 0
    high_bits = 0
    whole = sec.size - sec.size % MODVERSION_ENTRY_SIZE
    rows = struct_for(_ENTRY_FMT[elf.elfclass], elf.little).iter_unpack(
        memoryview(data)[sec.offset:sec.offset + whole])
    for i, (crc, field) in enumerate(rows):
        nul = field.find(b"\0")
        if nul >= 0:
            entries.append(Modversion(crc, text(field[:nul])))
            continue
        # No NUL in the field: C readers (the kernel, kmod 30) run on as strlen
        # does, into the next entry and possibly past the section.
        unterminated += 1
        start = sec.offset + i * MODVERSION_ENTRY_SIZE + crc_len
        end = data.find(b"\0", start)
        entries.append(Modversion(crc, text(data[start:end if end >= 0 else len(data)]), False))
    for e in entries:
        if e.crc >> 32:
            high_bits += 1
    if not whole == sec.size:
        return BasicVersions(sec.index, sec.alloc, sec.size, MODVERSION_ENTRY_SIZE, tuple(entries)), findings
    if unterminated:
        findings.append(Finding("versions-name-unterminated",
                                f"{unterminated} __versions name(s) without NUL inside the "
                                f"{MODVERSION_ENTRY_SIZE - crc_len}-byte field", SECTION))
    if high_bits:
        findings.append(Finding("versions-crc-high-bits",
                                f"{high_bits} __versions CRC(s) use the upper 32 bits (CRCs are 32-bit)", SECTION))
    return BasicVersions(sec.index, sec.alloc, sec.size, MODVERSION_ENTRY_SIZE, tuple(entries)), findings


def encode(entries: list[tuple[int, str]], elfclass: int, little: bool) -> bytes:
    """Section bytes for ``entries``, as modpost's ``add_versions`` lays them out.

    Names that do not fit (``len >= 56/60``) raise ValueError, as modpost's
    "too long symbol" error would stop the build.
    """
    st = struct_for(_ENTRY_FMT[elfclass], little)
    limit = name_limit(elfclass)
    out = bytearray()
    for crc, name in entries:
        b = raw(name)
        if len(b) > limit:
            raise ValueError(f"too long symbol {name!r} for __versions ({len(b)} > {limit})")
        out += st.pack(crc, b)
    return bytes(out)
