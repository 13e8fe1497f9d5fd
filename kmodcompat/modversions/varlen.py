"""Gary Guo's variable-length ``__versions`` (Jan 2023, never merged).

Proposed in "modpost: support arbitrary symbol length in modversion"
(Message-ID 20230111161155.1349375-1-gary@garyguo.net) and turned down because
userspace parses ``__versions`` as fixed 64-byte records. Layout:
``u32 next | u32 crc | name NUL, zero-padded to 4``, next = 8 + ((len+1+3) & ~3),
both integers in target byte order, plus the string literal's final NUL, so
sh_size is odd and never a multiple of 64.
"""

from __future__ import annotations

from ..elf.image import MAX_TABLE_ENTRIES, ElfImage, struct_for, too_many_entries
from ..records import MODVERSION_ENTRY_SIZE, Finding, Modversion, VarlenVersions, raw, text

SECTION = "__versions"


def parse(elf: ElfImage) -> tuple[VarlenVersions | None, list[Finding]]:
    """Recognise the layout only where the fixed layout cannot hold (size % 64 != 0)."""
    sec = elf.section(SECTION)
    if sec is None or not elf.in_bounds(sec) or sec.size % MODVERSION_ENTRY_SIZE == 0:
        return None, []
    data = elf.data  # read in place: the table may span megabytes
    st = struct_for("II", elf.little)
    pos, size = sec.offset, sec.offset + sec.size

    def zeros(start: int, end: int) -> bool:
        return data.count(0, start, end) == end - start

    entries: list[Modversion] = []
    while pos + 8 <= size:
        nxt, crc = st.unpack_from(data, pos)
        if nxt == 0 and zeros(pos, size):
            break  # zero padding at the end
        if nxt < 12 or nxt % 4 or pos + nxt > size:
            return None, []
        if len(entries) == MAX_TABLE_ENTRIES:
            raise too_many_entries(SECTION, "variable-length entries")
        nul = data.find(b"\0", pos + 8, pos + nxt)
        if nul <= pos + 8 or not zeros(nul, pos + nxt):
            return None, []
        entries.append(Modversion(crc, text(data[pos + 8:nul])))
        pos += nxt
    if not entries or not zeros(pos, size):
        return None, []
    return VarlenVersions(tuple(entries)), [Finding(
        "versions-varlen", f"__versions holds {len(entries)} variable-length entries (the rejected 2023 format): "
        "every released kmod and kernel misreads it", SECTION)]


#: A name's NUL and zero padding to 4 bytes, by the name's length modulo 4.
_NUL_PADDED = (b"\0" * 4, b"\0" * 3, b"\0" * 2, b"\0")


def encode(entries: list[tuple[int, str]], little: bool) -> bytes:
    pack = struct_for("II", little).pack
    parts: list[bytes] = []
    for crc, name in entries:
        b = raw(name)
        tail = _NUL_PADDED[len(b) % 4]
        parts += (pack(8 + len(b) + len(tail), crc), b, tail)
    parts.append(b"\0")
    return b"".join(parts)
