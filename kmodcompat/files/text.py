"""Text inputs read whole (Module.symvers, System.map): bounded, and a ``.gz`` inflated in memory.

Distributions ship the kernel's Module.symvers gzipped (Fedora, RHEL and
SUSE ``/boot/symvers-KVER.gz``; ``/usr/lib/modules/KVER/symvers.gz``). Real
files are 1-2 MB inflated; :data:`MAX_TEXT_SIZE` is 64 MiB, and a file or
stream past it is refused with a one-line reason, never read into memory:
the compressed input goes in by chunks and the decompressor is told how much
output it may still give (a 3 GiB gzip bomb costs 64 MiB and a fraction of
a second). Nothing is written to disk.
"""

from __future__ import annotations

import errno
import os
import zlib

__all__ = ["MAX_TEXT_SIZE", "TextInputError", "read_text_file"]

MAX_TEXT_SIZE = 64 << 20
_CHUNK = 1 << 16
#: gzip members a file may hold (Python's gzip module, which read these files before, reads
#: concatenated members): real files have one; each costs a decoder set-up.
MAX_MEMBERS = 64
_GZIP_MAGIC = b"\x1f\x8b"


class TextInputError(OSError):
    """The file could not be read: ``errno``, ``strerror`` (the one-line reason) and ``filename``."""


def _limit_text(max_size: int) -> str:
    return f"{max_size >> 20} MiB" if max_size >= 1 << 20 and not max_size % (1 << 20) else f"{max_size} bytes"


def read_text_file(path: str, gunzip: bool = False, max_size: int = MAX_TEXT_SIZE) -> bytes:
    """The bytes of ``path`` (inflated when ``gunzip``), at most ``max_size`` of them; raises TextInputError."""
    try:
        with open(path, "rb", buffering=0) as f:
            return _gunzip(f, path, max_size) if gunzip else _read_up_to(f, path, max_size)
    except TextInputError:
        raise
    except OSError as e:
        raise TextInputError(e.errno, os.strerror(e.errno or errno.EIO), path) from None


def _read_up_to(f, path: str, max_size: int) -> bytes:
    """Chunk by chunk (a device or a pipe never makes us ask for ``max_size`` bytes at once)."""
    parts: list[bytes] = []
    size = 0
    while True:
        part = f.read(min(_CHUNK << 4, max_size + 1 - size))
        if not part:
            return b"".join(parts)
        parts.append(part)
        size += len(part)
        if size > max_size:
            raise TextInputError(errno.EFBIG, f"file is larger than the {_limit_text(max_size)} limit", path)


def _gunzip(f, path: str, max_size: int) -> bytes:
    """Every gzip member of ``f`` (zero padding after one is allowed, as by Python's gzip module)."""
    out = bytearray()
    pending = f.read(_CHUNK)
    if not pending.startswith(_GZIP_MAGIC):
        raise TextInputError(errno.EINVAL, "not a gzip file", path)
    members = 0
    while True:
        d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        while not d.eof:
            if not pending:
                pending = f.read(_CHUNK)
                if not pending:
                    raise TextInputError(errno.EINVAL, "gzip stream is truncated", path)
            try:
                # At most a chunk of output per call: a bomb's 64 KiB of input would inflate to 64 MiB in one
                # piece, held next to ``out`` while it is appended.
                out += d.decompress(pending, min(_CHUNK << 4, max_size + 1 - len(out)))
            except zlib.error as e:
                raise TextInputError(errno.EINVAL, f"corrupt gzip stream: {e}", path) from None
            if len(out) > max_size:
                raise TextInputError(errno.EFBIG, f"gzip stream inflates past the {_limit_text(max_size)} limit",
                                     path)
            pending = d.unconsumed_tail
        members += 1
        pending = d.unused_data.lstrip(b"\0")
        while not pending:
            more = f.read(_CHUNK)
            if not more:
                return bytes(out)
            pending = more.lstrip(b"\0")
        if not pending.startswith(_GZIP_MAGIC) and len(pending) >= 2:
            raise TextInputError(errno.EINVAL, "gzip stream is followed by non-gzip bytes", path)
        if members >= MAX_MEMBERS:
            raise TextInputError(errno.EINVAL, f"more than {MAX_MEMBERS} concatenated gzip members", path)
