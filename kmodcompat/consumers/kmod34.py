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
    depmod_config_dirs=("/etc/depmod.d", "/run/depmod.d", "/usr/local/lib/depmod.d", "/usr/lib/depmod.d",
                        "/lib/depmod.d"),  # DISTCONFDIR "/depmod.d" (meson distconfdir = /usr/lib)
    modules_order_first_wins=True,  # depmod_modules_sort(): `if (mod == NULL || mod->sort_idx < 0) continue;`
)
