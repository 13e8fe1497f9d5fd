"""Mutations of module files for fuzzing, shared by tests/test_fuzz.py and bench/fuzz.py.

Every mutation is driven by a ``random.Random`` (Hypothesis hands one to the
tests, bench/fuzz.py seeds its own), so a failing input can be rebuilt from
its seed. Besides blind bit flips and cuts, the ELF-aware mutations tell the
lies a hostile module tells: header and section-header fields set to
boundary values (0, the file size, one past it, 2**32-1, 2**64-1, ...),
symbol fields out of range, string tables without NUL, extended-modversions
tables out of step, signature trailers with impossible lengths, and
compressed streams cut, corrupted or followed by junk.
"""

from __future__ import annotations

import functools
import gzip
import lzma
import random
import struct
from collections.abc import Callable

import zstandard

from kmodcompat.parse import signature
from kmodcompat.elf.layout import SHDR, SHDR_SIZE, SYM
from kmodcompat.errors import ModuleReadError
from kmodcompat.files.opener import read_module_bytes
from kmodcompat.parse.module import parse_module, parse_module_bytes
from kmodcompat.records import ModuleRecord
from kmodcompat.simulate import FORMATS, BuildError, LayoutError, Simulation, simulate
from kmodcompat.validate import Validation, validate_bytes, validate_file

_SHDR = {cls: (SHDR[cls], SHDR_SIZE[cls]) for cls in (64, 32)}
#: Indexes (in the Elf_Shdr tuple) of the fields worth lying about: name, type, flags, offset, size, link,
#: info, entsize.
_SHDR_FIELDS = (0, 1, 2, 4, 5, 6, 7, 9)
_EHDR_FIELDS = {64: {"e_type": ("H", 16), "e_machine": ("H", 18), "e_shoff": ("Q", 40), "e_flags": ("I", 48),
                     "e_shentsize": ("H", 58), "e_shnum": ("H", 60), "e_shstrndx": ("H", 62)},
                32: {"e_type": ("H", 16), "e_machine": ("H", 18), "e_shoff": ("I", 32), "e_flags": ("I", 36),
                     "e_shentsize": ("H", 46), "e_shnum": ("H", 48), "e_shstrndx": ("H", 50)}}
_STRING_SECTIONS = (".strtab", ".shstrtab", ".modinfo", "__versions", "__version_ext_names", "__ksymtab_strings")


class _Elf:
    """Just enough of an ELF reader to aim mutations; None where the bytes do not allow it."""

    def __init__(self, buf: bytearray):
        self.buf = buf
        self.ok = len(buf) >= 64 and buf[:4] == b"\x7fELF" and buf[4] in (1, 2) and buf[5] in (1, 2)
        if not self.ok:
            return
        self.cls = 32 if buf[4] == 1 else 64
        self.bo = "<" if buf[5] == 1 else ">"
        self.shoff = self.ehdr("e_shoff")
        self.shnum = self.ehdr("e_shnum")
        fmt, size = _SHDR[self.cls]
        self.shdr_size = size
        self.shdr_fmt = self.bo + fmt
        self.sections = []
        for i in range(self.shnum):
            off = self.shoff + i * size
            if off + size > len(buf):
                break
            self.sections.append(struct.unpack_from(self.shdr_fmt, buf, off))

    def ehdr(self, name: str, value: int | None = None) -> int:
        code, off = _EHDR_FIELDS[self.cls][name]
        fmt = self.bo + code
        if value is not None:
            struct.pack_into(fmt, self.buf, off, value & ((1 << (8 * struct.calcsize(fmt))) - 1))
        return struct.unpack_from(fmt, self.buf, off)[0]

    def set_shdr(self, index: int, field: int, value: int) -> None:
        row = list(self.sections[index])
        width = 8 * struct.calcsize(self.bo + self.shdr_fmt[1 + field])
        row[field] = value & ((1 << width) - 1)
        struct.pack_into(self.shdr_fmt, self.buf, self.shoff + index * self.shdr_size, *row)
        self.sections[index] = tuple(row)

    def named(self, name: str) -> int | None:
        """Index of the section called ``name``, if the name table can be read."""
        strndx = self.ehdr("e_shstrndx")
        if strndx >= len(self.sections):
            return None
        str_off, str_size = self.sections[strndx][4], self.sections[strndx][5]
        want = name.encode() + b"\0"
        for i, row in enumerate(self.sections):
            start = str_off + row[0]
            if row[0] < str_size and self.buf[start:start + len(want)] == want:
                return i
        return None


def _interesting(rng: random.Random, size: int) -> int:
    return rng.choice((0, 1, 2, 3, 4, 7, 8, 63, 64, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0xFFF1, 0xFFF2, 0xFF20,
                       size - 1, size, size + 1, size // 2, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32,
                       (1 << 63), (1 << 64) - 1, rng.getrandbits(64), rng.randrange(max(size, 1))))


def bit_flips(buf: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 8)):
        if buf:
            pos = rng.randrange(len(buf))
            buf[pos] ^= 1 << rng.randrange(8)


def byte_sets(buf: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 4)):
        if buf:
            buf[rng.randrange(len(buf))] = rng.choice((0, 0xFF, 0x7F, 0x80, 0x41))


def truncate(buf: bytearray, rng: random.Random) -> None:
    if buf:
        del buf[rng.randrange(len(buf)):]


def splice(buf: bytearray, rng: random.Random) -> None:
    """Delete, duplicate or insert a chunk (offsets of everything after it shift)."""
    if not buf:
        return
    start = rng.randrange(len(buf))
    length = rng.randint(1, min(4096, len(buf) - start))
    kind = rng.randrange(3)
    if kind == 0:
        del buf[start:start + length]
    elif kind == 1:
        buf[start:start] = buf[start:start + length]
    else:
        buf[start:start] = rng.randbytes(length)


def ehdr_lie(buf: bytearray, rng: random.Random) -> None:
    elf = _Elf(buf)
    if not elf.ok:
        return bit_flips(buf, rng)
    if rng.random() < 0.15:
        buf[rng.choice((4, 5))] = rng.choice((0, 1, 2, 3, 0xFF))  # class / byte order
        return None
    elf.ehdr(rng.choice(list(_EHDR_FIELDS[elf.cls])), _interesting(rng, len(buf)))
    return None


def shdr_lie(buf: bytearray, rng: random.Random) -> None:
    elf = _Elf(buf)
    if not elf.ok or not elf.sections:
        return bit_flips(buf, rng)
    for _ in range(rng.randint(1, 3)):
        elf.set_shdr(rng.randrange(len(elf.sections)), rng.choice(_SHDR_FIELDS), _interesting(rng, len(buf)))
    return None


def symbol_lie(buf: bytearray, rng: random.Random) -> None:
    elf = _Elf(buf)
    symtab = elf.named(".symtab") if elf.ok else None
    if symtab is None:
        return bit_flips(buf, rng)
    off, size = elf.sections[symtab][4], elf.sections[symtab][5]
    entsize = SYM[elf.cls].size
    count = min(size, max(0, len(buf) - off)) // entsize
    if count == 0:
        return bit_flips(buf, rng)
    for _ in range(rng.randint(1, 4)):
        base = off + rng.randrange(count) * entsize
        field = rng.choice(("name", "shndx", "value"))
        if field == "name":
            struct.pack_into(elf.bo + "I", buf, base, _interesting(rng, len(buf)) & 0xFFFFFFFF)
        elif field == "shndx":
            struct.pack_into(elf.bo + "H", buf, base + (6 if elf.cls == 64 else 14), _interesting(rng, 0) & 0xFFFF)
        else:
            fmt, at = ("Q", 8) if elf.cls == 64 else ("I", 4)
            struct.pack_into(elf.bo + fmt, buf, base + at, _interesting(rng, len(buf)) & ((1 << (8 * struct.calcsize(
                fmt))) - 1))
    return None


def strings_without_nul(buf: bytearray, rng: random.Random) -> None:
    """Replace the NULs of a string table (all of them, or the last) with 'A'."""
    elf = _Elf(buf)
    idx = elf.named(rng.choice(_STRING_SECTIONS)) if elf.ok else None
    if idx is None:
        return bit_flips(buf, rng)
    off, size = elf.sections[idx][4], elf.sections[idx][5]
    end = min(off + size, len(buf))
    if off >= end:
        return None
    if rng.random() < 0.5:
        buf[off:end] = buf[off:end].replace(b"\0", b"A")
    else:
        buf[end - 1] = 0x41
    return None


def ext_out_of_step(buf: bytearray, rng: random.Random) -> None:
    """Resize or un-ALLOC one of the extended modversions sections."""
    elf = _Elf(buf)
    idx = elf.named(rng.choice(("__version_ext_crcs", "__version_ext_names", "__versions"))) if elf.ok else None
    if idx is None:
        return shdr_lie(buf, rng)
    if rng.random() < 0.3:
        elf.set_shdr(idx, 2, elf.sections[idx][2] ^ 0x2)  # toggle SHF_ALLOC
    else:
        elf.set_shdr(idx, 5, max(0, elf.sections[idx][5] + rng.choice((-64, -8, -4, -1, 1, 2, 4, 8, 64))))
    return None


def signature_trailer(buf: bytearray, rng: random.Random) -> None:
    """Append (or rewrite) a module signature trailer with odd fields."""
    marker = signature.MARKER
    if buf.endswith(marker) and len(buf) >= len(marker) + 12 and rng.random() < 0.5:
        at = len(buf) - len(marker) - 12
    else:
        buf += rng.randbytes(rng.choice((0, 1, 16, 300))) + bytes(12) + marker
        at = len(buf) - len(marker) - 12
    fields = [0, 0, 2, 0, 0, 0, 0, 0]
    fields[rng.randrange(8)] = rng.randrange(256)
    sig_len = rng.choice((0, 1, at - 1, at, at + 1, (1 << 32) - 1, rng.randrange(max(at, 1))))
    buf[at:at + 12] = bytes(fields) + struct.pack(">I", sig_len & 0xFFFFFFFF)


MUTATIONS: tuple[Callable[[bytearray, random.Random], None], ...] = (
    bit_flips, byte_sets, truncate, splice, ehdr_lie, shdr_lie, shdr_lie, symbol_lie, strings_without_nul,
    ext_out_of_step, signature_trailer,
)


def mutate(data: bytes, rng: random.Random, rounds: int | None = None) -> bytes:
    """``data`` after 1 to 4 (or ``rounds``) random mutations."""
    buf = bytearray(data)
    for _ in range(rounds if rounds is not None else rng.randint(1, 4)):
        rng.choice(MUTATIONS)(buf, rng)
    return bytes(buf)


def compress(data: bytes, method: str) -> bytes:
    if method == "gzip":
        return gzip.compress(data, compresslevel=1, mtime=0)
    if method == "xz":
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, preset=0)
    return zstandard.ZstdCompressor(level=1).compress(data)


def break_stream(stream: bytes, rng: random.Random) -> bytes:
    """A compressed stream cut, corrupted, doubled or followed by junk or padding."""
    buf = bytearray(stream)
    kind = rng.randrange(6)
    if kind == 0:
        truncate(buf, rng)
    elif kind == 1:
        bit_flips(buf, rng)
    elif kind == 2:
        buf += rng.choice((b"\0" * rng.randint(1, 16), rng.randbytes(rng.randint(1, 64))))
    elif kind == 3:
        buf += bytes(buf)  # two streams / frames
    elif kind == 4:
        splice(buf, rng)
    else:
        buf[rng.randrange(min(len(buf), 32))] ^= 0xFF  # the header
    return bytes(buf)


def mutate_compressed(image: bytes, rng: random.Random) -> bytes:
    """``image`` (perhaps mutated first) in a random compression, then the stream broken or not."""
    if rng.random() < 0.5:
        image = mutate(image, rng)
    stream = compress(image, rng.choice(("gzip", "xz", "zstd")))
    return break_stream(stream, rng) if rng.random() < 0.8 else stream


Outcome = tuple[ModuleRecord | ModuleReadError, Validation | ModuleReadError]


def check_image(data: bytes) -> Outcome:
    """The fuzzing property on a decompressed image: parse gives a record or ModuleReadError, validate a
    verdict (or ModuleReadError, for a table past kmodcompat's limits), and a parsed module simulates
    in another format or says why not (:func:`check_simulate`). Anything else propagates."""
    try:
        parsed: ModuleRecord | ModuleReadError = parse_module_bytes(data, "<fuzz>")
    except ModuleReadError as e:
        parsed = e
    else:
        check_simulate(parsed, data)
    try:
        verdict: Validation | ModuleReadError = validate_bytes(data, "<fuzz>")
    except ModuleReadError as e:
        verdict = e
    return parsed, verdict


def check_simulate(rec: ModuleRecord, data: bytes) -> None:
    """simulate's property (issue 15): the file-level rewrite in one format (chosen by the input, so a
    campaign covers all five) gives bytes that parse again, or raises BuildError / LayoutError; the
    record-level simulation gives a record or BuildError in every format."""
    fmt = FORMATS[len(data) % len(FORMATS)]
    try:
        out = simulate(rec, data, fmt)
    except (BuildError, LayoutError):
        pass
    else:
        try:
            parse_module_bytes(out, "<simulated>")
        except ModuleReadError:
            pass
    simulation = Simulation(rec)
    for fmt in FORMATS:
        try:
            simulation.record(fmt)
        except BuildError:
            pass


def check_file(path: str) -> Outcome:
    """The same property on a file (decompression included)."""
    try:
        parsed: ModuleRecord | ModuleReadError = parse_module(path)
    except ModuleReadError as e:
        parsed = e
    if isinstance(parsed, ModuleRecord):
        check_simulate(parsed, read_module_bytes(path).data)
    try:
        verdict: Validation | ModuleReadError = validate_file(path)
    except ModuleReadError as e:
        verdict = e
    return parsed, verdict


# -- hostile inputs built on purpose (regressions for the parser's bounds) ------------------------

def _elf64(sections: list[tuple[int, int, int, int, int, int]], blobs: bytes, shstrndx: int) -> bytes:
    """A little-endian ELF64 ET_REL image: ``blobs`` after the header, then the section headers
    (sh_name, sh_type, sh_flags, sh_offset, sh_size, sh_link)."""
    shoff = 64 + len(blobs)
    shoff += -shoff % 8
    head = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0,
                                                           64, len(sections), shstrndx)
    table = b"".join(struct.pack("<IIQQQQIIQQ", n, t, f, 0, o, s, link, 0, 1, 0) for n, t, f, o, s, link in sections)
    return (head + blobs).ljust(shoff, b"\0") + table


def many_sections_one_long_name(count: int = 20000, name_len: int = 1 << 20) -> bytes:
    """``count`` sections whose names start at successive offsets of one ``name_len``-byte name:
    read in full, the names add up to count * name_len bytes (20 GB)."""
    shstr = b"\0" + b"A" * name_len + b"\0"
    sections = [(0, 0, 0, 0, 0, 0)] + [(1 + i % name_len, 1, 0, 64, 0, 0) for i in range(count - 2)]
    sections.append((0, 3, 0, 64, len(shstr), 0))
    return _elf64(sections, shstr, count - 1)


def many_symbols_one_long_name(count: int = 20000, name_len: int = 1 << 20) -> bytes:
    """``count`` undefined symbols named at successive offsets of one long .strtab string (20 GB in full)."""
    strtab = b"\0" + b"B" * name_len + b"\0"
    symtab = bytes(24) + b"".join(struct.pack("<IBBHQQ", 1 + i % name_len, 0x10, 0, 0, 0, 0) for i in range(count))
    shstr = b"\0.symtab\0.strtab\0.shstrtab\0"
    blobs = symtab + strtab + shstr
    base = 64
    sections = [(0, 0, 0, 0, 0, 0), (1, 2, 0, base, len(symtab), 2), (9, 3, 0, base + len(symtab), len(strtab), 0),
                (17, 3, 0, base + len(symtab) + len(strtab), len(shstr), 0)]
    return _elf64(sections, blobs, 3)


def versions_without_nul(count: int = 20000) -> bytes:
    """A __versions table of ``count`` records with no NUL anywhere: each name runs on to the end of
    the table, 12 GB in all."""
    table = (struct.pack("<Q", 0x1111111111111111) + b"C" * 56) * count
    shstr = b"\0__versions\0.shstrtab\0"
    sections = [(0, 0, 0, 0, 0, 0), (1, 1, 2, 64, len(table), 0), (12, 3, 0, 64 + len(table), len(shstr), 0)]
    return _elf64(sections, table + shstr, 2)


def _zero_region_parts(sections: tuple[str, ...], size: int, copies: int) -> tuple[bytes, bytes]:
    """The ELF header, and what follows the zero region (names, section headers), of :func:`zero_region`."""
    shstr = b"\0" + b"".join(name.encode() + b"\0" for name in sections) + b".shstrtab\0"
    offsets = [shstr.index(b"\0" + name.encode() + b"\0") + 1 for name in sections]
    rows = [(0, 0, 0, 0, 0, 0)] + [(off, 1, 2, 64, size, 0) for _ in range(copies) for off in offsets]
    rows.append((len(shstr) - len(b".shstrtab\0"), 3, 0, 64 + size, len(shstr), 0))
    image = _elf64(rows, bytes(size % 8) + shstr, len(rows) - 1)  # the same layout, the region left out
    shoff = 64 + size + len(shstr)
    shoff += -shoff % 8
    head = bytearray(image[:64])
    struct.pack_into("<Q", head, 40, shoff)
    return bytes(head), image[64 + size % 8:]


def zero_region(sections: tuple[str, ...], size: int = 100 << 20, copies: int = 1) -> bytes:
    """An ELF64 image whose ``sections`` (``copies`` times each) all cover one region of ``size`` zero
    bytes: a 15 KB .ko.xz that, read naively, is tens of millions of empty strings and entries per
    table (issue 15, "amplification inside a module")."""
    head, tail = _zero_region_parts(sections, size, copies)
    return head + bytes(size) + tail


@functools.cache
def _zeros_xz(size: int) -> bytes:
    return compress(bytes(size), "xz")


def zero_region_xz(sections: tuple[str, ...], size: int = 100 << 20, copies: int = 1) -> bytes:
    """:func:`zero_region` as a .ko.xz of three streams (header, zeros, the rest): the zeros are
    compressed once per size, so each variant costs milliseconds to build."""
    head, tail = _zero_region_parts(sections, size, copies)
    return compress(head, "xz") + _zeros_xz(size) + compress(tail, "xz")


def many_xz_streams(count: int = 100000) -> bytes:
    """``count`` empty xz streams back to back (32 bytes each): a file of only stream ends."""
    return lzma.compress(b"", format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32) * count


def many_zstd_frames(count: int = 100000) -> bytes:
    return zstandard.ZstdCompressor(level=1).compress(b"") * count


def zstd_bomb(size: int = 1 << 30) -> bytes:
    """One zstd frame of ``size`` zero bytes (a few KB on disk)."""
    return zstandard.ZstdCompressor(level=1).compress(bytes(size))


#: name -> (file bytes, what it attacks); files, so they can go to the corpus as they are.
def hostile_files() -> dict[str, tuple[bytes, str]]:
    return {
        "many-sections-one-long-name.ko.xz": (compress(many_sections_one_long_name(), "xz"),
                                              "20000 section names at successive offsets of one 1 MiB name"),
        "many-symbols-one-long-name.ko.xz": (compress(many_symbols_one_long_name(), "xz"),
                                             "20000 UND symbols at successive offsets of one 1 MiB name"),
        "versions-without-nul.ko.xz": (compress(versions_without_nul(), "xz"),
                                       "20000 __versions records without any NUL"),
        "many-xz-streams.ko.xz": (many_xz_streams(2000), "2000 empty xz streams (the cap is 1024)"),
        "many-zstd-frames.ko.zst": (many_zstd_frames(2000), "2000 empty zstd frames (the cap is 1024)"),
    }
