"""Opening module files: plain, gzip, xz and zstd, detected by magic bytes.

kmod (libkmod-file.c) chooses the decompressor from the first bytes of the
file, not from its suffix, so a `.ko` that holds an xz stream is read as xz.
We do the same. Every decompressor is bounded: a stream that would inflate
past ``max_size`` is an error, never an allocation.
"""

from __future__ import annotations

import errno
import lzma
import os
import re
import stat
import zlib
from typing import NamedTuple

from ..errors import ModuleReadError
from .bounded import read_up_to

# Magic bytes as in kmod's libkmod-file.c (v34.2) file_types[].
_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x1f\x8b", "gzip"),
)

#: The largest module seen in Debian trees is ~40 MiB uncompressed (amdgpu).
#: busybox caps at 64 MiB; we allow more but still bound memory.
DEFAULT_MAX_SIZE = 256 * 1024 * 1024

_CHUNK = 1 << 20
#: zstd input is fed in small pieces: one RLE block of 4 bytes inflates to 128 KiB,
#: so a 1 MiB piece could become 32 GiB in one call; 1 KiB stays under 32 MiB.
_ZSTD_CHUNK = 1 << 10
#: Concatenated xz streams / zstd frames a file may hold. Real modules have one (two in
#: our fixtures); every stream costs a decoder set-up, and 32-byte empty xz streams
#: would make a 256 MiB file cost millions of them.
MAX_STREAMS = 1024
_NONZERO = re.compile(rb"[^\0]")
_SKIPPABLE = re.compile(rb"[\x50-\x5f]\x2a\x4d\x18", re.DOTALL)  # zstd skippable frame magic, little-endian


def detect_compression(head: bytes) -> str | None:
    """Return "gzip", "xz", "zstd" or None (plain) for a file's first bytes."""
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    return None


class Opened(NamedTuple):
    data: bytes  # the decompressed image
    compression: str | None  # "gzip", "xz", "zstd" or None
    notes: tuple[str, ...]  # stream layout facts some readers trip over, e.g. "zstd-no-content-size"


def read_module_bytes(path: str | os.PathLike[str], max_size: int = DEFAULT_MAX_SIZE) -> Opened:
    """Read a module file and return its decompressed bytes, compression and stream notes.

    Raises ModuleReadError with a one-line reason for anything unreadable.
    """
    try:
        # no file object: 3 of the 8 us a small module took. O_NONBLOCK: open() of a FIFO nobody writes
        # returns at once instead of waiting for a writer (kmod's open() waits forever; we waited for the
        # 60 s parse deadline, once per command that scanned the tree).
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            # A device (a tree's `x.ko -> /dev/zero`) is never a module: reading it would
            # fill max_size bytes or block. Pipes stay readable (`show <(xz -dc m.ko.xz)`).
            st = os.fstat(fd)
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISSOCK(st.st_mode):
                raise ModuleReadError(path, "not a regular file", "unreadable", errno.EINVAL)
            if stat.S_ISREG(st.st_mode):
                # read(n) allocates n bytes up front: ask a regular file for its size (one byte more
                # shows it growing), anything else for a chunk, never for max_size + 1.
                raw = read_up_to(fd, min(st.st_size, max_size) + 1, max_size + 1)
            else:
                raw = _read_pipe(path, fd, max_size + 1)
        finally:
            os.close(fd)
    except IsADirectoryError:
        raise ModuleReadError(path, "is a directory", "is-directory", errno.EISDIR) from None
    except FileNotFoundError:
        raise ModuleReadError(path, "no such file", "not-found", errno.ENOENT) from None
    except OSError as e:
        raise ModuleReadError(path, e.strerror or str(e), "unreadable", e.errno or errno.EIO) from None
    # kmod_file_open() (v30..v34.2 libkmod-file.c) reads 6 bytes of magic before anything else: a shorter
    # file is EINVAL whatever its first bytes, never handed to a decoder (ElfImage: "file too short").
    compression = detect_compression(raw[:6]) if len(raw) >= 6 else None
    if compression is None:
        if len(raw) > max_size:
            raise ModuleReadError(path, f"file is larger than the {max_size}-byte limit", "too-large", errno.EFBIG)
        return Opened(raw, None, ())
    if len(raw) > max_size:
        raise ModuleReadError(path, f"compressed file is larger than the {max_size}-byte limit")
    notes: list[str] = []
    try:
        data = _DECOMPRESSORS[compression](raw, max_size, notes)
    except ModuleReadError:
        raise
    except _DecompressLimit:
        raise ModuleReadError(path, f"{compression} stream inflates past the {max_size}-byte limit",
                              "decompress-limit", errno.EFBIG, "limit", compression) from None
    except _Truncated as e:
        # detail "truncated-checksum": every block decoded, only the frame's checksum is cut (zstd)
        raise ModuleReadError(path, f"{compression} stream is truncated", "decompress-failed",
                              errno.EINVAL, e.args[0] if e.args else "truncated", compression) from None
    except _TrailingData:
        raise ModuleReadError(path, f"{compression} stream is followed by non-{compression} bytes",
                              "decompress-failed", errno.EINVAL, "trailing", compression) from None
    except _TooManyStreams:
        raise ModuleReadError(path, f"more than {MAX_STREAMS} concatenated {compression} streams",
                              "decompress-failed", errno.EINVAL, "streams", compression) from None
    except Exception as e:  # lzma.LZMAError, zlib.error, zstandard.ZstdError, ...
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        detail = "format" if "format" in why.lower() else "options" if "option" in why.lower() else "corrupt"
        raise ModuleReadError(path, f"corrupt {compression} stream: {why}", "decompress-failed",
                              errno.EINVAL, detail, compression) from None
    return Opened(data, compression, tuple(notes))


class _DecompressLimit(Exception):
    pass


class _Truncated(Exception):
    pass


class _TrailingData(Exception):
    pass


class _TooManyStreams(Exception):
    pass


def _xz(raw: bytes, max_size: int, notes: list[str]) -> bytes:
    # kmod decodes with LZMA_CONCATENATED: further streams and zero padding are
    # allowed after the first stream, anything else is an error. Input goes in
    # by chunks, positions are tracked in ``raw``: the decoder copies its unused
    # input when a stream ends, which over many streams would be quadratic.
    out = bytearray()
    view = memoryview(raw)
    pos, size, streams = 0, len(raw), 0
    while True:
        d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        while not d.eof:
            chunk: bytes | memoryview = b""
            if d.needs_input:
                if pos >= size:
                    raise _Truncated
                chunk = view[pos:pos + _CHUNK]
                pos += len(chunk)
            before = len(out)
            out += d.decompress(chunk, max_length=max_size + 1 - len(out))
            if len(out) > max_size:
                raise _DecompressLimit
            if not chunk and len(out) == before and not d.eof:
                raise _Truncated  # no input wanted, no output given: never loop on it
        pos -= len(d.unused_data)
        streams += 1
        nonzero = _NONZERO.search(raw, pos)
        if nonzero is None:
            return bytes(out)
        pos = nonzero.start()
        if not raw.startswith(b"\xfd7zXZ\x00", pos):
            raise _Truncated  # liblzma reports trailing junk as LZMA_BUF_ERROR too
        if streams >= MAX_STREAMS:
            raise _TooManyStreams
        notes.append("xz-multi-stream")


def _gzip(raw: bytes, max_size: int, notes: list[str]) -> bytes:
    # Concatenated members are one file, as zlib's gzread() (which a kmod built with zlib
    # reads through, libkmod-file.c load_zlib) and gzip -d read them; after the last member,
    # bytes that are no gzip header end the data, as in gzread()'s gz_look(). Debian builds
    # kmod without zlib (profile.Kmod.gzip_errno): this is kmodcompat's own reading.
    parts: list[bytes] = []
    total, pos, members = 0, 0, 0
    while True:
        d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        out = d.decompress(memoryview(raw)[pos:], max_size + 1 - total)
        total += len(out)
        if total > max_size or d.unconsumed_tail:
            raise _DecompressLimit
        if not d.eof:
            raise _Truncated
        parts.append(out)
        members += 1
        pos = len(raw) - len(d.unused_data)
        if not raw.startswith(b"\x1f\x8b", pos):
            return parts[0] if members == 1 else b"".join(parts)
        if members >= MAX_STREAMS:
            raise _TooManyStreams
        if members == 1:
            notes.append("gzip-multi-member")


def _read_pipe(path: str | os.PathLike[str], fd: int, limit: int) -> bytes:
    """A pipe's bytes: a FIFO with no writer reads as end of file at once (Linux pipe_read(): no data and no
    writers), which is never a module but a special file in the tree; one with a writer is read to its end."""
    try:
        first = os.read(fd, min(_CHUNK, limit))
    except BlockingIOError:  # a writer holds it, nothing written yet
        first = b""
    else:
        if not first:
            raise ModuleReadError(path, "not a regular file (FIFO with no writer)", "unreadable", errno.EINVAL)
    os.set_blocking(fd, True)
    return first + read_up_to(fd, _CHUNK, limit - len(first))


def zstd_stream_prefix(path: str | os.PathLike[str], max_size: int = DEFAULT_MAX_SIZE) -> bytes:
    """What kmod 30's load_zstd() (libkmod-file.c, v30..v32) holds after a truncated .ko.zst: it feeds the
    file to ZSTD_decompressStream() until read() returns 0 and never asks whether the frame ended, so the
    blocks decoded before the cut are the module (the ELF checks judge them). OSError or ModuleReadError."""
    import zstandard

    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        raw = read_up_to(fd, max_size + 1, max_size + 1)
    finally:
        os.close(fd)
    if len(raw) > max_size:
        raise ModuleReadError(path, f"compressed file is larger than the {max_size}-byte limit")
    parts: list[bytes] = []
    total, pos, view = 0, 0, memoryview(raw)
    while pos < len(raw):
        d = zstandard.ZstdDecompressor().decompressobj()
        while not d.eof and pos < len(raw):
            chunk = view[pos:pos + _ZSTD_CHUNK]
            pos += len(chunk)
            out = d.decompress(chunk)
            total += len(out)
            if total > max_size:
                raise ModuleReadError(path, f"zstd stream inflates past the {max_size}-byte limit",
                                      "decompress-limit", errno.EFBIG, "limit", "zstd")
            parts.append(out)
        pos -= len(d.unused_data) if d.eof else 0
        if not d.eof or not raw.startswith(b"\x28\xb5\x2f\xfd", pos):
            break  # cut short, or what follows is not another data frame (skippable frames: see _zstd)
    return b"".join(parts)


def _zstd(raw: bytes, max_size: int, notes: list[str]) -> bytes:
    import zstandard  # imported lazily: most trees are plain or xz

    # kmod 34 sizes its buffer from the first frame's header and decodes one
    # frame; kmod 30 streams every frame. Record what the file needs.
    if zstandard.get_frame_parameters(raw).content_size == zstandard.CONTENTSIZE_UNKNOWN:
        notes.append("zstd-no-content-size")
    parts: list[bytes] = []
    total = 0
    view = memoryview(raw)
    pos, size, frames, data_frames = 0, len(raw), 0, 0
    while pos < size:
        if frames >= MAX_STREAMS:
            raise _TooManyStreams
        if frames and _SKIPPABLE.match(raw, pos):
            # A skippable frame (magic 0x184D2A5?, u32 length, data; RFC 8878 3.1.2) after the first
            # frame: both releases' decoders step over it (kmod 30's ZSTD_decompressStream() loop,
            # v34's ZSTD_decompress() over the whole file). A leading one is no zstd magic to
            # libkmod-file.c: the file is read as plain (ENOEXEC), as detect_compression() does.
            end = pos + 8 + int.from_bytes(raw[pos + 4:pos + 8], "little")
            frames += 1
            if end > size:
                # Cut short: kmod 30 stops at EOF without checking the decoder's state (load_zstd()
                # treats a read of 0 bytes as the end); ZSTD_decompress() reports "Src size is
                # incorrect" (Kmod.zstd_single_sized_frame, kmod/file.py).
                notes.append("zstd-skippable-truncated")
                break
            if "zstd-skippable-frame" not in notes:
                notes.append("zstd-skippable-frame")
            pos = end
            continue
        if frames and not raw.startswith(b"\x28\xb5\x2f\xfd", pos):
            raise _TrailingData
        try:
            params = zstandard.get_frame_parameters(raw[pos:pos + 18])  # a frame header is at most 18 bytes
            has_checksum, content_size = params.has_checksum, params.content_size
        except zstandard.ZstdError:  # the header itself is cut: decompressobj() says truncated below
            has_checksum, content_size = False, None
        frame_out = 0
        d = zstandard.ZstdDecompressor().decompressobj()
        while not d.eof:
            if pos >= size:
                # ZSTD_decompressFrame() (lib/decompress/zstd_decompress.c): with every block decoded and
                # fewer than 4 bytes left for the checksum it fails checksum_wrong ("Restored data doesn't
                # match checksum"); cut inside a block, srcSize_wrong ("Src size is incorrect").
                whole = has_checksum and frame_out == content_size
                raise _Truncated("truncated-checksum" if whole else "truncated")
            chunk = view[pos:pos + _ZSTD_CHUNK]
            pos += len(chunk)
            out = d.decompress(chunk)
            total += len(out)
            frame_out += len(out)
            if total > max_size:
                raise _DecompressLimit
            parts.append(out)
        # The next frame starts where this one's input ended, inside the last chunk.
        pos -= len(d.unused_data)
        frames += 1
        data_frames += 1
    if data_frames > 1:
        notes.append("zstd-multi-frame")
    return b"".join(parts)


_DECOMPRESSORS = {"xz": _xz, "gzip": _gzip, "zstd": _zstd}
