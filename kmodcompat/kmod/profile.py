"""The kmod releases emulated, as one immutable profile each: the knobs in which they differ.

Sources are kmod-project/kmod tags v30 and v34.2 (libkmod/libkmod-elf.c,
libkmod/libkmod-file.c, libkmod/libkmod-module.c, tools/depmod.c,
tools/modinfo.c, tools/modprobe.c) and pull request #270; docs/formats.md §3 has
the comparison table. The readers (:mod:`.elf`, :mod:`.file`, :mod:`.module`)
and the tools (:mod:`.tools`) take a profile and follow its knobs.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, replace

from ..parse.signature import OPENSSL_DIGEST_NAMES
from .getopt import DEPMOD_30, DEPMOD_34, Options


@dataclass(frozen=True)
class Kmod:
    """One kmod release's behaviour, as far as module files are concerned."""

    id: str  # CLI identifier (--as), and the consumer id of its model (consumers.CONSUMERS)
    version: str  # "30", "34.2"
    missing_section_errno: int  # v30 ENOENT; v31+ ENODATA (5c004af)
    names_must_be_terminated: bool  # v34: __versions names need a NUL inside the field (libkmod-elf.c)
    writes_weakdep: bool  # v33+: modules.weakdep
    # Debian builds both releases without zlib (`kmod --version`: -ZLIB). kmod 30 then
    # does not know the gzip magic and reads the file as a (non-ELF) plain file;
    # kmod 34 knows it and fails with ENOSYS.
    gzip_errno: int | None
    # Suffixes modinfo accepts as a file name (path_ends_with_kmod_ext, per build).
    module_suffixes: tuple[str, ...] = (".ko", ".ko.xz", ".ko.zst")
    decoder_errors_logged: bool = False  # v34 logs the decoder's message before failing
    negative_pad_width: bool = False  # v30 pads keys longer than 15 by len-15 (printf negative width)
    #: PKCS#7 digest OID → name printed, for releases with their own table (v30;
    #: a digest outside it drops every signature field). None: OpenSSL's names (v32+).
    pkcs7_digest_names: dict[str, str] | None = None
    zstd_single_sized_frame: bool = False  # v33+ decodes one frame into a buffer sized from its header
    #: tools/depmod.c default_cfg_paths[], in precedence order (a file name seen in an
    #: earlier directory hides the same name in a later one). v34 adds DISTCONFDIR
    #: (/usr/lib on Debian).
    depmod_config_dirs: tuple[str, ...] = ("/etc/depmod.d", "/run/depmod.d", "/usr/local/lib/depmod.d",
                                           "/lib/depmod.d")
    #: depmod_modules_sort(): v34 places a module at the FIRST modules.order line naming
    #: it (later ones are skipped); v30 overwrites sort_idx, so the LAST line wins.
    modules_order_first_wins: bool = False
    #: kmod PR #270 (unmerged): kmod_elf_get_modversions() reads the extended tables when both exist,
    #: in preference to __versions, and kmod_elf_get_dependency_symbols() goes through it.
    reads_extended: bool = False
    #: cfg_files_filter_out() checks fstatat()'s result (v34, a55c094): a .conf entry that
    #: cannot be stat()ed is "Cannot stat directory entry"; v30 goes on with whatever the
    #: stat buffer held and fails later, in cfg_file_parse().
    config_entry_stat_checked: bool = True
    #: What freadline_wrapped() (shared/util.c) keeps of a backslash that ends the file: nothing
    #: (v34, 7805c95), or getc()'s EOF stored as the byte 0xff (v30), which becomes part of the line.
    wrapped_eof_backslash: bytes = b""
    #: The function of libkmod-elf.c whose assert()s check a section index, and the line of its first
    #: one (``idx != SHN_UNDEF``; ``idx < elf->header.section.count`` is the next line). Debian builds
    #: keep assertions: a bad index aborts the tool (SIGABRT) with that line on stderr.
    section_assert: tuple[str, int] = ("elf_get_section_header_offset", 208)  # v34.2
    #: depmod's command line (tools/depmod.c cmdopts_s/cmdopts[]): kmod/getopt.py.
    depmod_options: Options = DEPMOD_34
    #: What ``-V`` prints (tools/kmod.c kmod_version(); v30: ``puts(PACKAGE " version " VERSION);
    #: puts(KMOD_FEATURES);``): the release and the features of Debian's build, as its binary prints them.
    version_text: str = "kmod version 34.2\n+ZSTD +XZ -ZLIB +OPENSSL\n"


#: kmod 30 (Debian 12 bookworm: 30+20221128-1).
KMOD30 = Kmod(
    id="kmod30",
    version="30",
    missing_section_errno=errno.ENOENT,  # ENODATA only from v31 (5c004af)
    names_must_be_terminated=False,  # strlen() runs on; the check arrived in v34
    gzip_errno=errno.ENOEXEC,
    decoder_errors_logged=False,
    negative_pad_width=True,
    pkcs7_digest_names={oid: name for oid, name in OPENSSL_DIGEST_NAMES.items()
                        if name in ("md4", "md5", "sha1", "ripemd160", "sha224", "sha256", "sha384", "sha512", "sm3")}
    | {"1.3.36.3.2.1": "rmd160"},  # kmod 30's pkey_hash_algo[] spells it rmd160
    writes_weakdep=False,  # modules.weakdep is v33+
    depmod_config_dirs=("/etc/depmod.d", "/run/depmod.d", "/usr/local/lib/depmod.d", "/lib/depmod.d"),
    modules_order_first_wins=False,  # depmod_modules_sort(): sort_idx = idx - total, overwritten per line
    config_entry_stat_checked=False,  # fstatat()'s result unchecked until v34 (a55c094)
    wrapped_eof_backslash=b"\xff",  # a final backslash stores EOF as a byte until v34 (7805c95)
    section_assert=("elf_get_section_header", 213),  # v30 libkmod-elf.c
    depmod_options=DEPMOD_30,  # -u -q -r -m deprecated; no -m DIR / -o DIR
    version_text="kmod version 30\n+ZSTD +XZ -ZLIB +LIBCRYPTO -EXPERIMENTAL\n",
)

#: kmod 33 to 34.2 (Debian 13 trixie: 34.2-2). libkmod-elf.c is the same blob in 34, 34.1 and 34.2.
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

#: kmod with upstream pull request #270 "Support Extended Modversions" (unreleased).
#:
#: kmod-project/kmod#270 (Matthew Maurer, head 3eaf725d7af0): 4e79a46 "Centralize
#: modversions parsing", ffe6c67 "libkmod: Support EXTENDED_MODVERSIONS". It
#: applies on master, which parses like 34.2 (docs/formats.md §3.1), so every other
#: knob is kmod 34's. It cannot be run here; its rules are tested on fixtures.
KMOD_PR270 = replace(KMOD34, id="kmod-pr270", version="34.2+PR270", reads_extended=True)

#: kmod releases we emulate byte for byte, by CLI identifier; kmod 34.2 is the default.
KMOD_RELEASES: dict[str, Kmod] = {KMOD30.id: KMOD30, KMOD34.id: KMOD34}
DEFAULT_KMOD = KMOD34
#: Every kmod profile a command's ``--as`` accepts: the releases, and kmod with PR #270
#: (unreleased, so no binary checks it; its rules are pinned by fixtures).
KMOD_PROFILES: dict[str, Kmod] = {**KMOD_RELEASES, KMOD_PR270.id: KMOD_PR270}
