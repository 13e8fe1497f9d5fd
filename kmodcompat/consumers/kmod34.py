"""kmod 33 to 34.2 (Debian 13 trixie: 34.2-2). libkmod-elf.c is the same blob in 34, 34.1 and 34.2."""

import errno

from .kmod import Kmod

KMOD34 = Kmod(
    id="kmod34",
    version="34.2",
    missing_section_errno=errno.ENODATA,
    names_must_be_terminated=True,  # kmod_elf_get_modversions: memchr(name, '\0', len) or -EINVAL
    gzip_errno=errno.ENOSYS,
    decoder_errors_logged=True,
    zstd_single_sized_frame=True,
    writes_weakdep=True,
)
