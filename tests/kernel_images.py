"""Synthetic kernel images for the tests of kmodcompat.files.kernel_image.

Small but laid out as the kernel lays them out (include/asm-generic/vmlinux.lds.h:
``__ksymtab``, ``__ksymtab_gpl``, ``__kcrctab``, ``__kcrctab_gpl``,
``__ksymtab_strings``, each table sorted by name, the strings in link order),
in each container the reader knows: an ELF vmlinux with section headers, a
bzImage around it, and raw images (arm64 Image, arm zImage, s390) without.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
import struct
from typing import NamedTuple

from kmodcompat.elf.layout import EHDR, EHDR_SIZE, ELFMAG, SHDR, SHDR_SIZE


class Sym(NamedTuple):
    name: str
    crc: int
    gpl: bool
    namespace: str


def symbols(count: int = 300, seed: int = 1) -> list[Sym]:
    """``count`` exports with distinct names, a third GPL-only, a few in namespaces."""
    rng = random.Random(seed)
    words = ["alloc", "free", "dev", "net", "skb", "page", "lock", "read", "write", "get", "put", "init", "queue",
             "irq", "dma", "buf", "usb", "pci", "clk", "reg"]
    names: set[str] = set()
    while len(names) < count:
        names.add("_".join(rng.choice(words) for _ in range(rng.randint(2, 4))) + f"_{rng.randint(0, 999)}")
    out = []
    for i, name in enumerate(sorted(names, key=lambda _: rng.random())):  # link order: not sorted
        ns = "CRYPTO_INTERNAL" if i % 17 == 0 else ""
        out.append(Sym(name, rng.getrandbits(32), i % 3 == 0, ns))
    return out


class Layout(NamedTuple):
    prel32: bool
    word: int  # pointer size when not PREL32
    little: bool
    crcs: bool = True


def tables(syms: list[Sym], layout: Layout, at: int, base: int) -> tuple[bytes, dict[str, int]]:
    """The bytes of the five sections laid out from file offset ``at`` (link address ``base + at``).

    Returns the bytes and the offsets (relative to ``at``) where each section starts.
    """
    e = "<" if layout.little else ">"
    strings = bytearray()
    name_off: dict[str, int] = {}
    ns_off: dict[str, int] = {}
    for s in syms:  # __kstrtab_<sym> then __kstrtabns_<sym>, in link order
        name_off[s.name] = len(strings)
        strings += s.name.encode() + b"\0"
        ns_off[s.name] = len(strings)
        strings += s.namespace.encode() + b"\0"
    plain = sorted((s for s in syms if not s.gpl), key=lambda s: s.name.encode())
    gpl = sorted((s for s in syms if s.gpl), key=lambda s: s.name.encode())
    entsize = 12 if layout.prel32 else 3 * layout.word
    n = len(syms)
    ksymtab_size = n * entsize
    crc_size = 4 * n if layout.crcs else 0
    strings_at = ksymtab_size + crc_size
    out = bytearray()
    value_target = base + at - 0x1000  # somewhere in .text
    for s in plain + gpl:
        p = at + len(out)
        name_addr = base + at + strings_at + name_off[s.name]
        ns_addr = base + at + strings_at + ns_off[s.name]
        if layout.prel32:
            out += struct.pack(e + "iii", value_target - (base + p), name_addr - (base + p + 4),
                               ns_addr - (base + p + 8))
        else:
            fmt = e + ("III" if layout.word == 4 else "QQQ")
            out += struct.pack(fmt, value_target, name_addr, ns_addr)
    if layout.crcs:
        for s in plain + gpl:
            out += struct.pack(e + "I", s.crc)
    out += strings
    offsets = {"__ksymtab": 0, "__ksymtab_gpl": len(plain) * entsize, "__kcrctab": ksymtab_size,
               "__kcrctab_gpl": ksymtab_size + 4 * len(plain), "__ksymtab_strings": strings_at,
               "_plain": len(plain), "_end": len(out)}
    return bytes(out), offsets


def vmlinux(syms: list[Sym], layout: Layout, machine: int = 62) -> bytes:
    """An ELF ET_EXEC vmlinux holding the export sections (no program headers: none are read)."""
    elfclass = 64 if layout.word == 8 else 32
    e = "<" if layout.little else ">"
    base = 0xFFFFFFFF81000000 if elfclass == 64 else 0xC1000000
    ehsize = EHDR_SIZE[elfclass]
    at = 0x1000
    body, off = tables(syms, layout, at, base)
    entsize = 12 if layout.prel32 else 3 * layout.word
    n_plain = off["_plain"]
    n = len(syms)
    secs = [("__ksymtab", off["__ksymtab"], n_plain * entsize),
            ("__ksymtab_gpl", off["__ksymtab_gpl"], (n - n_plain) * entsize)]
    if layout.crcs:
        secs += [("__kcrctab", off["__kcrctab"], 4 * n_plain), ("__kcrctab_gpl", off["__kcrctab_gpl"], 4 * (n - n_plain))]
    secs.append(("__ksymtab_strings", off["__ksymtab_strings"], off["_end"] - off["__ksymtab_strings"]))
    shstr = b"\0" + b"".join(name.encode() + b"\0" for name, _, _ in secs) + b".shstrtab\0"
    data = bytearray(b"\0" * at) + body
    shstr_at = len(data)
    data += shstr
    data += b"\0" * (-len(data) % 8)
    shoff = len(data)
    shdr = e + SHDR[elfclass]
    name_at = 1
    headers = [struct.pack(shdr, *([0] * 10))]
    for name, o, size in secs:
        headers.append(struct.pack(shdr, name_at, 1, 2, base + at + o, at + o, size, 0, 0, 4, 0))
        name_at += len(name) + 1
    headers.append(struct.pack(shdr, name_at, 3, 0, 0, shstr_at, len(shstr), 0, 0, 1, 0))
    data += b"".join(headers)
    ident = ELFMAG + bytes([2 if elfclass == 64 else 1, 1 if layout.little else 2, 1]) + b"\0" * 9
    ehdr = e + EHDR[elfclass]
    header = ident + struct.pack(ehdr, 2, machine, 1, base, 0, shoff, 0, ehsize, 0, 0,
                                 SHDR_SIZE[elfclass], len(headers), len(headers) - 1)
    data[:len(header)] = header
    return bytes(data)


def compress(kind: str, data: bytes) -> bytes:
    """``data`` as the kernel's build compresses it, with the inflated size appended (size_append)."""
    if kind == "gzip":
        out = gzip.compress(data, 6)
    elif kind == "bzip2":
        out = bz2.compress(data, 9)
    elif kind == "lzma":
        out = lzma.compress(data, lzma.FORMAT_ALONE)
    elif kind == "xz":
        out = lzma.compress(data, lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    elif kind == "zstd":
        import zstandard

        out = zstandard.ZstdCompressor(level=3).compress(data)
    elif kind == "lz4":
        import lz4.block

        out = b"\x02\x21\x4c\x18"
        for i in range(0, len(data), 8 << 20):
            block = lz4.block.compress(data[i:i + (8 << 20)], store_size=False)
            out += struct.pack("<I", len(block)) + block
    elif kind == "lzo":
        out = b"\x89LZO\x00\r\n\x1a\n" + b"\0" * 64  # only the magic matters: no decoder reads it
    else:
        raise ValueError(kind)
    return out + struct.pack("<I", len(data) & 0xFFFFFFFF)


def bzimage(payload: bytes, setup_sects: int = 1, version: int = 0x20F) -> bytes:
    """An x86 boot image around ``payload`` (arch/x86/boot/header.S fields only)."""
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    setup[0x1FE:0x200] = b"\x55\xaa"
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, version)
    offset = 0x3A0  # payload_offset: after the 32-bit decompressor's head
    struct.pack_into("<II", setup, 0x248, offset, len(payload))
    return bytes(setup) + b"\x90" * offset + payload + b"\0" * 32


def raw_image(syms: list[Sym], layout: Layout, base: int, seed: int = 2) -> bytes:
    """A raw kernel (objcopy -O binary): code-like bytes, the tables, the strings, more bytes."""
    rng = random.Random(seed)
    head = bytes(rng.getrandbits(8) for _ in range(0x8000))
    at = len(head)
    body, _ = tables(syms, layout, at, base)
    tail = bytes(rng.getrandbits(8) for _ in range(0x4000))
    return head + body + tail


def arm64_image(raw: bytes, big_endian: bool = False) -> bytes:
    """arch/arm64/include/asm/image.h: 64-byte header, magic ARM\\x64 at 0x38."""
    header = struct.pack("<IIQQQQQQ4sI", 0x14000000, 0, 0, len(raw), 2 | int(big_endian), 0, 0, 0, b"ARM\x64", 0)
    return header + raw[64:]


def zimage(raw: bytes, kind: str = "xz", little: bool = True) -> bytes:
    """arch/arm/boot/compressed/head.S: magic at 0x24, the compressed kernel inside the decompressor."""
    e = "<" if little else ">"
    head = bytearray(0x200)
    struct.pack_into(e + "IIII", head, 0x24, 0x016F2818, 0, 0, 0x04030201)
    rng = random.Random(3)
    code = bytes(rng.getrandbits(8) for _ in range(0x2000))
    return bytes(head) + code + compress(kind, raw)


def s390_image(raw: bytes, kind: str = "xz") -> bytes:
    """arch/s390/boot: the IPL head, S390EP at 0x10008, the compressed kernel after the decompressor."""
    head = bytearray(0x11000)
    head[0x10008:0x1000E] = b"S390EP"
    return bytes(head) + compress(kind, raw)
