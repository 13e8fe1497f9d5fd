"""One module file in, one :class:`~kmodcompat.records.ModuleRecord` out.

This is the only place that sees a module's bytes: it opens the file,
accepts or refuses the ELF image as kmod does, and hands each table to its
parser. Malformed tables become findings; only a file kmod itself could not
open (unreadable, corrupt compression, not ELF, broken section table) raises
:class:`~kmodcompat.errors.ModuleReadError`.
"""

from __future__ import annotations

import os

from . import ksymtab, modinfo, signature
from ..elf.image import ElfImage
from ..errors import ElfError, ModuleReadError
from ..modversions import basic, extended, hashed, varlen
from ..files.opener import DEFAULT_MAX_SIZE, read_module_bytes
from ..records import Finding, ModuleRecord

__all__ = ["parse_module", "parse_module_bytes"]


def parse_module(path: str | os.PathLike[str], max_size: int = DEFAULT_MAX_SIZE) -> ModuleRecord:
    """Read and parse one module file (``.ko``, ``.ko.gz``, ``.ko.xz``, ``.ko.zst``)."""
    data, compression, notes = read_module_bytes(path, max_size)
    try:
        file_size = os.stat(path).st_size
    except OSError:
        file_size = len(data)
    return parse_module_bytes(data, os.fspath(path), compression, file_size, notes)


def parse_module_bytes(data: bytes, path: str = "<bytes>", compression: str | None = None,
                       file_size: int | None = None, compression_notes: tuple[str, ...] = ()) -> ModuleRecord:
    """Parse an already decompressed module image."""
    try:
        elf = ElfImage(data)
    except ElfError as e:
        raise ModuleReadError(path, e.reason, e.code, e.errno, compression=compression) from None
    try:
        return _parse(elf, data, path, compression, file_size, compression_notes)
    except ElfError as e:  # a table past what kmodcompat reads (elf.image.MAX_TABLE_ENTRIES)
        raise ModuleReadError(path, e.reason, e.code, e.errno, compression=compression) from None


def _parse(elf: ElfImage, data: bytes, path: str, compression: str | None, file_size: int | None,
           compression_notes: tuple[str, ...]) -> ModuleRecord:
    findings = []
    info, f = modinfo.parse(elf)
    findings += f
    syms = ksymtab.scan_symbols(elf)
    findings += syms.findings
    strings, strings_terminated = ksymtab.ksymtab_strings(elf)
    vers, f = basic.parse(elf)
    findings += f
    var, f = varlen.parse(elf)
    findings += f
    hsh, f = hashed.parse(elf, vers, syms.imports)
    findings += f
    ext, f = extended.parse(elf)
    findings += f
    sig = signature.parse(data)
    if sig is not None and sig.pkcs7_error:
        findings.append(Finding("signature-pkcs7-invalid", sig.pkcs7_error))
    elif sig is not None and not sig.kmod_accepts:
        findings.append(Finding("signature-invalid", "signature trailer fails kmod's sanity checks"))

    return ModuleRecord(
        path=path,
        file_size=len(data) if file_size is None else file_size,
        compression=compression,
        compression_notes=compression_notes,
        image_size=len(data),
        elf=elf.header,
        sections=elf.sections,
        modinfo=info,
        imports=syms.imports,
        crc_symbols=syms.crc_symbols,
        ksymtab_strings=strings,
        ksymtab_strings_terminated=strings_terminated,
        exports=syms.exports,
        versions=vers,
        ext_versions=ext,
        varlen_versions=var,
        signature=sig,
        findings=tuple(findings),
        hashed_versions=hsh,
    )
