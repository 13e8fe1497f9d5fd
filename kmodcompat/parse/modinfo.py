"""``.modinfo``: the module's ``tag=value`` strings.

kmod_elf_get_modinfo_strings() skips leading NULs, splits on runs of NUL and
keeps a final unterminated string; kmod_module_get_info() then splits each
string at its first '='. Repeated tags are kept in file order.
"""

from __future__ import annotations

from sys import intern

from . import accel
from ..elf.image import MAX_TABLE_ENTRIES, ElfImage, nul_strings
from ..records import Finding, text

SECTION = ".modinfo"


def parse(elf: ElfImage) -> tuple[tuple[tuple[str, str | None], ...], list[Finding]]:
    sec = elf.section(SECTION)
    if sec is None:
        return (), [Finding("modinfo-missing", "no .modinfo section")]
    if not elf.in_bounds(sec):
        return (), [Finding("modinfo-out-of-bounds", ".modinfo runs past the end of the file", SECTION)]
    data = elf.data
    end = sec.offset + sec.size
    findings = []
    if sec.size and data[end - 1] != 0:
        findings.append(Finding("modinfo-unterminated", "the last .modinfo string has no NUL", SECTION))
    ext = accel.ext
    read = None if ext is None else ext.modinfo(data, sec.offset, sec.size)
    if read is not None:  # the same pairs, compiled (parse/accel.py)
        return read, findings
    # Bounded (a section table may point .modinfo at megabytes of zeros): see nul_strings.
    # Decoded whole, then split: '\0' and '=' are ASCII, and UTF-8 never decodes across them.
    # Interned: tags, and values such as vermagic and license, repeat in every module of a tree.
    if sec.size <= 2 * MAX_TABLE_ENTRIES:  # too small to hold too many strings: split at once
        strings = text(data[sec.offset:end]).split("\0")
    else:
        strings = text(b"\0".join(nul_strings(data, sec.offset, end, SECTION))).split("\0")
    pairs = []
    for s in strings:
        if not s:
            continue
        key, eq, value = s.partition("=")
        pairs.append((intern(key), intern(value) if eq else None))
    return tuple(pairs), findings
