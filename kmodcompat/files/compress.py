"""Compressing a module as the kernel's ``make modules_install`` does: the writer's side of :mod:`.opener`.

The settings are scripts/Makefile.modinst's (Linux 6.12):

* gzip: ``$(KGZIP) -n -f``: level 6, no file name, no time stamp;
* xz: ``$(XZ) --check=crc32 --lzma2=dict=1MiB -f`` (since 2023; ``--lzma2=dict=2MiB``
  before): the kernel's own decompressor (XZ Embedded, CONFIG_MODULE_DECOMPRESS) supports
  CRC32 only as integrity check (Documentation/staging/xz.rst), so xz's default, CRC64,
  would make it refuse the module. The level is xz's fastest, ``-0``, not the default ``-6``: no
  reader checks it, and ``-6`` made a whole trixie amd64 tree (4,230 modules) cost 98 s of CPU
  where ``-0`` costs about a seventh of it, for files 12% larger;
* zstd: ``$(ZSTD) --rm -f -q``: level 3, and as the zstd program writes every frame,
  with its content size and an XXH64 checksum (kmod reads the content size first:
  :func:`.opener.zstd_stream_prefix`).

Each result reads back through :func:`.opener.read_module_bytes` to the same bytes
(tests/test_simulate_tree.py), and through real kmod.
"""

from __future__ import annotations

import gzip
import lzma

__all__ = ["COMPRESSIONS", "compress"]

#: What :func:`compress` writes: the names :func:`.opener.detect_compression` gives.
COMPRESSIONS = ("gzip", "xz", "zstd")

_XZ_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 0, "dict_size": 1 << 20}]


def compress(data: bytes, compression: str | None) -> bytes:
    """``data`` compressed as ``compression`` (None: as it is)."""
    if compression is None:
        return data
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "xz":
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, filters=_XZ_FILTERS)
    if compression == "zstd":
        import zstandard  # imported lazily, as by the opener: most trees are plain or xz

        return zstandard.ZstdCompressor(level=3, write_checksum=True, write_content_size=True).compress(data)
    raise ValueError(f"unknown compression {compression!r}; one of {', '.join(COMPRESSIONS)}")
