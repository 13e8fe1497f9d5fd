"""kmod 30 (Debian 12 bookworm: 30+20221128-1)."""

import errno

from ..parse.signature import OPENSSL_DIGEST_NAMES
from .kmod import Kmod

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
)
