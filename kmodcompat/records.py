"""Parsed module records: plain, immutable, picklable.

Everything downstream (consumer models, the tree, the graph, reports) works
from these records and never from a live ELF object, so a record can be
cached, sent between processes and compared for equality.

Names read from ELF string tables are decoded as UTF-8 with
``surrogateescape``: any byte sequence round-trips exactly when encoded back
the same way, which is how the CLI prints them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from itertools import chain, repeat
from operator import attrgetter
from sys import intern
from typing import Any, NamedTuple, TypeVar, cast

from .elf.layout import SHF_ALLOC, STB_WEAK

#: Bytes of a ``struct modversion_info``: unsigned long crc + char name[64 - sizeof(long)].
MODVERSION_ENTRY_SIZE = 64


#: File names of modules, plain and compressed (each kmod release reads a subset: kmod/profile.py).
MODULE_SUFFIXES = (".ko", ".ko.gz", ".ko.xz", ".ko.zst")
#: glibc's PATH_MAX: the size of kmod's path and name buffers (char buf[PATH_MAX]).
PATH_MAX = 4096


def path_to_modname(path: str) -> str:
    """libkmod's ``path_to_modname()`` (libkmod-util.c): GNU basename(), then ``modname_normalize()``:
    up to the first '.', every '-' as '_', at most PATH_MAX - 1 characters. "" for an empty basename,
    where kmod returns NULL."""
    return path.rsplit("/", 1)[-1].split(".", 1)[0][:PATH_MAX - 1].replace("-", "_")


def text(raw: bytes) -> str:
    """Decode an ELF string so that it round-trips byte for byte."""
    return raw.decode("utf-8", "surrogateescape")


def names_text(raw_names: list[bytes]) -> list[str]:
    """:func:`text` of each name (none may hold a NUL), interned, in one decode.

    UTF-8 never decodes bytes across an ASCII NUL together, so decoding the names
    NUL-joined and splitting there is decoding each. Interned, a name is the same
    object wherever it occurs (an import's ``.symtab`` name and its ``__versions``
    name, the same section in every module), so a batch of records pickles it once.
    """
    if not raw_names:
        return []
    return list(map(intern, text(b"\0".join(raw_names)).split("\0")))


def raw(s: str) -> bytes:
    """Inverse of :func:`text`."""
    return s.encode("utf-8", "surrogateescape")


class ElfHeader(NamedTuple):
    elfclass: int  # 32 or 64
    little_endian: bool
    type: int  # e_type; ET_REL (1) for modules
    machine: int  # e_machine
    flags: int  # e_flags (ppc64 ABI version in the low 2 bits)
    osabi: int
    shoff: int
    shentsize: int
    shnum: int
    shstrndx: int
    ehsize: int

    @property
    def endian(self) -> str:
        return "little" if self.little_endian else "big"


class Section(NamedTuple):
    index: int  # type: ignore[assignment]  # the ELF spelling; shadows tuple.index, never called on a Section
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int
    addralign: int
    entsize: int

    @property
    def alloc(self) -> bool:
        return bool(self.flags & SHF_ALLOC)


class Import(NamedTuple):
    """An undefined symbol of ``.symtab``, in symbol-table order."""

    name: str
    binding: int  # STB_*
    type: int  # STT_*

    @property
    def weak(self) -> bool:
        return self.binding == STB_WEAK


class CrcSymbol(NamedTuple):
    """A ``__crc_<name>`` symbol, resolved the way kmod_elf_get_symbols does."""

    name: str  # without the __crc_ prefix
    crc: int  # st_value for SHN_ABS/SHN_UNDEF, else the u32 it points to; 2**64-1 if out of range
    binding: int
    shndx: int  # st_shndx: SHN_ABS (before 5.19) or the __kcrctab* section; the RPM generators tell them apart


class Export(NamedTuple):
    """A symbol this module exports (one ``__ksymtab*`` entry)."""

    name: str
    crc: int | None  # None when the module was built without MODVERSIONS
    gpl_only: bool
    namespace: str | None
    section: str  # the __ksymtab* section holding the entry
    kind: str = "unknown"  # "func", "object" or "notype": the exported symbol's STT_* in .symtab


class Modversion(NamedTuple):
    """One import version: a CRC and the symbol name it versions."""

    crc: int
    name: str
    terminated: bool = True  # False: no NUL inside the fixed name field (kmod 34 rejects)


def all_terminated(entries: Sequence[Modversion]) -> bool:
    """Every name of ``entries`` ended with its NUL."""
    return all(map(_TERMINATED, entries))


_TERMINATED = attrgetter("terminated")


class Finding(NamedTuple):
    """Something malformed or noteworthy, named by a stable code."""

    code: str
    message: str
    section: str | None = None


_D = TypeVar("_D")
#: Per dataclass: (position of a field holding NamedTuple rows, the rows' class).
_ROW_FIELDS: dict[type, tuple[tuple[int, Any], ...]] = {}  # Any: a NamedTuple class (mypy has no type for one)


def _pickled_flat(**row_types: type) -> Callable[[type[_D]], type[_D]]:
    """Pickle a frozen dataclass as its field values, the NamedTuple rows of the named fields flattened.

    A tree's records hold over a million rows (sections, imports, versions). Pickled
    as NamedTuples, every row costs a Python-level call on each side (``__getnewargs__``
    in the worker, the generated ``__new__`` in the parent). Each field's rows go as
    one flat tuple of their values instead, which the pickle module handles in C
    without a memo entry per row, and are rebuilt by C-level iteration: bookworm
    amd64's records pickle in a quarter of the time, unpickle in a little over half,
    and take 45% less space. (A ``__reduce__`` on the row classes returning ``tuple.__new__``
    measured slower than the default: it adds an argument tuple and a memo entry
    per row.) The dataclass itself is rebuilt by its ``__init__``, not by the slotted
    dataclass' default ``__setstate__``, a Python loop over ``fields()``.
    """
    def wrap(cls: type[_D]) -> type[_D]:
        names = tuple(f.name for f in fields(cast(Any, cls)))
        _ROW_FIELDS[cls] = tuple((names.index(name), row_type) for name, row_type in row_types.items())

        def __reduce__(self: _D) -> tuple[Callable[..., _D], tuple[type[_D], list[Any]]]:
            state = list(map(getattr, repeat(self), names))
            for i, _ in _ROW_FIELDS[cls]:
                state[i] = tuple(chain.from_iterable(state[i]))
            return _unpickle_flat, (cls, state)

        setattr(cls, "__reduce__", __reduce__)  # noqa: B010  (mypy refuses assigning a method)
        return cls

    return wrap


def _unpickle_flat(cls: type[_D], state: list[Any]) -> _D:
    new = tuple.__new__  # C-level: skips the NamedTuple's Python __new__
    for i, row_type in _ROW_FIELDS[cls]:
        values = iter(state[i])
        state[i] = tuple(map(new, repeat(row_type), zip(*[values] * len(row_type._fields))))
    return cls(*state)


@_pickled_flat(entries=Modversion)
@dataclass(frozen=True, slots=True)
class BasicVersions:
    """The classic ``__versions`` section of fixed 64-byte entries."""

    section_index: int
    alloc: bool
    size: int
    entry_size: int  # always 64; kept for display
    entries: tuple[Modversion, ...]  # the sh_size // 64 fixed records, as the kernel reads them

    @property
    def well_formed(self) -> bool:
        """kmod reads the table only when its size is a multiple of 64."""
        return self.size % self.entry_size == 0


@_pickled_flat(entries=Modversion)
@dataclass(frozen=True, slots=True)
class ExtVersions:
    """``__version_ext_crcs`` (u32 array) + ``__version_ext_names`` (NUL-terminated names)."""

    crcs_section_index: int | None
    names_section_index: int | None
    crcs_alloc: bool
    names_alloc: bool
    crcs_size: int
    names_size: int
    crc_count: int  # sh_size // 4, what the kernel counts
    name_count: int  # complete (NUL-terminated) names in the names section, empty ones excluded
    entries: tuple[Modversion, ...]  # pairs, as the kernel walks them (stops at the first missing name)


@_pickled_flat(entries=Modversion)
@dataclass(frozen=True, slots=True)
class VarlenVersions:
    """Gary Guo's rejected 2023 variable-length ``__versions`` (u32 next, u32 crc, name)."""

    entries: tuple[Modversion, ...]


@_pickled_flat(entries=Modversion)
@dataclass(frozen=True, slots=True)
class HashedVersions:
    """The ``__versions`` records that hold a hashed name (Sami Tolvanen's June 2024 RFC, never merged).

    Such a record's name field is ``"sha256\\0"`` and the SHA-256 digest of the symbol's name
    (:mod:`kmodcompat.modversions.hashed`). ``BasicVersions.entries`` keeps what every C-string
    reader sees there (the name "sha256"); this holds, for the same records, their position in the
    table, their digest and the name it resolves to: the module's own import whose name hashes to it.
    """

    indices: tuple[int, ...]  # positions in BasicVersions.entries
    digests: tuple[str, ...]  # the 32-byte digests, in hex
    entries: tuple[Modversion, ...]  # (crc, resolved name); name "" when no import of the module hashes to it


@_pickled_flat()
@dataclass(frozen=True, slots=True)
class Signature:
    """The appended module signature (``~Module signature appended~``)."""

    offset: int  # start of the signature data = length of the signed image
    algo: int
    hash: int
    id_type: int
    signer_len: int
    key_id_len: int
    sig_len: int
    id_type_name: str  # "PGP", "X509", "PKCS#7"
    signer: str | None  # PKCS#7: issuer commonName (else its last RDN value); legacy: the signer bytes
    key_id: bytes
    hash_algo: str | None  # OpenSSL's name of the digest (kmod 32+ prints it), dotted OID if unnamed
    digest_oid: str | None  # PKCS#7 digest algorithm; None for legacy trailers
    signature: bytes
    kmod_accepts: bool  # passes kmod_module_signature_info()'s checks, so modinfo shows it
    pkcs7_error: str | None = None  # PKCS#7 present but not parseable


class ModversionsFormat(StrEnum):
    """The MODVERSIONS formats, by the ids every output and option uses: the one list of them.

    A member is its id (``ModversionsFormat.BASIC == "basic"``), so JSON, options and tables carry plain strings.
    """

    NONE = "none"  # built without MODVERSIONS: no version table
    BASIC = "basic"  # __versions only (every kernel; BASIC_MODVERSIONS)
    BASIC_EXT = "basic+ext"  # __versions for the names that fit, and the 6.14 extended tables for all
    EXT_ONLY = "ext-only"  # the extended tables only (EXTENDED_MODVERSIONS without BASIC_MODVERSIONS)
    VARLEN = "varlen"  # Gary Guo's 2023 variable-length __versions (rejected)
    HASHED = "hashed"  # Sami Tolvanen's 2024 RFC: long names hashed in __versions (never merged)
    MALFORMED = "malformed"  # tables no format writes (a module's own layout only: never simulated)


@_pickled_flat(sections=Section, imports=Import, crc_symbols=CrcSymbol, exports=Export, findings=Finding)
@dataclass(frozen=True, slots=True)
class ModuleRecord:
    """Everything kmodcompat knows about one module file."""

    path: str
    file_size: int
    compression: str | None
    compression_notes: tuple[str, ...]  # e.g. "zstd-no-content-size", "zstd-multi-frame"
    image_size: int  # decompressed length, signature included
    elf: ElfHeader
    sections: tuple[Section, ...]
    modinfo: tuple[tuple[str, str | None], ...]  # value None: the string had no '='
    imports: tuple[Import, ...]
    crc_symbols: tuple[CrcSymbol, ...]
    ksymtab_strings: tuple[str, ...] | None  # None: no __ksymtab_strings section
    ksymtab_strings_terminated: bool
    exports: tuple[Export, ...]
    versions: BasicVersions | None
    ext_versions: ExtVersions | None
    varlen_versions: VarlenVersions | None
    signature: Signature | None
    findings: tuple[Finding, ...] = field(default=())
    hashed_versions: HashedVersions | None = None

    # Convenience views, derived (never stored twice).
    def section(self, name: str) -> Section | None:
        """First section with this name, as kmod looks sections up (flags ignored)."""
        for s in self.sections:
            if s.name == name and s.index:
                return s
        return None

    def modinfo_values(self, key: str) -> list[str]:
        return [v if v is not None else "" for k, v in self.modinfo if k == key]

    @property
    def name(self) -> str:
        """Module name as kmod derives it from the path (basename up to the first '.', '-' → '_')."""
        return path_to_modname(self.path)

    @property
    def modversions_format(self) -> ModversionsFormat:
        """none | basic | basic+ext | ext-only | varlen | hashed | malformed."""
        ext = self.ext_versions
        has_ext = ext is not None and ext.crcs_section_index is not None and ext.names_section_index is not None
        if self.varlen_versions is not None:
            return ModversionsFormat.VARLEN
        if ext is not None and not has_ext:
            return ModversionsFormat.MALFORMED
        if self.versions is not None and not self.versions.well_formed:
            return ModversionsFormat.MALFORMED
        if self.versions is not None and has_ext:
            return ModversionsFormat.BASIC_EXT
        if self.hashed_versions is not None:
            return ModversionsFormat.HASHED
        if self.versions is not None:
            return ModversionsFormat.BASIC
        if has_ext:
            return ModversionsFormat.EXT_ONLY
        return ModversionsFormat.NONE
