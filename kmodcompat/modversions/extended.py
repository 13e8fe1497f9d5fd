"""``__version_ext_crcs`` + ``__version_ext_names``: extended MODVERSIONS (Linux 6.14+).

modpost (``add_extended_versions``) writes a ``u32`` array and a string table
of NUL-terminated names; the i-th CRC pairs with the i-th name. The names
array is a C string-literal concatenation, so one extra NUL trails it.

The pairing walk follows the kernel's ``elf_validity_cache_index_versions``:
count = sh_size(crcs) / 4 (a tail is ignored), then walk that many strings;
running out of names is fatal there ("more extended version crcs than
names"), extra names after the last CRC are allowed.
"""

from __future__ import annotations

from itertools import repeat

from ..elf.image import MAX_TABLE_ENTRIES, ElfImage, nul_strings, struct_for, too_many_entries
from ..records import ExtVersions, Finding, Modversion, names_text, raw

CRCS = "__version_ext_crcs"
NAMES = "__version_ext_names"
_new_tuple = tuple.__new__  # builds Modversion rows without the NamedTuple's Python __new__


def parse(elf: ElfImage) -> tuple[ExtVersions | None, list[Finding]]:
    csec = elf.section(CRCS)
    nsec = elf.section(NAMES)
    if csec is None and nsec is None:
        return None, []
    findings: list[Finding] = []
    if csec is None:
        findings.append(Finding("ext-crcs-missing", f"{NAMES} without {CRCS}: the kernel refuses the module "
                                "(extended version crc+name presence does not match)", NAMES))
    if nsec is None:
        findings.append(Finding("ext-names-missing", f"{CRCS} without {NAMES}: the kernel refuses the module "
                                "(extended version crc+name presence does not match)", CRCS))
    for sec in (csec, nsec):
        if sec is not None and not sec.alloc:
            findings.append(Finding("ext-not-alloc", f"{sec.name} lacks SHF_ALLOC: the kernel ignores it", sec.name))
    crcs: list[int] = []
    if csec is not None:
        if not elf.in_bounds(csec):
            findings.append(Finding("ext-out-of-bounds", f"{CRCS} runs past the end of the file", CRCS))
        else:
            if csec.size % 4:
                findings.append(Finding("ext-crcs-size-not-multiple",
                                        f"{CRCS} size {csec.size} is not a multiple of 4", CRCS))
            usable = csec.size - csec.size % 4
            if usable // 4 > MAX_TABLE_ENTRIES:
                raise too_many_entries(CRCS, "CRCs")
            crcs = [c for (c,) in struct_for("I", elf.little).iter_unpack(
                memoryview(elf.data)[csec.offset:csec.offset + usable])]
    names: list[bytes] = []
    unterminated_tail = False
    if nsec is not None:
        if not elf.in_bounds(nsec):
            findings.append(Finding("ext-out-of-bounds", f"{NAMES} runs past the end of the file", NAMES))
        else:
            names, unterminated_tail = _names(elf.data, nsec.offset, nsec.offset + nsec.size, len(crcs))
    n = len(crcs)
    entries = tuple(map(_new_tuple, repeat(Modversion), zip(crcs, names_text(names[:n]), repeat(True))))
    if csec is not None and nsec is not None:
        if len(names) < n:
            why = " (the last name has no NUL)" if unterminated_tail else ""
            findings.append(Finding("ext-fewer-names", f"{n} CRCs but {len(names)} complete names{why}: the kernel "
                                    "refuses the module (more extended version crcs than names)", NAMES))
        extra = [x for x in names[n:] if x]
        if extra:
            findings.append(Finding("ext-extra-names", f"{len(extra)} name(s) after the last CRC (tolerated)", NAMES))
        if unterminated_tail and len(names) >= n:
            findings.append(Finding("ext-extra-names", "trailing bytes without NUL after the last name (tolerated)",
                                    NAMES))
    return ExtVersions(
        csec.index if csec is not None else None, nsec.index if nsec is not None else None,
        csec.alloc if csec is not None else False, nsec.alloc if nsec is not None else False,
        csec.size if csec is not None else 0, nsec.size if nsec is not None else 0,
        n, sum(1 for x in names if x), entries), findings


def _names(data: bytes, start: int, end: int, wanted: int) -> tuple[list[bytes], bool]:
    """The complete (NUL-terminated) names of ``data[start:end]``, empty ones included, and whether
    bytes without NUL follow the last.

    Bounded: past the ``wanted`` names the CRCs pair with, only the non-empty names are kept
    (what the callers count), at most MAX_TABLE_ENTRIES of them; a names table pointed at
    megabytes of zeros would otherwise make one empty name per byte.
    """
    unterminated_tail = end > start and data[end - 1] != 0
    if end - start <= 2 * MAX_TABLE_ENTRIES:  # too small to hold too many names: split at once
        return data[start:end].split(b"\0")[:-1], unterminated_tail
    names: list[bytes] = []
    pos = start
    while len(names) < wanted:
        nul = data.find(b"\0", pos, end)
        if nul < 0:
            return names, unterminated_tail
        names.append(data[pos:nul])
        pos = nul + 1
    stop = data.rfind(b"\0", pos, end) + 1  # the unterminated tail is no name
    names += nul_strings(data, pos, stop, NAMES) if stop > pos else []
    return names, unterminated_tail


def encode(entries: list[tuple[int, str]], little: bool) -> tuple[bytes, bytes]:
    """(crcs section, names section) as modpost writes them, trailing extra NUL included."""
    st = struct_for("I", little)
    crcs = b"".join(st.pack(crc) for crc, _ in entries)
    names = b"".join(raw(name) + b"\0" for _, name in entries) + b"\0"
    return crcs, names
