"""``.modinfo``: the module's ``tag=value`` strings.

kmod_elf_get_modinfo_strings() skips leading NULs, splits on runs of NUL and
keeps a final unterminated string; kmod_module_get_info() then splits each
string at its first '='. Repeated tags are kept in file order.
"""

from __future__ import annotations

from sys import intern

from ..elf.image import ElfImage
from ..records import Finding, text

SECTION = ".modinfo"


def parse(elf: ElfImage) -> tuple[tuple[tuple[str, str | None], ...], list[Finding]]:
    sec = elf.section(SECTION)
    if sec is None:
        return (), [Finding("modinfo-missing", "no .modinfo section")]
    if not elf.in_bounds(sec):
        return (), [Finding("modinfo-out-of-bounds", ".modinfo runs past the end of the file", SECTION)]
    blob = elf.section_bytes(sec)
    findings = []
    if blob and blob[-1] != 0:
        findings.append(Finding("modinfo-unterminated", "the last .modinfo string has no NUL", SECTION))
    # Decoded whole, then split: '\0' and '=' are ASCII, and UTF-8 never decodes across them.
    # Interned: tags, and values such as vermagic and license, repeat in every module of a tree.
    pairs = []
    for s in text(blob).split("\0"):
        if not s:
            continue
        key, eq, value = s.partition("=")
        pairs.append((intern(key), intern(value) if eq else None))
    return tuple(pairs), findings
