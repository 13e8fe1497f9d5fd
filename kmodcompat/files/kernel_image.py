"""The kernel's exports read from its boot image: ``boot/vmlinuz-KVER`` without the headers package.

A Debian machine without ``linux-headers`` has no Module.symvers and a
placeholder System.map, yet the boot image carries every export the module
loader searches: the linked ``__ksymtab``/``__ksymtab_gpl`` tables, their
``__kcrctab*`` CRCs (MODVERSIONS), ``__ksymtab_strings`` and, in 7.x, the
``__kflagstab`` GPL flags. This module unpacks the image and finds them.

Containers, recognised by their own headers (see docs/kernel-images.md):

* x86 ``bzImage``: the setup header (``HdrS`` at 0x202, boot protocol 2.08+)
  gives the payload's offset and length (arch/x86/boot/header.S
  ``payload_offset``/``payload_length``); the payload is vmlinux, an ELF
  with section headers, compressed as CONFIG_KERNEL_* chose.
* ELF ``vmlinux`` as it is (ppc64el ships one).
* arm64 ``Image`` (magic ``ARM\\x64`` at 0x38, arch/arm64/include/asm/image.h),
  plain or gzip-compressed: raw binary, no section headers.
* arm ``zImage`` (magic 0x016f2818 at 0x24, arch/arm/boot/compressed/head.S)
  and s390 ``bzImage`` (``S390EP`` at 0x10008, arch/s390/boot/head.S): a
  decompressor with the compressed raw kernel inside, found by its stream
  magic.

In an ELF the tables are sections. In a raw image they are found by their
structure (:func:`_locate`): a run of ``struct kernel_symbol`` entries whose
name and namespace fields all land in one region of NUL-terminated names,
sorted by name, followed by exactly one u32 CRC per entry (or 7.x's flag
byte per entry) and then the strings, as include/asm-generic/vmlinux.lds.h
lays out ``__ksymtab``, ``__ksymtab_gpl``, ``__kcrctab``, ``__kcrctab_gpl``,
``__ksymtab_strings``. Anything less consistent is "exports unknown", never
a partial list.

The file is read through :func:`~.bounded.read_input` (a regular file, at
most :data:`~.bounded.KERNEL_IMAGE`'s cap); every decompression is bounded
(``max_size``, :mod:`.kernel_streams`).
"""

from __future__ import annotations

import errno
import os
import re
import struct
from bisect import bisect_left
from typing import NamedTuple

from ..elf.image import ElfImage, column
from ..elf.layout import (ELFMAG, EM_386, EM_AARCH64, EM_ARM, EM_LOONGARCH, EM_M68K, EM_MIPS, EM_PARISC, EM_PPC, EM_PPC64,
                          EM_RISCV, EM_S390, EM_SH, EM_SPARC, EM_SPARCV9, EM_X86_64, SHF_ALLOC, SHT_NOBITS)
from ..errors import ElfError
from ..parse.ksymtab import LinkedTable, SymbolLayout, linked_exports
from ..records import Export
from .bounded import KERNEL_IMAGE, InputFileError, read_input
from .kernel_streams import ImageFormatError as _Bad
from .kernel_streams import inflate, stream_kind

#: Input file and decompressed payload caps. The largest Debian images: amd64's
#: vmlinux is 66 MB, ppc64el's plain vmlinux 46 MB; 512 MiB leaves room for debug builds.
DEFAULT_MAX_SIZE = KERNEL_IMAGE.limit

_MACHINES = {EM_386: "i386", EM_PPC64: "ppc64", EM_S390: "s390", EM_ARM: "arm", EM_X86_64: "x86_64",
             EM_AARCH64: "arm64", EM_MIPS: "mips", EM_RISCV: "riscv", EM_LOONGARCH: "loongarch", EM_SPARC: "sparc",
             EM_SPARCV9: "sparc64", EM_PARISC: "parisc", EM_PPC: "ppc", EM_SH: "sh", EM_M68K: "m68k"}

#: The magics searched for inside a decompressor image; gzip with its method byte (8, deflate)
#: and lzma with its usual properties, as two bytes alone match too often in code.
_STREAM_SCAN = re.compile(b"|".join(re.escape(m) for m in (
    b"\x1f\x8b\x08", b"BZh", b"\x5d\x00\x00", b"\xfd7zXZ\x00", b"\x89LZO", b"\x02\x21\x4c\x18", b"\x28\xb5\x2f\xfd")))
_MAX_CANDIDATES = 64  # stream magics tried inside one decompressor image


class KernelImageError(Exception):
    """The image cannot be read as a kernel; ``str()`` is the one line users see: "<path>: <reason>"."""

    def __init__(self, path: str, reason: str, code: str = "bad-image"):
        self.path = path
        self.reason = reason
        self.code = code
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):
        return (KernelImageError, (self.path, self.reason, self.code))


class KernelExports(NamedTuple):
    """What a kernel image says about vmlinux's exports.

    ``exports`` is None when no consistent table was found: then nothing is known
    (``unknown`` says why), never an empty or partial list.
    """

    path: str
    container: str  # "bzImage", "vmlinux", "Image", "zImage", "s390"
    compression: str | None  # the payload's compression, None when stored plain
    machine: int  # EM_* of the kernel
    elfclass: int  # 32 or 64
    little: bool
    located: str  # "sections" (ELF section headers) or "structure" (raw image); "" when unknown
    exports: tuple[Export, ...] | None  # __ksymtab then __ksymtab_gpl, each in its (sorted) table order
    unknown: str | None  # why exports is None
    #: Indices into ``exports`` in the order of their names in ``__ksymtab_strings``: the
    #: objects' link order, which modpost follows for vmlinux in Module.symvers, but for
    #: names the linker merged into the tail of another (see cli/symvers.py).
    link_order: tuple[int, ...] | None = None

    @property
    def machine_name(self) -> str:
        return _MACHINES.get(self.machine, f"EM_{self.machine}")


def image_paths(root: str, kver: str) -> list[str]:
    """Where a tree keeps the boot image of ``kver``, in the order looked at.

    ``boot/vmlinuz-KVER`` (Debian's linux-image, x86, arm, s390), ``boot/vmlinux-KVER``
    (ppc64el), and ``lib/modules/KVER/vmlinuz`` (Debian's packages from 7.x, Fedora).
    """
    return [os.path.join(root, "boot", f"vmlinuz-{kver}"), os.path.join(root, "boot", f"vmlinux-{kver}"),
            os.path.join(root, "lib", "modules", kver, "vmlinuz"),
            os.path.join(root, "usr", "lib", "modules", kver, "vmlinuz")]


def find_image(root: str, kver: str) -> str | None:
    for path in image_paths(root, kver):
        if os.path.isfile(path):
            return path
    return None


def read_kernel_image(path: str, max_size: int = DEFAULT_MAX_SIZE) -> KernelExports:
    """The exports of the kernel image at ``path``; KernelImageError when it is no kernel image."""
    data = _read(path, max_size)
    try:
        return kernel_exports(data, path, max_size)
    except _Bad as e:
        raise KernelImageError(path, e.reason, e.code) from None


def _read(path: str, max_size: int) -> bytes:
    """The image file's bytes through the bounded opener (regular files only, never a FIFO or device)."""
    kind = KERNEL_IMAGE if max_size == KERNEL_IMAGE.limit else KERNEL_IMAGE._replace(limit=max_size)
    try:
        return read_input(path, kind)
    except InputFileError as e:
        code = "too-large" if e.errno == errno.EFBIG else "unreadable"
        raise KernelImageError(path, e.strerror or "unreadable", code) from None


def vmlinux_bytes(path: str, max_size: int = DEFAULT_MAX_SIZE) -> bytes:
    """The kernel inside the image at ``path`` (an ELF vmlinux or a raw image), decompressed."""
    data = _read(path, max_size)
    try:
        return _unpack(data, max_size)[2]
    except _Bad as e:
        raise KernelImageError(path, e.reason, e.code) from None


def kernel_exports(data: bytes, path: str = "<image>", max_size: int = DEFAULT_MAX_SIZE) -> KernelExports:
    """:func:`read_kernel_image` on bytes; raises ``_Bad`` (wrapped by the caller)."""
    container, compression, payload, machine, little, word = _unpack(data, max_size)
    if payload[:4] == ELFMAG:
        return _from_elf(path, container, compression, payload)
    located = _locate(payload, machine, little, word)
    if isinstance(located, str):
        return KernelExports(path, container, compression, machine, word * 8, little, "", None, located)
    exports, order = located
    return KernelExports(path, container, compression, machine, word * 8, little, "structure", exports, None, order)


# --- containers -------------------------------------------------------------------------------------


def _unpack(data: bytes, max_size: int) -> tuple[str, str | None, bytes, int, bool, int]:
    """(container, compression, payload, machine, little, word size) of an image file's bytes."""
    compression: str | None
    if data[:4] == ELFMAG:
        return "vmlinux", None, data, 0, True, 8
    if len(data) >= 0x250 and data[0x202:0x206] == b"HdrS" and data[0x1FE:0x200] == b"\x55\xaa":
        return _bzimage(data, max_size)
    if len(data) >= 0x40 and data[0x38:0x3C] == b"ARM\x64":
        return "Image", None, data, EM_AARCH64, not struct.unpack_from("<Q", data, 0x18)[0] & 1, 8
    if len(data) >= 0x34 and data[0x24:0x28] in (b"\x18\x28\x6f\x01", b"\x01\x6f\x28\x18"):
        little = data[0x24:0x28] == b"\x18\x28\x6f\x01"
        compression, payload = _embedded(data, max_size, "zImage")
        return "zImage", compression, payload, EM_ARM, little, 4
    if len(data) >= 0x10010 and data[0x10008:0x1000E] == b"S390EP":
        compression, payload = _embedded(data, max_size, "s390 image")
        return "s390", compression, payload, EM_S390, False, 8
    kind = stream_kind(data)
    if kind is not None:  # a compressed image as a whole: arm64's Image.gz, a vmlinux.xz
        inner = inflate(kind, data, max_size)
        if stream_kind(inner) is not None:
            raise _Bad(f"{kind} stream holds another compressed stream, not a kernel", "not-a-kernel")
        container, compression, payload, machine, little, word = _unpack(inner, max_size)
        return container, compression or kind, payload, machine, little, word
    if len(data) < 0x40:
        raise _Bad(f"file too short for a kernel image ({len(data)} bytes)", "truncated")
    raise _Bad("not a kernel image (no bzImage, ELF, arm64 Image, zImage or s390 header)", "not-a-kernel")


def _bzimage(data: bytes, max_size: int) -> tuple[str, str | None, bytes, int, bool, int]:
    """arch/x86/boot/header.S: setup_sects at 0x1f1, boot protocol version at 0x206, payload at 0x248."""
    version = struct.unpack_from("<H", data, 0x206)[0]
    if version < 0x208:
        raise _Bad(f"bzImage boot protocol {version >> 8}.{version & 0xFF:02d} has no payload fields (2.08+)",
                   "unsupported")
    setup_sects = data[0x1F1] or 4  # 0 means 4 (Documentation/arch/x86/boot.rst)
    offset, length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + offset
    if start + length > len(data) or length == 0:
        raise _Bad(f"bzImage payload ({length} bytes at {start}) runs past the end of the file "
                   f"({len(data)} bytes)", "truncated")
    payload = data[start:start + length]
    kind = stream_kind(payload)
    if kind is None:
        if payload[:4] == ELFMAG:  # CONFIG_KERNEL_UNCOMPRESSED
            return "bzImage", None, payload, 0, True, 8
        raise _Bad("bzImage payload is neither a known compressed stream nor ELF", "not-a-kernel")
    vmlinux = inflate(kind, payload, max_size)
    if vmlinux[:4] != ELFMAG:
        raise _Bad(f"bzImage {kind} payload is not an ELF vmlinux", "not-a-kernel")
    return "bzImage", kind, vmlinux, 0, True, 8


def _embedded(data: bytes, max_size: int, what: str) -> tuple[str, bytes]:
    """The kernel inside a decompressor image: the first stream magic that decodes to a kernel.

    Neither arm's zImage nor s390's image records where its payload starts in a
    header a loader reads (the decompressor links it in as ``input_data``), so the
    magics are tried in file order; a stream that does not decode, or decodes to
    less than a kernel, is skipped: the first that inflates to a megabyte or more
    wins, else the largest.
    """
    tried = 0
    errors: list[str] = []
    best: tuple[str, bytes] | None = None
    # The magics with a checked header first: "5d 00 00" (lzma) is three bytes any code may hold.
    found = [(m.start(), stream_kind(data[m.start():m.start() + 16])) for m in _STREAM_SCAN.finditer(data)]
    found.sort(key=lambda c: (c[1] == "lzma", c[0]))
    for start, kind in found:
        if kind is None:
            continue
        tried += 1
        if tried > _MAX_CANDIDATES:
            break
        try:
            out = inflate(kind, data[start:], max_size)
        except _Bad as e:
            if e.code == "unsupported":
                raise
            errors.append(e.reason)
            continue
        if len(out) >= 1 << 20:  # the smallest real kernels are megabytes; decompressor tables are not
            return kind, out
        if best is None or len(out) > len(best[1]):
            best = kind, out
    if best is not None:
        return best
    if errors and all("truncated" in e for e in errors):
        raise _Bad(f"{what}: compressed kernel is truncated", "truncated")
    raise _Bad(f"{what} holds no compressed kernel that decodes", "not-a-kernel")


# --- vmlinux with section headers ---------------------------------------------------------------------

def _from_elf(path: str, container: str, compression: str | None, payload: bytes) -> KernelExports:
    try:
        elf = ElfImage(payload)
    except ElfError as e:
        raise _Bad(f"vmlinux: {e.reason}", "bad-elf") from None
    h = elf.header
    word = 8 if elf.elfclass == 64 else 4

    def unknown(why: str) -> KernelExports:
        return KernelExports(path, container, compression, h.machine, elf.elfclass, elf.little, "", None, why)

    if h.type != 2:  # ET_EXEC; a module or object file is no kernel
        raise _Bad(f"ELF type {h.type} is not an executable vmlinux", "not-a-kernel")
    ksymtab = elf.section("__ksymtab")
    if ksymtab is None:
        return unknown("vmlinux has no __ksymtab section")
    # Link address -> bytes, through the allocated sections that hold bytes.
    loaded = sorted((s.addr, s.addr + s.size, s.offset) for s in elf.sections
                    if s.flags & SHF_ALLOC and s.type != SHT_NOBITS and s.size and elf.in_bounds(s))
    starts = [a for a, _, _ in loaded]

    def string_at(addr: int) -> bytes | None:
        i = bisect_left(starts, addr + 1) - 1
        if i < 0 or addr >= loaded[i][1]:
            return None
        start, end, offset = loaded[i]
        return elf.cstring(offset + addr - start, offset + end - start)

    tables = []
    for name, crc_name in (("__ksymtab", "__kcrctab"), ("__ksymtab_gpl", "__kcrctab_gpl")):
        sec = elf.section(name)
        if sec is None:
            continue
        if not elf.in_bounds(sec):
            raise _Bad(f"vmlinux: {name} runs past the end of the image (truncated?)", "truncated")
        crc = elf.section(crc_name)
        if crc is not None and not elf.in_bounds(crc):
            raise _Bad(f"vmlinux: {crc_name} runs past the end of the image (truncated?)", "truncated")
        tables.append(LinkedTable(name, sec.addr, elf.section_bytes(sec),
                                  None if crc is None else elf.section_bytes(crc)))
    flags_sec = elf.section("__kflagstab")
    flags = elf.section_bytes(flags_sec) if flags_sec is not None and elf.in_bounds(flags_sec) else None
    reasons = []
    for layout in _layouts(h.machine, word, elf.little, tables):
        try:
            exports, order = _decode(tables, layout, string_at, flags)
        except ValueError as e:
            reasons.append(str(e))
            continue
        return KernelExports(path, container, compression, h.machine, elf.elfclass, elf.little, "sections",
                             exports, None, order)
    return unknown("vmlinux export tables are inconsistent: " + "; ".join(dict.fromkeys(reasons)))


def _decode(tables: list[LinkedTable], layout: SymbolLayout, string_at, flags: bytes | None
            ) -> tuple[tuple[Export, ...], tuple[int, ...]]:
    """linked_exports() and the link order of its exports (see KernelExports.link_order)."""
    addresses: list[int] = []
    exports = linked_exports(tables, layout, string_at, flags, addresses)
    return exports, tuple(sorted(range(len(exports)), key=addresses.__getitem__))


def _layouts(machine: int, word: int, little: bool, tables: list[LinkedTable]) -> list[SymbolLayout]:
    """The ``kernel_symbol`` layouts to try, the one the CRC count implies first."""
    candidates = [SymbolLayout(True, 4, 3, little), SymbolLayout(False, word, 3, little),
                  SymbolLayout(True, 4, 2, little), SymbolLayout(False, word, 2, little)]
    with_crcs = [(t.entries, t.crcs) for t in tables if t.crcs]
    if with_crcs:
        entries, crcs = with_crcs[0]
        entsize = len(entries) * 4 // len(crcs) if len(crcs) % 4 == 0 else 0
        candidates.sort(key=lambda layout: layout.entsize != entsize)
    return candidates


# --- raw images: tables found by their structure --------------------------------------------------------

#: A byte that can be part of an exported name or namespace: C identifiers, and since
#: 6.17 ``module:a,b-c`` namespaces (EXPORT_SYMBOL_FOR_MODULES, include/linux/export.h).
_NAME_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.$:,-")
_IS_NAME_BYTE = bytes(b in _NAME_CHARS for b in range(256))
_CLASS = bytes(ord("a") if b in _NAME_CHARS else ord("0") if b == 0 else ord("x") for b in range(256))
_OTHER, _NUL = ord("x"), ord("0")
_MIN_REGION = 4096
_MAX_REGIONS = 4
#: How far before the strings the tables may start: 4 MiB is 200,000 exports.
_WINDOW = 4 << 20


def _regions(data: bytes) -> list[tuple[int, int]]:
    """Candidate ``__ksymtab_strings``: the longest runs of NUL-terminated names, longest first.

    Bytes are classed (name byte, NUL, other) in one translate; a run of 4 KiB or
    more holds a sample point every 2 KiB, from which it is widened to the nearest
    other bytes (a regex scan restarting at every byte of every short run would be
    quadratic in their length: seconds on a 30 MB image).
    """
    classes = data.translate(_CLASS)
    runs = set()
    step = _MIN_REGION // 2
    end = -1
    for i in range(0, len(classes), step):
        if i < end or classes[i] == _OTHER:
            continue
        start = classes.rfind(b"x", 0, i) + 1
        end = classes.find(b"x", i)
        if end < 0:
            end = len(classes)
        while start < end and classes[start] == _NUL:  # a region starts with a name
            start += 1
        size = end - start
        nuls = classes.count(b"0", start, end)
        # Names average ~20 bytes: a run of text (few NULs) or of zero padding (few names) is no name table.
        if size < _MIN_REGION or nuls * 40 < size or nuls * 2 > size:
            continue
        runs.add((start, end))
    # Longest first, but past a megabyte last: __ksymtab_strings is ~20 bytes a name, 0.2-0.9 MB
    # for 10,000-40,000 exports, while BTF's string table (arm64: 2.4 MB) is names too, and
    # searching before it costs the most. The order only costs time: every region is tried.
    return sorted(runs, key=lambda r: (r[1] - r[0] > 1 << 20, r[0] - r[1]))[:_MAX_REGIONS]


#: Architectures selecting HAVE_ARCH_PREL32_RELOCATIONS (arch/*/Kconfig): their tables are tried
#: as PREL32 first, the others as pointers first.
_PREL32_MACHINES = frozenset({EM_X86_64, EM_386, EM_AARCH64, EM_RISCV, EM_LOONGARCH})


def _locate(data: bytes, machine: int, little: bool, word: int) -> tuple[tuple[Export, ...], tuple[int, ...]] | str:
    """The export tables of a raw image, or why none consistent was found."""
    regions = _regions(data)
    if not regions:
        return "no region of exported names found in the image"
    reasons: list[str] = []
    layouts = [SymbolLayout(True, 4, 3, little), SymbolLayout(False, word, 3, little)]
    if machine not in _PREL32_MACHINES:
        layouts.reverse()
    for r0, r1 in regions:
        for layout in layouts:
            found = _tables_before(data, r0, r1, layout)
            if isinstance(found, str):
                reasons.append(found)
                continue
            return found
    return "no consistent export table found (" + "; ".join(dict.fromkeys(reasons)) + ")"


def _tables_before(data: bytes, r0: int, r1: int, layout: SymbolLayout) -> tuple[tuple[Export, ...], tuple[int, ...]] | str:
    """Find the entry run ending just before the strings (and the CRC or flag arrays between)."""
    entsize, w = layout.entsize, layout.word
    # The tables take about 1.5 times the strings (a ~20-byte name per entry of 12 or 24
    # bytes plus its CRC): three times the region is enough before it.
    lo = max(0, r0 - min(_WINDOW, 3 * (r1 - r0) + 4096))
    lo -= lo % w
    hi = r0 - r0 % w
    base: int | None
    if layout.prel32:
        base = 0
        words = column(memoryview(data)[lo:hi], "i", 0, 4, layout.little)
        targets = [lo + 4 * i + v for i, v in enumerate(words)]
    else:
        words = column(memoryview(data)[lo:hi], "I" if w == 4 else "Q", 0, w, layout.little)
        base = _guess_base(data, words, r0, r1)
        if base is None:
            return f"{'32' if w == 4 else '64'}-bit pointers: no load address maps them onto the names"
        targets = [v - base for v in words]
    # Per word: does it, read as a name field, land on a name byte of the region; as a
    # namespace field, anywhere in it ("" is any NUL there) or is it zero (none: a PREL32
    # offset of 0 before 6.5, a NULL pointer otherwise). As bytes, for the run search.
    region = data[r0:r1].translate(_IS_NAME_BYTE)
    width = r1 - r0
    name_ok = bytes([0 <= t - r0 < width and region[t - r0] for t in targets])
    ns_ok = bytes([0 <= t - r0 < width or v == 0 for t, v in zip(targets, words)])
    step = entsize // w
    best: str | None = None
    for start, count in _runs(name_ok, ns_ok, lo, w, step, layout.fields):
        found = _check_run(data, start, count, r0, r1, layout, base)
        if isinstance(found, tuple):
            return found
        best = found
    return best or "no run of export entries before the names"


_RUN = re.compile(rb"\x01{64,}")


def _runs(name_ok: bytes, ns_ok: bytes, lo: int, w: int, step: int, fields: int) -> list[tuple[int, int]]:
    """Maximal runs of at least 64 entries (start offset, count), the latest first.

    An entry at word i has its name field at i + 1 and its namespace at i + 2; each
    residue of i modulo the entry's word count is one lane of candidate entries,
    searched with one regex.
    """
    n = len(name_ok)
    if n < step + 1:
        return []
    if fields >= 3:
        entry_ok = (int.from_bytes(name_ok[1:n - 1], "big") & int.from_bytes(ns_ok[2:n], "big")).to_bytes(n - 2, "big")
    else:
        entry_ok = name_ok[1:]
    runs = []
    for phase in range(step):
        for m in _RUN.finditer(entry_ok[phase::step]):
            start, end = m.span()
            runs.append((lo + (phase + start * step) * w, end - start))
    runs.sort(key=lambda r: -r[0])
    return runs


def _check_run(data: bytes, start: int, count: int, r0: int, r1: int, layout: SymbolLayout, base: int
               ) -> tuple[tuple[Export, ...], tuple[int, ...]] | str:
    """Accept a run if what follows it is what vmlinux.lds.h puts there and it decodes sorted.

    After the entries come ``__kcrctab``+``__kcrctab_gpl`` (one u32 per entry,
    4-aligned) or, in 7.x, ``__kflagstab`` (one byte per entry), or nothing
    (no MODVERSIONS), and then ``__ksymtab_strings``. A run may begin with entries
    that only look like ones (other read-only data before ``__ksymtab``): the
    first ``trim`` are dropped until the arithmetic closes.
    """
    entsize = layout.entsize
    end = start + count * entsize
    reasons = []
    for trim in range(0, min(count, 8)):
        n = count - trim
        first = start + trim * entsize
        for kind in ("crc", "flags", "flags+crc", "none"):
            s = end
            crcs = flags = None
            if "flags" in kind:
                flags = data[s:s + n]
                s += n
            if "crc" in kind:
                s += -s % 4
                crcs = data[s:s + 4 * n]
                s += 4 * n
            # The strings begin right there (alignment 1): at the region's start, or a few bytes
            # in when the last CRC bytes look like a name (a region starts at a name byte, so
            # never after the strings do).
            if not r0 <= s < r0 + 64 or data[s] not in _NAME_CHARS:
                continue
            if flags is not None and any(b > 1 for b in flags):
                continue
            found = _split_decode(data, first, n, crcs, flags, layout, base, r1)
            if isinstance(found, str):
                reasons.append(found)
                continue
            return found
    return "; ".join(dict.fromkeys(reasons)) or "no CRC, flag or string table where the entries end"


def _split_decode(data: bytes, first: int, n: int, crcs: bytes | None, flags: bytes | None,
                  layout: SymbolLayout, base: int, r1: int) -> tuple[tuple[Export, ...], tuple[int, ...]] | str:
    """Split the run into ``__ksymtab`` and ``__ksymtab_gpl`` where the name order restarts."""
    entsize = layout.entsize

    def string_at(addr: int) -> bytes | None:
        off = addr - base
        if not 0 <= off < len(data):
            return None
        nul = data.find(b"\0", off, min(len(data), off + 4096))
        return None if nul < 0 else data[off:nul]

    address = first + base
    whole = LinkedTable("__ksymtab", address, data[first:first + n * entsize], crcs)
    try:
        probe = _decode([whole], layout, string_at, flags)
    except ValueError:
        probe = None
    if probe is not None:
        if flags is None and probe[0]:
            # One sorted run and no flags: all non-GPL, or a GPL table whose names all sort after; the
            # layout cannot tell. 7.x (flags) has one table by construction.
            return "the entries form one sorted run: where __ksymtab_gpl begins cannot be told"
        return probe
    if flags is not None:
        return "__ksymtab is not sorted by name"
    names = [string_at(address + i * entsize + layout.word + (
        struct.unpack_from("<i" if layout.little else ">i", data, first + i * entsize + 4)[0]
        if layout.prel32 else 0)) for i in range(n)] if layout.prel32 else None
    if names is None:
        fmt = ("<" if layout.little else ">") + ("I" if layout.word == 4 else "Q")
        names = [string_at(struct.unpack_from(fmt, data, first + i * entsize + layout.word)[0]) for i in range(n)]
    if None in names:
        return "an entry's name lies outside the image"
    descents = [i for i in range(1, n) if not names[i - 1] < names[i]]  # type: ignore[operator]  # no None
    if len(descents) != 1:
        return f"{len(descents)} places where the name order restarts: not __ksymtab then __ksymtab_gpl"
    k = descents[0]
    tables = [LinkedTable("__ksymtab", address, data[first:first + k * entsize],
                          None if crcs is None else crcs[:4 * k]),
              LinkedTable("__ksymtab_gpl", address + k * entsize, data[first + k * entsize:first + n * entsize],
                          None if crcs is None else crcs[4 * k:])]
    try:
        return _decode(tables, layout, string_at, None)
    except ValueError as e:
        return str(e)


def _guess_base(data: bytes, words: list[int], r0: int, r1: int) -> int | None:
    """The link address of the raw image's first byte, from the pointers into the names.

    The name and namespace pointers of the entries all fall in one span as wide
    as the strings region, and the lowest of them points at the region's first
    string; the densest such span of pointer values gives candidates, and the
    one that puts the most pointers on string starts wins.
    """
    width = r1 - r0
    values = sorted(v for v in words if v)
    if not values:
        return None
    # The densest window [v, v + width) over the sorted values, v one of them.
    ends = [bisect_left(values, v + width) for v in values]
    counts = [e - i for i, e in enumerate(ends)]
    best_n = max(counts)
    best_i = counts.index(best_n)
    cluster = values[best_i:best_i + best_n]
    if best_n < 64:
        return None
    lows = sorted(set(cluster))[:4]
    # The region may begin with a few bytes of the CRC table that look like a name: every
    # offset of its first bytes is a candidate start, then the string starts after.
    starts = [r0 + k for k in range(0, 256) if r0 + k < r1 and (k < 16 or data[r0 + k - 1] == 0)]
    # Distinct values: every entry without a namespace points at the same "", which would
    # outweigh the names.
    distinct = sorted(set(cluster))
    sample = distinct[::max(1, len(distinct) // 2000)]
    best_base, best_score = None, 0
    for low in lows:
        for s in starts[:32]:
            base = low - s
            score = 0
            for v in sample:
                off = v - base
                if r0 <= off < r1 and (data[off - 1] == 0 or off == r0):
                    score += 1
            if score > best_score:
                best_base, best_score = base, score
    if best_score * 2 < len(sample):
        return None
    return best_base
