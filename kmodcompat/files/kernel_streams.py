"""The compressed streams a kernel image holds, inflated as the boot decompressors read them, bounded.

Unlike a module (files/opener.py follows kmod: one format family, trailing
bytes are an error), a kernel payload is read as the boot decompressors read
it (lib/decompress_*.c): one stream, whatever follows it ignored (the build
appends the inflated size, arch/x86/boot/compressed/Makefile size_append).
Every decompression stops at ``max_size``. A stream Python cannot decode
(lzo; lz4 without the ``lz4`` package) is one line naming the compression.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib

__all__ = ["ImageFormatError", "inflate", "stream_kind"]


class ImageFormatError(Exception):
    """The bytes are no kernel image as read so far: ``reason`` (one line) and a ``code``."""

    def __init__(self, reason: str, code: str = "bad-image"):
        super().__init__(reason)
        self.reason = reason
        self.code = code


_Bad = ImageFormatError

# Stream magics as the kernel's decompressors (lib/decompress.c compressed_formats[]) know them.
_STREAMS: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\x1f\x9e", "gzip"),  # old gzip magic, accepted by lib/decompress.c too
    (b"BZh", "bzip2"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x89LZO", "lzo"),
    (b"\x02\x21\x4c\x18", "lz4"),  # lz4 legacy frame (lib/decompress_unlz4.c)
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


def stream_kind(head: bytes) -> str | None:
    for magic, name in _STREAMS:
        if head.startswith(magic):
            if name == "bzip2" and not (len(head) > 3 and 0x31 <= head[3] <= 0x39):
                continue
            return name
    return None


def inflate(kind: str, raw: bytes, max_size: int) -> bytes:
    try:
        if kind == "gzip":
            d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            out = d.decompress(raw, max_size + 1)
            if len(out) > max_size:
                raise _Bad(f"{kind} stream inflates past the {max_size}-byte limit", "too-large")
            if not d.eof:
                raise _Bad(f"{kind} stream is truncated", "truncated")
            return out
        if kind in ("xz", "lzma"):
            return _stream(lzma.LZMADecompressor(lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE),
                           kind, raw, max_size)
        if kind == "bzip2":
            return _stream(bz2.BZ2Decompressor(), kind, raw, max_size)
        if kind == "zstd":
            import zstandard

            return _zstd(zstandard.ZstdDecompressor().decompressobj(), raw, max_size)
        if kind == "lz4":
            return _lz4_legacy(raw, max_size)
    except _Bad:
        raise
    except (lzma.LZMAError, zlib.error, OSError, ValueError, EOFError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise _Bad(f"corrupt {kind} stream: {why}", "corrupt") from None
    except Exception as e:  # zstandard.ZstdError, lz4's errors
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise _Bad(f"corrupt {kind} stream: {why}", "corrupt") from None
    raise _Bad(f"kernel image compressed with {kind}: not supported (no maintained Python decoder)",
               "unsupported")


_CHUNK = 1 << 20


def _stream(d, kind: str, raw: bytes, max_size: int) -> bytes:
    out = bytearray()
    view = memoryview(raw)
    pos = 0
    while not d.eof:
        chunk: bytes | memoryview = b""
        if d.needs_input:
            if pos >= len(raw):
                raise _Bad(f"{kind} stream is truncated", "truncated")
            chunk = view[pos:pos + _CHUNK]
            pos += len(chunk)
        before = len(out)
        out += d.decompress(chunk, max_length=max_size + 1 - len(out))
        if len(out) > max_size:
            raise _Bad(f"{kind} stream inflates past the {max_size}-byte limit", "too-large")
        if not chunk and len(out) == before and not d.eof:
            raise _Bad(f"{kind} stream is truncated", "truncated")
    return bytes(out)


def _zstd(d, raw: bytes, max_size: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    view = memoryview(raw)
    pos = 0
    while not d.eof:
        if pos >= len(raw):
            raise _Bad("zstd stream is truncated", "truncated")
        out = d.decompress(view[pos:pos + 1024])  # 1 KiB pieces: see files/opener.py _ZSTD_CHUNK
        pos += 1024
        total += len(out)
        if total > max_size:
            raise _Bad(f"zstd stream inflates past the {max_size}-byte limit", "too-large")
        parts.append(out)
    return b"".join(parts)


_LZ4_BLOCK = 8 << 20  # lib/decompress_unlz4.c: LZ4_DEFAULT_UNCOMPRESSED_CHUNK_SIZE


def _lz4_legacy(raw: bytes, max_size: int) -> bytes:
    """The lz4 legacy frame the kernel writes (scripts/Makefile.lib ``lz4 -l``): magic, then
    (u32 size, block) pairs of at most 8 MiB inflated, ending at the input's end or where
    the next word is no plausible block size (lib/decompress_unlz4.c unlz4())."""
    try:
        import lz4.block
    except ImportError:
        raise _Bad("kernel image compressed with lz4: not supported here (install the Python package lz4)",
                   "unsupported") from None
    parts: list[bytes] = []
    total = 0
    pos = 4
    while pos + 4 <= len(raw):
        size = struct.unpack_from("<I", raw, pos)[0]
        if size == 0x184C2102:  # a further legacy frame
            pos += 4
            continue
        if size > _LZ4_BLOCK + _LZ4_BLOCK // 255 + 16:  # LZ4_compressBound(8 MiB)
            break  # the appended inflated size, or anything after the stream
        if pos + 4 + size > len(raw):
            if parts:
                break  # the 4-byte inflated size the build appends reads as a block size
            raise _Bad("lz4 stream is truncated", "truncated")
        out = lz4.block.decompress(raw[pos + 4:pos + 4 + size], uncompressed_size=_LZ4_BLOCK)
        total += len(out)
        if total > max_size:
            raise _Bad(f"lz4 stream inflates past the {max_size}-byte limit", "too-large")
        parts.append(out)
        pos += 4 + size
    if not parts:
        raise _Bad("lz4 stream is truncated", "truncated")
    return b"".join(parts)
