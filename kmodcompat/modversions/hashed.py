"""Hashed long names in ``__versions`` (Sami Tolvanen's June 2024 RFC, never merged).

"[PATCH 13/15] modpost: Add support for hashing long symbol names"
(Message-ID 20240617175818.58219-30-samitolvanen@google.com) and "[PATCH 14/15]
module: Support hashed symbol names when checking modversions"
(20240617175818.58219-31-samitolvanen@google.com), of the series "Implement
MODVERSIONS for Rust" (20240617175818.58219-17-samitolvanen@google.com); v2 of the
series dropped them for the extended tables of 6.14 (docs/formats.md §2.5).

The table keeps the fixed 64-byte ``struct modversion_info``. modpost's
``add_versions()`` writes a name of ``MODULE_NAME_LEN`` (56 on 64-bit, 60 on
32-bit) or more characters as the C string ``"sha256\\x00\\xNN..."``: the bytes
``sha256``, a NUL, the 32-byte SHA-256 digest of the name with one leading '.'
dropped (``symhash_str()``, "to match PPC64 behavior"), then the string's own NUL
and the zero fill of the field. Every C-string reader (kmod, module-init-tools, a
kernel without the RFC) sees a symbol named ``sha256``; the RFC's
``check_version()`` hashes a looked-up name of ``MODULE_NAME_LEN`` characters or
more and ``memcmp()``s the first 39 bytes of each name field against
``"sha256\\0" + digest`` (``symcmp()``); shorter names are ``strcmp()``ed as before.

A record is recognised as hashed, never guessed, when its name field is exactly
that: the prefix, 32 bytes that are not all zero (the record of a real import of
the kernel's ``sha256()`` is the prefix and zeros), and zeros to the end of the
field. The digest is resolved to the module's own import whose name hashes to it.
"""

from __future__ import annotations

import hashlib

from ..elf.image import ElfImage, struct_for
from ..records import MODVERSION_ENTRY_SIZE, BasicVersions, Finding, HashedVersions, Import, Modversion, raw
from . import basic

#: kernel/module/version.c SYMHASH_PREFIX with its NUL (SYMHASH_PREFIX_LEN = sizeof "sha256").
PREFIX = b"sha256\0"
DIGEST_SIZE = 32  # SHA256_DIGEST_SIZE
HASH_LEN = len(PREFIX) + DIGEST_SIZE  # SYMHASH_LEN: the bytes symcmp() compares
#: The name every C-string reader takes a hashed record for.
SHOWN_NAME = "sha256"


def module_name_len(elfclass: int) -> int:
    """``MODULE_NAME_LEN``: names this long or longer are hashed (56 on 64-bit, 60 on 32-bit)."""
    return basic.name_limit(elfclass) + 1


def is_hashed_name(name: str, elfclass: int) -> bool:
    """modpost's test (``strlen(s->name) >= MODULE_NAME_LEN``), on the name as ``.symtab`` spells it."""
    return len(raw(name)) >= module_name_len(elfclass)


def digest(name: str) -> bytes:
    """``symhash_str()``: SHA-256 of the name without one leading '.'."""
    return hashlib.sha256(raw(name.removeprefix("."))).digest()


def hashed_field(name: str) -> bytes:
    """The bytes the name field starts with for a hashed ``name`` (``symhash()``, what symcmp() compares)."""
    return PREFIX + digest(name)


def encode(entries: list[tuple[int, str]], elfclass: int, little: bool) -> bytes:
    """``__versions`` as the RFC's modpost writes it: long names hashed, the others as :func:`basic.encode`."""
    st = struct_for(basic.ENTRY_FMT[elfclass], little)
    out = bytearray()
    for crc, name in entries:
        out += st.pack(crc, hashed_field(name) if is_hashed_name(name, elfclass) else raw(name))
    return bytes(out)


def parse(elf: ElfImage, versions: BasicVersions | None,
          imports: tuple[Import, ...]) -> tuple[HashedVersions | None, list[Finding]]:
    """The hashed records of a well-formed ``__versions`` (``versions``, as :func:`basic.parse` read it),
    resolved against the module's ``imports``; None when it has none."""
    sec = elf.section(basic.SECTION)
    if versions is None or sec is None or not elf.in_bounds(sec) or not versions.well_formed:
        return None, []
    data = elf.data
    start, end = sec.offset, sec.offset + sec.size
    if data.find(PREFIX, start, end) < 0:  # the common case: one scan of the table
        return None, []
    crc_len = elf.elfclass // 8
    field_len = MODVERSION_ENTRY_SIZE - crc_len
    zero_digest = bytes(DIGEST_SIZE)
    indices: list[int] = []
    digests: list[bytes] = []
    for i, e in enumerate(versions.entries):
        if e.name != SHOWN_NAME:
            continue
        at = start + i * MODVERSION_ENTRY_SIZE + crc_len
        name_field = data[at:at + field_len]
        body = name_field[len(PREFIX):HASH_LEN]
        if body != zero_digest and name_field.count(0, HASH_LEN) == field_len - HASH_LEN:
            indices.append(i)
            digests.append(body)
    if not indices:
        return None, []
    by_digest: dict[bytes, str] = {}
    for imp in imports:
        if is_hashed_name(imp.name, elf.elfclass):
            by_digest.setdefault(digest(imp.name), imp.name)
    entries = tuple(Modversion(versions.entries[i].crc, by_digest.get(d, "")) for i, d in zip(indices, digests))
    findings = [Finding("versions-hashed", f"__versions holds {len(indices)} hashed name(s) (the 2024 RFC's "
                        "\"sha256\\0\" + SHA-256 records): released kmod and kernels read a symbol named sha256",
                        basic.SECTION)]
    unresolved = sum(1 for e in entries if not e.name)
    if unresolved:
        findings.append(Finding("versions-hash-unresolved", f"{unresolved} hashed __versions name(s) match no "
                                "import of the module", basic.SECTION))
    return HashedVersions(tuple(indices), tuple(d.hex() for d in digests), entries), findings


def matchable(versions: BasicVersions, hashed: HashedVersions) -> tuple[Modversion, ...]:
    """``__versions`` as the RFC's check_version() matches names: every record under the name strcmp()
    sees (a hashed one as "sha256"), then each resolved hashed record under its long name.

    symcmp() compares a long name with the hashed records only and a short one by strcmp() only, so
    the long names appended after the table keep "the first record that matches" exact for both.
    """
    return versions.entries + tuple(e for e in hashed.entries if e.name)
