"""Would the kernel load this module? Its loader's checks, and kmod's, on raw bytes.

The kernel refuses a malformed module in ``load_module()`` (6.18.y
kernel/module/main.c, docs/formats.md §1.5) before it looks at a single
symbol version:

1. ``module_sig_check()`` (kernel/module/signing.c, kernel/module_signature.c
   ``mod_check_sig()``): the signature trailer is checked and cut off;
2. ``elf_validity_cache_copy()``: ``elf_validity_ehdr``,
   ``elf_validity_cache_sechdrs``, ``elf_validity_cache_secstrings``,
   ``elf_validity_cache_index`` (``_info``, ``_mod``, ``_sym``, ``_str``,
   ``_versions``) and ``elf_validity_cache_strtab``, in that order; the first
   failure ends the load;
3. later, ``module_enforce_rwx_sections()`` (kernel/module/strict_rwx.c,
   CONFIG_STRICT_MODULE_RWX) refuses sections both writable and executable,
   and ``simplify_symbols()`` refuses SHN_COMMON symbols and symbols whose
   section index is past the section table.

:func:`validate_bytes` replays each of those checks on the image as the
kernel would read it, in the target kernel's word size and byte order (by
default the ones the module claims), and reports a :class:`Failure` named
after the kernel function, with the errno the load returns and the message
the kernel prints. kmod's own refusals (``kmod_elf_new()``, the
``__versions`` and ``__ksymtab_strings`` checks of libkmod-elf.c) are
reported beside them, for the kmod release chosen.

It works on raw bytes and never raises for malformed input: it must judge
exactly the files :func:`kmodcompat.parse.module.parse_module_bytes` refuses.
Every read is bounded by the image, and string reads go through
:class:`kmodcompat.elf.image.StringTable` (bounded total cost).

Values only the running kernel knows are :class:`Target` parameters:
``sizeof(struct module)`` is checked only when given, the machine defaults to
the one the module claims, ``sig_enforce`` to off.
"""

from __future__ import annotations

import errno
import os
import signal
from array import array
from dataclasses import dataclass, field
from typing import NamedTuple

from .parse import signature
from .elf.image import StringTable, column_array, struct_for
from .errors import ModuleReadError
from .parse.module import parse_module_bytes
from .files.opener import DEFAULT_MAX_SIZE, read_module_bytes
from .kmod.elf import KmodAbort, KmodError, get_modversions, get_symbols, open_abort
from .kmod.profile import DEFAULT_KMOD, KMOD_PROFILES
from .elf.layout import (EHDR, EHDR_SIZE, ELFMAG, EM_PPC64, ET_REL, SHDR, SHDR_SIZE, SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE,
                         SHN_ABS, SHN_COMMON, SHN_LIVEPATCH, SHN_UNDEF, SHT_NOBITS, SHT_NULL, SHT_STRTAB, SHT_SYMTAB, SYM)
from .records import text

__all__ = ["CHECKS", "Check", "Failure", "Target", "Validation", "validate_bytes", "validate_file"]

#: What the kernel prints for a module name it does not know yet (info->name ?: ...).
_NO_NAME = "(missing .modinfo section or name field)"


class Check(NamedTuple):
    """One condition the kernel or kmod refuses, by stable code."""

    function: str  # the C function that makes the check, e.g. "elf_validity_cache_sechdrs"
    errno: int  # what the load (or the libkmod call) returns
    source: str  # "kernel" or "kmod"
    what: str  # the condition, in words


#: Every check, by code. The kernel's come from 6.18.y kernel/module/main.c, signing.c and
#: kernel/module_signature.c (docs/formats.md §1.5, §1.10); kmod's from libkmod-elf.c.
CHECKS: dict[str, Check] = {
    # module_sig_check() -> mod_verify_sig() -> mod_check_sig(): before any ELF check.
    "sig-unsigned": Check("module_sig_check", errno.EKEYREJECTED, "kernel",
                          "no signature, and the kernel enforces signatures"),
    "sig-too-short": Check("mod_verify_sig", errno.EBADMSG, "kernel",
                           "marker present but no room for struct module_signature"),
    "sig-len-overflow": Check("mod_check_sig", errno.EBADMSG, "kernel", "sig_len does not fit in the file"),
    "sig-not-pkcs7": Check("mod_check_sig", errno.ENOPKG, "kernel",
                           "id_type is not PKEY_ID_PKCS7 (fatal only with sig_enforce)"),
    "sig-nonzero-params": Check("mod_check_sig", errno.EBADMSG, "kernel",
                                "algo, hash, signer_len, key_id_len or padding not zero"),
    "sig-pkcs7-malformed": Check("verify_pkcs7_signature", errno.EBADMSG, "kernel",
                                 "the signature is not a parseable PKCS#7 message"),
    # elf_validity_ehdr()
    "ehdr-len": Check("elf_validity_ehdr", errno.ENOEXEC, "kernel", "shorter than an ELF header"),
    "ehdr-magic": Check("elf_validity_ehdr", errno.ENOEXEC, "kernel", "no \\177ELF magic"),
    "ehdr-type": Check("elf_validity_ehdr", errno.ENOEXEC, "kernel", "e_type is not ET_REL"),
    "ehdr-arch": Check("elf_validity_ehdr", errno.ENOEXEC, "kernel", "elf_check_arch(): wrong e_machine"),
    "ehdr-module-arch": Check("elf_validity_ehdr", errno.ENOEXEC, "kernel",
                              "module_elf_check_arch(): ppc64 ELF ABI level the kernel does not run"),
    # elf_validity_cache_sechdrs()
    "sechdrs-entsize": Check("elf_validity_cache_sechdrs", errno.ENOEXEC, "kernel",
                             "e_shentsize is not sizeof(Elf_Shdr)"),
    "sechdrs-overflow": Check("elf_validity_cache_sechdrs", errno.ENOEXEC, "kernel",
                              "section header table outside the file"),
    "sechdrs-section0": Check("elf_validity_cache_sechdrs", errno.ENOEXEC, "kernel",
                              "section 0 is not an empty SHT_NULL"),
    "sechdrs-bounds": Check("elf_validity_cache_sechdrs", errno.ENOEXEC, "kernel",
                            "a section's contents lie outside the file"),
    # elf_validity_cache_secstrings()
    "secstrings-index": Check("elf_validity_cache_secstrings", errno.ENOEXEC, "kernel",
                              "e_shstrndx is SHN_UNDEF or past the table"),
    "secstrings-type": Check("elf_validity_cache_secstrings", errno.ENOEXEC, "kernel",
                             "section name table is not SHT_STRTAB"),
    "secstrings-empty": Check("elf_validity_cache_secstrings", errno.ENOEXEC, "kernel",
                              "section name table is empty"),
    "secstrings-unterminated": Check("elf_validity_cache_secstrings", errno.ENOEXEC, "kernel",
                                     "section name table does not end with NUL"),
    "secstrings-name-bounds": Check("elf_validity_cache_secstrings", errno.ENOEXEC, "kernel",
                                    "a section's sh_name is past the section name table"),
    # elf_validity_cache_index() and its parts
    "index-info-duplicate": Check("elf_validity_cache_index_info", errno.ENOEXEC, "kernel",
                                  "more than one .modinfo section"),
    "index-mod-count": Check("elf_validity_cache_index_mod", errno.ENOEXEC, "kernel",
                             "not exactly one .gnu.linkonce.this_module section"),
    "index-mod-nobits": Check("elf_validity_cache_index_mod", errno.ENOEXEC, "kernel",
                              ".gnu.linkonce.this_module is SHT_NOBITS"),
    "index-mod-noalloc": Check("elf_validity_cache_index_mod", errno.ENOEXEC, "kernel",
                               ".gnu.linkonce.this_module lacks SHF_ALLOC"),
    "index-mod-size": Check("elf_validity_cache_index_mod", errno.ENOEXEC, "kernel",
                            ".gnu.linkonce.this_module size is not the kernel's sizeof(struct module)"),
    "index-sym-count": Check("elf_validity_cache_index_sym", errno.ENOEXEC, "kernel",
                             "not exactly one SHT_SYMTAB section"),
    "index-str-link": Check("elf_validity_cache_index_str", errno.ENOEXEC, "kernel",
                            "the symbol table's sh_link is SHN_UNDEF or past the table"),
    "index-str-type": Check("elf_validity_cache_index_str", errno.ENOEXEC, "kernel",
                            "the symbol table's string table is not SHT_STRTAB"),
    "index-versions-presence": Check("elf_validity_cache_index_versions", errno.ENOEXEC, "kernel",
                                     "only one of __version_ext_crcs / __version_ext_names (SHF_ALLOC)"),
    "index-versions-names": Check("elf_validity_cache_index_versions", errno.ENOEXEC, "kernel",
                                  "fewer NUL-terminated __version_ext_names than CRCs"),
    # elf_validity_cache_strtab()
    "strtab-empty": Check("elf_validity_cache_strtab", errno.ENOEXEC, "kernel", "symbol string table is empty"),
    "strtab-leading-nul": Check("elf_validity_cache_strtab", errno.ENOEXEC, "kernel",
                                "symbol string table does not begin with NUL"),
    "strtab-unterminated": Check("elf_validity_cache_strtab", errno.ENOEXEC, "kernel",
                                 "symbol string table does not end with NUL"),
    "strtab-name-bounds": Check("elf_validity_cache_strtab", errno.ENOEXEC, "kernel",
                                "a symbol's st_name is past the symbol string table"),
    # layout_and_allocate() -> module_enforce_rwx_sections() (CONFIG_STRICT_MODULE_RWX)
    "rwx-section": Check("module_enforce_rwx_sections", errno.ENOEXEC, "kernel",
                         "a section with both SHF_WRITE and SHF_EXECINSTR"),
    # simplify_symbols()
    "symbol-common": Check("simplify_symbols", errno.ENOEXEC, "kernel", "a SHN_COMMON symbol (-fcommon build)"),
    "symbol-shndx": Check("simplify_symbols", errno.ENOEXEC, "kernel",
                          "a symbol's st_shndx is past the section table"),
    # kmod (libkmod-elf.c)
    "kmod-elf-new": Check("kmod_elf_new", errno.EINVAL, "kmod", "kmod cannot open the ELF image"),
    # Debian's libkmod keeps its assert()s: kmod_elf_new() on a section index of SHN_UNDEF or past e_shnum
    # (e_shstrndx), or kmod_elf_resolve_crc() on a __crc_ symbol's st_shndx, ends the tool with SIGABRT
    # (libkmod-elf.c elf_get_section_header[_offset]; kmod/elf.py KmodAbort). No errno: the status is the signal.
    "kmod-abort": Check("kmod_elf_new", -signal.SIGABRT, "kmod", "libkmod fails an assertion: the tool aborts"),
    "kmod-modversions": Check("kmod_elf_get_modversions", errno.EINVAL, "kmod",
                              "__versions out of bounds, not a multiple of 64, or (kmod 34) a name without NUL"),
    "kmod-symbols": Check("kmod_elf_get_symbols", errno.EINVAL, "kmod",
                          "(kmod 34) __ksymtab_strings, read for lack of __crc_ symbols, does not end with NUL"),
}


class Failure(NamedTuple):
    """One failed check."""

    code: str  # a key of CHECKS
    errno: int  # what the call returns for this module (can differ from CHECKS: kmod_elf_new, sig_enforce)
    message: str  # what the kernel prints (printk text, no trailing newline); "" where it prints nothing
    detail: str  # what is wrong, with the module's own numbers
    fatal: bool = True  # False: reported but the load goes on (ENOPKG signature without sig_enforce)

    @property
    def check(self) -> str:
        return CHECKS[self.code].function

    @property
    def source(self) -> str:
        return CHECKS[self.code].source

    @property
    def errno_name(self) -> str:
        if self.errno < 0:  # the tool is killed by a signal (kmod-abort): its name, as a shell reports it
            return signal.Signals(-self.errno).name
        return errno.errorcode.get(self.errno, str(self.errno))


@dataclass(frozen=True, slots=True)
class Target:
    """The kernel (and kmod) a module is checked against; None means "what the module claims"."""

    machine: int | None = None  # e_machine elf_check_arch() accepts
    elfclass: int | None = None  # 32 or 64: the kernel reads the header as its own Elf_Ehdr
    little_endian: bool | None = None  # the kernel reads fields in its own byte order
    struct_module_size: int | None = None  # sizeof(struct module); None: not checked
    ppc64_elfv2: bool | None = None  # CONFIG_PPC64_ELF_ABI_V2; None: either ABI level (0-2) passes
    sig_enforce: bool = False  # module.sig_enforce / CONFIG_MODULE_SIG_FORCE
    strict_module_rwx: bool = True  # CONFIG_STRICT_MODULE_RWX (on in Debian's kernels)
    kmod: str = DEFAULT_KMOD.id  # kmod release for the kmod checks: a key of KMOD_PROFILES


@dataclass(frozen=True, slots=True)
class Validation:
    """The checks' verdict on one module image."""

    path: str
    image_size: int  # decompressed length, signature included
    elf_size: int  # info->len the ELF checks saw: the image after module_sig_check() cut the signature off
    failures: tuple[Failure, ...] = field(default=())

    @property
    def valid(self) -> bool:
        """No check fails fatally (kernel and kmod alike)."""
        return not any(f.fatal for f in self.failures)

    @property
    def kernel_refuses(self) -> bool:
        return any(f.fatal and f.source == "kernel" for f in self.failures)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(f.code for f in self.failures)


def validate_file(path: str | os.PathLike[str], target: Target = Target(),
                  max_size: int = DEFAULT_MAX_SIZE) -> Validation:
    """Decompress ``path`` as kmod would and validate it; ModuleReadError when the file cannot be read."""
    opened = read_module_bytes(path, max_size)
    return validate_bytes(opened.data, os.fspath(path), target)


def validate_bytes(data: bytes, path: str = "<bytes>", target: Target = Target()) -> Validation:
    """Every check on one decompressed module image.

    Never raises for malformed input, except ModuleReadError for a table larger than kmodcompat
    reads (``elf.image.MAX_TABLE_ENTRIES``): kmod's verdict on it would be a guess.
    """
    failures: list[Failure] = []
    elf_len = _module_sig_check(data, target, failures)
    if elf_len is not None:  # None: the signature check ended the load
        failures += _KernelImage(data if elf_len == len(data) else data[:elf_len], target).check()
    failures += _kmod_checks(data, path, target)
    return Validation(path, len(data), len(data) if elf_len is None else elf_len, tuple(failures))


# -- module_sig_check() ------------------------------------------------------------------------

def _module_sig_check(data: bytes, target: Target, failures: list[Failure]) -> int | None:
    """kernel/module/signing.c module_sig_check() and mod_verify_sig(), kernel/module_signature.c
    mod_check_sig(). Returns info->len as the ELF checks then see it, None when the load ends here.

    -ENODATA (unsigned), -ENOPKG and -ENOKEY only fail the load when signatures
    are enforced ("%s: loading of %s is rejected", -EKEYREJECTED); any other
    error always does. -ENOKEY needs the kernel's keyring and is never
    reported. (A load that skips the signature, modprobe --force with
    MODULE_INIT_IGNORE_*, would run the ELF checks on the whole file.)
    """
    size = len(data)
    marker = signature.MARKER
    if size <= len(marker) or not data.endswith(marker):
        if target.sig_enforce:
            # info->name is not known yet at this point of load_module(): printk shows "(null)".
            failures.append(Failure("sig-unsigned", errno.EKEYREJECTED,
                                    "(null): loading of unsigned module is rejected", "no signature marker"))
            return None
        return size
    modlen = size - len(marker)
    ms_size = 12  # sizeof(struct module_signature)
    if modlen <= ms_size:  # mod_verify_sig(): "if (modlen <= sizeof(ms)) return -EBADMSG;"
        failures.append(Failure("sig-too-short", errno.EBADMSG, "",
                                f"{modlen} byte(s) before the marker, struct module_signature needs 12"))
        return None
    algo, hash_, id_type, signer_len, key_id_len, pad0, pad1, pad2 = data[modlen - 12:modlen - 4]
    sig_len = int.from_bytes(data[modlen - 4:modlen], "big")
    if sig_len >= modlen - ms_size:  # mod_check_sig(): be32_to_cpu(ms->sig_len) >= file_len - sizeof(*ms)
        failures.append(Failure("sig-len-overflow", errno.EBADMSG, "",
                                f"sig_len {sig_len} >= {modlen - ms_size} bytes in front of the signature info"))
        return None
    if id_type != signature.PKEY_ID_PKCS7:
        fatal = target.sig_enforce
        failures.append(Failure(
            "sig-not-pkcs7", errno.EKEYREJECTED if fatal else errno.ENOPKG,
            "module: not signed with expected PKCS#7 message"
            + ("\n(null): loading of module with unsupported crypto is rejected" if fatal else ""),
            f"id_type {id_type} ({signature.ID_TYPES[id_type] if id_type < 3 else 'unknown'})"
            + ("" if fatal else ": the kernel taints and loads it unless signatures are enforced"), fatal))
        return None if fatal else modlen  # module_sig_check() already took the marker off info->len
    if algo or hash_ or signer_len or key_id_len or pad0 or pad1 or pad2:
        failures.append(Failure("sig-nonzero-params", errno.EBADMSG,
                                "module: PKCS#7 signature info has unexpected non-zero params",
                                f"algo {algo}, hash {hash_}, signer_len {signer_len}, key_id_len {key_id_len}, "
                                f"pad {pad0} {pad1} {pad2}"))
        return None
    elf_len = modlen - ms_size - sig_len
    sig = signature.parse(data)
    if sig_len == 0 or sig is None or sig.pkcs7_error is not None:
        # pkcs7_parse_message() fails (-EBADMSG) on bytes that are not a SignedData message.
        why = "sig_len is 0" if sig_len == 0 else (sig.pkcs7_error if sig is not None else "unreadable trailer")
        failures.append(Failure("sig-pkcs7-malformed", errno.EBADMSG, "", str(why)))
        return None
    return elf_len


# -- elf_validity_cache_copy() and simplify_symbols() -----------------------------------------

class _KernelImage:
    """The image as load_module() reads it: native structs of the target kernel, bounded reads."""

    def __init__(self, data: bytes, target: Target):
        self.data = data
        self.target = target
        ident_class = data[4] if len(data) > 4 else 0
        ident_data = data[5] if len(data) > 5 else 0
        # The kernel never looks at e_ident's class or byte order: it reads its own layout. By
        # default that is the layout the module claims (64-bit little-endian when it claims none).
        self.elfclass = target.elfclass or (32 if ident_class == 1 else 64)
        self.little = target.little_endian if target.little_endian is not None else ident_data != 2
        # What load_info caches as the checks pass (each step relies on the ones before it):
        self.name: str | None = None  # info->name, once .modinfo gave one
        self.shoff = self.shentsize = self.shnum = self.shstrndx = 0  # elf_validity_ehdr
        self.sections: list[tuple[int, ...]] = []  # info->sechdrs, as Elf_Shdr tuples
        self.names: list[str | None] = []  # secstrings + sh_name of each section
        self.mod_index = self.sym_index = self.str_index = 0  # info->index.mod, .sym, .str
        self.strtab: StringTable | None = None  # info->strtab

    def check(self) -> list[Failure]:
        """elf_validity_cache_copy() and module_enforce_rwx_sections(), whose first failure ends the
        load, then simplify_symbols()."""
        for step in (self._ehdr, self._sechdrs, self._secstrings, self._index_info, self._index_mod,
                     self._index_sym, self._index_str, self._index_versions, self._strtab, self._rwx):
            failure = step()
            if failure is not None:
                return [failure]
        return self._simplify_symbols()

    def _fail(self, code: str, message: str, detail: str) -> Failure:
        return Failure(code, CHECKS[code].errno, message, detail)

    @property
    def _who(self) -> str:
        return self.name if self.name is not None else _NO_NAME

    # elf_validity_ehdr()
    def _ehdr(self) -> Failure | None:
        data, size = self.data, len(self.data)
        ehsize = EHDR_SIZE[self.elfclass]
        if size < ehsize:
            return self._fail("ehdr-len", f"Invalid ELF header len {size}",
                              f"{size} bytes, Elf{self.elfclass}_Ehdr needs {ehsize}")
        if data[:4] != ELFMAG:
            return self._fail("ehdr-magic", "Invalid ELF header magic: != \x7fELF", f"magic {data[:4].hex(' ')}")
        (e_type, e_machine, _version, _entry, _phoff, e_shoff, e_flags, _ehsize, _phentsize, _phnum,
         e_shentsize, e_shnum, e_shstrndx) = struct_for(EHDR[self.elfclass], self.little).unpack_from(data, 16)
        self.shoff, self.shentsize, self.shnum, self.shstrndx = e_shoff, e_shentsize, e_shnum, e_shstrndx
        if e_type != ET_REL:
            return self._fail("ehdr-type", f"Invalid ELF header type: {e_type} != {ET_REL}",
                              f"e_type {e_type}: modules are ET_REL (1)")
        machine = self.target.machine if self.target.machine is not None else e_machine
        if e_machine != machine:  # elf_check_arch(): the arch's own e_machine
            return self._fail("ehdr-arch", f"Invalid architecture in ELF header: {e_machine}",
                              f"e_machine {e_machine}, the kernel runs {machine}")
        if machine == EM_PPC64:
            # arch/powerpc/kernel/module_64.c module_elf_check_arch(): e_flags & 3 is the ELF ABI level.
            abi = e_flags & 3
            want = {None: abi <= 2, True: abi == 2, False: abi < 2}[self.target.ppc64_elfv2]
            if not want:
                return self._fail("ehdr-module-arch", f"Invalid module architecture in ELF header: {e_machine}",
                                  f"ELF ABI level {abi} (e_flags & 3)")
        return None

    # elf_validity_cache_sechdrs()
    def _sechdrs(self) -> Failure | None:
        data, size = self.data, len(self.data)
        shdr_size = SHDR_SIZE[self.elfclass]
        if self.shentsize != shdr_size:
            return self._fail("sechdrs-entsize", "Invalid ELF section header size",
                              f"e_shentsize {self.shentsize}, Elf{self.elfclass}_Shdr is {shdr_size}")
        if self.shoff >= size or self.shnum * shdr_size > size - self.shoff:
            return self._fail("sechdrs-overflow", "Invalid ELF section header overflow",
                              f"{self.shnum} headers at offset {self.shoff}, file is {size} bytes")
        # e_shnum 0 passes, and sechdrs[0] is still read: past the file the kernel reads whatever
        # memory follows the image, zeros here.
        span = max(self.shnum, 1) * shdr_size
        raw = data[self.shoff:self.shoff + span].ljust(span, b"\0")
        self.sections = list(struct_for(SHDR[self.elfclass], self.little).iter_unpack(raw))
        _name, sh_type, _flags, sh_addr, _offset, sh_size = self.sections[0][:6]
        if sh_type != SHT_NULL or sh_size != 0 or sh_addr != 0:
            signed = sh_type - (1 << 32) if sh_type >= 1 << 31 else sh_type  # printed with %d
            return self._fail("sechdrs-section0",
                              f"ELF Spec violation: section 0 type({signed})!=SH_NULL or non-zero len or addr",
                              f"section 0: type {sh_type}, size {sh_size}, addr {sh_addr:#x}")
        self.sections = self.sections[:self.shnum]
        for i in range(1, self.shnum):
            sh_type, sh_offset, sh_size = self.sections[i][1], self.sections[i][4], self.sections[i][5]
            if sh_type in (SHT_NULL, SHT_NOBITS):
                continue
            # validate_section_offset(): secend = sh_offset + sh_size, overflow or past info->len
            if sh_offset + sh_size > size:
                return self._fail("sechdrs-bounds", f"Invalid ELF section in module (section {i} type {sh_type})",
                                  f"section {i}: offset {sh_offset} + size {sh_size} > file size {size}")
        return None

    # elf_validity_cache_secstrings()
    def _secstrings(self) -> Failure | None:
        ndx, shnum = self.shstrndx, self.shnum
        if ndx == SHN_UNDEF or ndx >= shnum:
            return self._fail("secstrings-index", f"Invalid ELF section name index: {ndx} || e_shstrndx ({ndx}) "
                              f">= e_shnum ({shnum})", f"e_shstrndx {ndx}, e_shnum {shnum}")
        _name, sh_type, _flags, _addr, sh_offset, sh_size = self.sections[ndx][:6]
        if sh_type != SHT_STRTAB:
            return self._fail("secstrings-type", f"Invalid ELF section name table type: {sh_type}",
                              f"section {ndx} has type {sh_type}")
        if sh_size == 0:
            return self._fail("secstrings-empty", "empty section name table", f"section {ndx} has size 0")
        if self.data[sh_offset + sh_size - 1] != 0:
            return self._fail("secstrings-unterminated",
                              "ELF Spec violation: section name table isn't null terminated",
                              f"last byte of section {ndx} is {self.data[sh_offset + sh_size - 1]:#04x}")
        for i, sec in enumerate(self.sections):
            if sec[1] == SHT_NULL:  # "SHT_NULL means sh_name has an undefined value"
                continue
            if sec[0] >= sh_size:
                return self._fail("secstrings-name-bounds",
                                  f"Invalid ELF section name in module (section {i} type {sec[1]})",
                                  f"sh_name {sec[0]} >= section name table size {sh_size}")
        names = StringTable(self.data, sh_offset, sh_offset + sh_size)
        # A SHT_NULL section's sh_name is never checked; past the table it can match nothing here.
        self.names = [names.text(sec[0]) for sec in self.sections]
        return None

    def _find_any(self, name: str) -> list[int]:
        """Indexes (>= 1) of every section called ``name``, flags ignored (find_any_unique_sec)."""
        return [i for i in range(1, self.shnum) if self.names[i] == name]

    def _find_sec(self, name: str) -> int:
        """find_sec(): the first SHF_ALLOC section called ``name``, 0 if none."""
        for i in range(1, self.shnum):
            if self.sections[i][2] & SHF_ALLOC and self.names[i] == name:
                return i
        return 0

    def _section_bytes(self, index: int) -> bytes:
        """A section's bytes; clipped at the end of the image (only NOBITS sections can reach past it)."""
        sec = self.sections[index]
        return self.data[sec[4]:sec[4] + sec[5]]

    # elf_validity_cache_index_info()
    def _index_info(self) -> Failure | None:
        found = self._find_any(".modinfo")
        if len(found) > 1:
            return self._fail("index-info-duplicate", "Only one .modinfo section must exist.",
                              f"{len(found)} .modinfo sections: {', '.join(map(str, found))}")
        if found:
            sec = self.sections[found[0]]
            self.name = _get_modinfo(self.data, sec[4], sec[4] + sec[5], b"name")
        return None

    # elf_validity_cache_index_mod()
    def _index_mod(self) -> Failure | None:
        found = self._find_any(".gnu.linkonce.this_module")
        if len(found) != 1:
            return self._fail("index-mod-count", f"module {self._who}: Exactly one .gnu.linkonce.this_module "
                              "section must exist.", f"{len(found)} .gnu.linkonce.this_module sections")
        idx = found[0]
        _name, sh_type, sh_flags, _addr, _offset, sh_size = self.sections[idx][:6]
        if sh_type == SHT_NOBITS:
            return self._fail("index-mod-nobits", f"module {self._who}: .gnu.linkonce.this_module section must "
                              "have a size set", f"section {idx} is SHT_NOBITS")
        if not sh_flags & SHF_ALLOC:
            return self._fail("index-mod-noalloc", f"module {self._who}: .gnu.linkonce.this_module must occupy "
                              "memory during process execution", f"section {idx} flags {sh_flags:#x}")
        want = self.target.struct_module_size
        if want is not None and sh_size != want:
            return self._fail("index-mod-size", f"module {self._who}: .gnu.linkonce.this_module section size must "
                              "match the kernel's built struct module size at run time",
                              f"section size {sh_size}, sizeof(struct module) {want}")
        self.mod_index = idx
        return None

    # elf_validity_cache_index_sym()
    def _index_sym(self) -> Failure | None:
        found = [i for i in range(1, self.shnum) if self.sections[i][1] == SHT_SYMTAB]
        if len(found) != 1:
            return self._fail("index-sym-count", f"{self._who}: module has no symbols (stripped?)",
                              f"{len(found)} SHT_SYMTAB sections")
        self.sym_index = found[0]
        return None

    # elf_validity_cache_index_str()
    def _index_str(self) -> Failure | None:
        link, shnum = self.sections[self.sym_index][6], self.shnum
        if link == SHN_UNDEF or link >= shnum:
            return self._fail("index-str-link", f"Invalid ELF sh_link!=SHN_UNDEF({link}) or (sh_link({link}) >= "
                              f"hdr->e_shnum({shnum})", f"symbol table (section {self.sym_index}) sh_link {link}")
        if self.sections[link][1] != SHT_STRTAB:
            return self._fail("index-str-type", f"Invalid ELF symbol string table type: {self.sections[link][1]}",
                              f"section {link} (the symbol table's sh_link)")
        self.str_index = link
        return None

    # elf_validity_cache_index_versions() (6.14+)
    def _index_versions(self) -> Failure | None:
        crcs, names = self._find_sec("__version_ext_crcs"), self._find_sec("__version_ext_names")
        if bool(crcs) != bool(names):
            have = "__version_ext_crcs" if crcs else "__version_ext_names"
            return self._fail("index-versions-presence", "extended version crc+name presence does not match",
                              f"only {have} (with SHF_ALLOC)")
        if crcs:
            count = self.sections[crcs][5] // 4
            # The walk takes `count` strings with strnlen(name, remaining): the k-th exists iff the
            # section holds at least k NULs. Bytes past the image (NOBITS) the kernel would read
            # from whatever follows; here they are missing.
            start = self.sections[names][4]
            end = min(start + self.sections[names][5], len(self.data))
            nuls = self.data.count(b"\0", start, end) if start < end else 0  # in place: no copy
            if nuls < count:
                clipped = end - start < self.sections[names][5]
                return self._fail("index-versions-names", "more extended version crcs than names",
                                  f"{count} CRCs, {nuls} NUL-terminated names"
                                  + (" (the names section reaches past the file)" if clipped else ""))
        return None

    # elf_validity_cache_strtab()
    def _strtab(self) -> Failure | None:
        _n, _t, _f, _a, str_off, str_size = self.sections[self.str_index][:6]
        if str_size == 0:
            return self._fail("strtab-empty", "empty symbol string table", f"section {self.str_index} has size 0")
        if self.data[str_off] != 0:
            return self._fail("strtab-leading-nul", "symbol string table missing leading NUL",
                              f"first byte of section {self.str_index} is {self.data[str_off]:#04x}")
        if self.data[str_off + str_size - 1] != 0:
            return self._fail("strtab-unterminated", "symbol string table isn't NUL terminated",
                              f"last byte of section {self.str_index} is {self.data[str_off + str_size - 1]:#04x}")
        st_names = self._symbol_column("I", 0)  # every symbol's st_name, in one C pass
        if st_names and max(st_names) >= str_size:
            i = next(i for i, st_name in enumerate(st_names) if st_name >= str_size)
            return self._fail("strtab-name-bounds", "symbol name out of bounds in string table",
                              f"symbol {i}: st_name {st_names[i]} >= string table size {str_size}")
        self.strtab = StringTable(self.data, str_off, str_off + str_size)
        return None

    # kernel/module/strict_rwx.c module_enforce_rwx_sections(), from layout_and_allocate()
    def _rwx(self) -> Failure | None:
        if not self.target.strict_module_rwx:
            return None
        shf_wx = SHF_WRITE | SHF_EXECINSTR
        for i, sec in enumerate(self.sections):
            if sec[2] & shf_wx == shf_wx:
                name = self.names[i] if self.names[i] is not None else ""
                return self._fail("rwx-section", f"{self._mod_name()}: section {name} (index {i}) has invalid "
                                  "WRITE|EXEC flags", f"section {i} flags {sec[2]:#x}")
        return None

    def _symbol_column(self, typecode: str, offset: int) -> array:
        """One field of each of the symbol table's entries (sh_size / sizeof(Elf_Sym) of them), as an array:
        a table can hold millions of entries (a zero region), a list of them would cost 8 bytes more each."""
        entsize = SYM[self.elfclass].size
        _n, _t, _f, _a, sym_off, sym_size = self.sections[self.sym_index][:6]
        table = memoryview(self.data)[sym_off:sym_off + sym_size]  # clipped at the image (NOBITS)
        return column_array(table[:len(table) - len(table) % entsize], typecode, offset, entsize, self.little)

    # simplify_symbols(): reached after every check above passed
    def _simplify_symbols(self) -> list[Failure]:
        shnum = self.shnum
        shndxs = self._symbol_column("H", SYM[self.elfclass].shndx)
        # UND resolution needs the running kernel; ABS and livepatch symbols are fine: only SHN_COMMON and
        # indexes past the table fail. The values are looked at once each (a set of at most 65,536), the
        # symbols only when one fails.
        bad = {v for v in set(shndxs[1:]) if (v == SHN_COMMON or v >= shnum) and v not in (SHN_UNDEF, SHN_ABS, SHN_LIVEPATCH)}
        common: list[str] = []
        bad_index: list[tuple[str, int]] = []
        if bad:
            st_names = self._symbol_column("I", 0)
            for i in range(1, len(shndxs)):  # "for (i = 1; ...": the null symbol is skipped
                shndx = shndxs[i]
                if shndx not in bad:
                    continue
                if shndx == SHN_COMMON:
                    name = self._symbol_name(st_names[i])
                    if not name.startswith("__gnu_lto"):  # LTO's common markers are ignored
                        common.append(name)
                else:
                    bad_index.append((self._symbol_name(st_names[i]), shndx))
        mod_name = self._mod_name()
        out = []
        if common:
            out.append(self._fail("symbol-common", f"{mod_name}: please compile with -fno-common",
                                  f"{len(common)} SHN_COMMON symbol(s): {', '.join(common[:5])}"))
        if bad_index:
            name, shndx = bad_index[0]
            out.append(self._fail("symbol-shndx", f"{mod_name}: Symbol {name} has an invalid section index "
                                  f"{shndx} (max {shnum - 1})", f"{len(bad_index)} symbol(s) with st_shndx >= "
                                  f"e_shnum {shnum}"))
        return out

    def _symbol_name(self, st_name: int) -> str:
        """info->strtab + st_name (elf_validity_cache_strtab() checked it is inside the table)."""
        return (self.strtab.text(st_name) if self.strtab is not None else None) or ""

    def _mod_name(self) -> str:
        """mod->name: struct module's name[] in .gnu.linkonce.this_module (offset 24 / 12, F§1.9)."""
        word = self.elfclass // 8
        raw = self._section_bytes(self.mod_index)[3 * word:3 * word + 64 - word]
        return text(raw.split(b"\0", 1)[0])


def _get_modinfo(data: bytes, start: int, end: int, tag: bytes) -> str | None:
    """get_modinfo() on .modinfo at ``data[start:end]``: the value of the first ``tag=`` string, None when
    there is none. The strings are NUL-separated, so that is the first ``tag=`` at the start or after a NUL:
    found in place, without splitting a section that may span megabytes."""
    prefix = tag + b"="
    if data.startswith(prefix, start, end):
        at = start
    else:
        at = data.find(b"\0" + prefix, start, end)
        if at < 0:
            return None
        at += 1
    value = at + len(prefix)
    nul = data.find(b"\0", value, end)
    return text(data[value:nul if nul >= 0 else end])


# -- kmod ---------------------------------------------------------------------------------------

def _kmod_checks(data: bytes, path: str, target: Target) -> list[Failure]:
    """kmod_elf_new() and the libkmod-elf.c readers that refuse malformed tables (EINVAL) or abort on them."""
    kmod = KMOD_PROFILES[target.kmod]
    try:
        rec = parse_module_bytes(data, path)
    except ModuleReadError as e:
        if e.code == "too-many-entries":  # kmodcompat's limit, not kmod's: no kmod verdict can be given
            raise
        abort = open_abort(kmod, e)
        if abort is not None:
            return [Failure("kmod-abort", -signal.SIGABRT, abort.assertion, e.reason)]
        return [Failure("kmod-elf-new", e.errno, "", e.reason)]
    out = []
    try:
        get_modversions(kmod, rec)
    except KmodError as e:
        if e.errno != kmod.missing_section_errno:
            vers = rec.versions
            sec = rec.section("__versions")
            if sec is not None and sec.offset + sec.size > rec.image_size:
                why = "__versions runs past the end of the file"
            elif vers is not None and not vers.well_formed:
                why = f"__versions size {vers.size} is not a multiple of 64"
            else:
                bad = sum(1 for m in vers.entries if not m.terminated) if vers is not None else 0
                why = f"{bad} __versions name(s) without NUL in their field (kmod {kmod.version} refuses them)"
            out.append(Failure("kmod-modversions", e.errno, "", why))
    try:
        get_symbols(kmod, rec)
    except KmodAbort as e:  # kmod_elf_resolve_crc(): a __crc_ symbol's section index past the table
        out.append(Failure("kmod-abort", -signal.SIGABRT, e.assertion,
                           "a __crc_ symbol's st_shndx is not a section"))
    except KmodError as e:
        if e.errno != kmod.missing_section_errno:
            out.append(Failure("kmod-symbols", e.errno, "",
                               f"__ksymtab_strings does not end with NUL (kmod {kmod.version} refuses it)"))
    return out
