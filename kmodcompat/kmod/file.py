"""libkmod/libkmod-file.c (and -xz.c, -zstd.c): opening a module file, as each build of kmod can.

The file is parsed once (:func:`kmodcompat.parse.module.parse_module`);
:func:`as_opened` then applies what one release's Debian build cannot open,
with the errno it fails with.
"""

from __future__ import annotations

import errno

from ..errors import ModuleReadError
from ..files.opener import zstd_stream_prefix
from ..parse.module import parse_module, parse_module_bytes
from ..records import ModuleRecord
from .profile import Kmod


def open_module(kmod: Kmod, path: str) -> ModuleRecord | ModuleReadError:
    """kmod_file_open(): parse ``path`` as this kmod would open it; an error carries kmod's errno."""
    try:
        opened: ModuleRecord | ModuleReadError = parse_module(path)
    except ModuleReadError as e:
        opened = e
    return as_opened(kmod, opened)


def as_opened(kmod: Kmod, opened: ModuleRecord | ModuleReadError) -> ModuleRecord | ModuleReadError:
    """Apply this build's limits to a file parsed once for several consumers."""
    if kmod.gzip_errno is not None and opened.compression == "gzip":
        return ModuleReadError(opened.path, f"kmod {kmod.version} (Debian build) cannot read gzip",
                               "unsupported-compression", kmod.gzip_errno, compression="gzip")
    if (not kmod.zstd_single_sized_frame and isinstance(opened, ModuleReadError) and opened.compression == "zstd"
            and opened.detail in ("truncated", "truncated-checksum")):
        return _streamed_zstd(opened)
    if kmod.zstd_single_sized_frame and isinstance(opened, ModuleRecord):
        if "zstd-no-content-size" in opened.compression_notes:
            return ModuleReadError(opened.path, "zstd frame has no content size", "decompress-failed",
                                   errno.EINVAL, "zstd:Failed to determine decompression size", "zstd")
        if "zstd-multi-frame" in opened.compression_notes:
            return ModuleReadError(opened.path, "several zstd frames", "decompress-failed",
                                   errno.EINVAL, "zstd:Destination buffer is too small", "zstd")
        if "zstd-skippable-truncated" in opened.compression_notes:  # ZSTD_decompress() wants it whole
            return ModuleReadError(opened.path, "a zstd skippable frame is cut short", "decompress-failed",
                                   errno.EINVAL, "zstd:Src size is incorrect", "zstd")
    return opened


def _streamed_zstd(err: ModuleReadError) -> ModuleRecord | ModuleReadError:
    """A truncated .ko.zst as kmod 30's streaming load_zstd() keeps it: the blocks decoded before the cut,
    judged by kmod_elf_new() like any file (a cut checksum alone leaves the whole module). Read again from
    the file only on this rare path, so records and the cache keep one parse per file."""
    try:
        data = zstd_stream_prefix(err.path)
    except (OSError, ModuleReadError):
        return err
    if len(data) <= 16:  # elf_identify(): size <= EI_NIDENT is ENOEXEC (ElfImage's EINVAL below 6 is mmap's, plain files')
        return ModuleReadError(err.path, f"zstd stream cut after {len(data)} decoded byte(s)", "not-elf",
                               errno.ENOEXEC, "truncated", "zstd")
    try:
        return parse_module_bytes(data, err.path, "zstd", None, ())
    except ModuleReadError as e:
        return e


def decoder_message(kmod: Kmod, err: ModuleReadError, tool: str) -> str | None:
    """The line v33+ logs with the decoder's complaint (libkmod-file-{xz,zstd}.c) before the failure
    line of ``tool`` ("modinfo", "modprobe", "depmod"); None when it logs none."""
    if not (kmod.decoder_errors_logged and err.code == "decompress-failed"):
        return None
    if err.compression == "xz":
        what = {"truncated": "Unexpected end of input", "format": "File format not recognized",
                "options": "Unsupported compression options"}.get(err.detail or "", "File is corrupt")
        func = "xz_uncompress_belch"
    elif err.compression == "zstd":
        what = (err.detail or "").removeprefix("zstd:") if (err.detail or "").startswith("zstd:") \
            else {"truncated": "Src size is incorrect", "trailing": "Src size is incorrect",
                  "truncated-checksum": "Restored data doesn't match checksum"}.get(
                err.detail or "", "Data corruption detected")
        func = "kmod_file_load_zstd"
    else:
        return None
    if tool == "modinfo":
        return f"libkmod: ERROR: {func}: {err.compression}: {what}"
    return f"{tool}: ERROR: {err.compression}: {what}"
