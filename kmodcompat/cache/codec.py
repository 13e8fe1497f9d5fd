"""Records as data: a versioned, schema-checked encoding for the cache (JSON arrays, no pickle).

What the cache reads back from disk is only ever *data*: JSON (decoded by the
standard library's C decoder, which builds lists, strings, numbers and
nothing else), then checked against the record schema below, column by
column, before a single record is built. Anything else (a wrong type, an int
out of range, a string that is not what the parser can produce, a row of the
wrong width, trailing fields) raises :class:`DecodeError`, and the cache treats
the row as missing. Pickle, which the cache used before, runs code named by
its input (issue 15: a crafted row ran a payload on every report).

Layout of an encoded :class:`~kmodcompat.records.ModuleRecord`: one JSON array,
``[CODEC, "r", field, ...]`` in the dataclass' field order without ``path``
(the path is the caller's: a record is stored by content and served under
whatever name the file has now). A field holding NamedTuple rows is one flat
array of the rows' values (row after row), as records.py pickles them between
processes: no per-row object to decode, and columns checked by C-level
slicing instead of a Python loop per value. ``bytes`` are hex strings.
A :class:`~kmodcompat.errors.ModuleReadError` is ``[CODEC, "e", reason, code,
errno, detail, compression]``. A ``validate`` verdict (:class:`~kmodcompat.validate.Validation`)
is ``[CODEC, "v", image_size, elf_size, code, errno, message, detail, fatal, ...]``, one
failure after another, each code one of :data:`kmodcompat.validate.CHECKS`.

Speed (bookworm amd64, 4,023 records; ``bench/cache_codec.py``): see that
script; decoding with every check costs about what unpickling did.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import chain, repeat
from typing import Any, cast

from ..errors import ModuleReadError
from ..files.opener import _MAGICS
from ..records import (BasicVersions, CrcSymbol, ElfHeader, Export, ExtVersions, Finding, Import, ModuleRecord,
                       HashedVersions, MODVERSION_ENTRY_SIZE, Modversion, Section, Signature,
                       VarlenVersions)

#: Bump on any change of the layout below; rows of another codec version never decode.
CODEC = 3  # 2: CrcSymbol.shndx; 3: the hashed __versions records (records.HashedVersions) as a 20th field

_U64 = 1 << 64
_COMPRESSIONS = frozenset(name for _, name in _MAGICS)
_new = tuple.__new__  # builds NamedTuple rows without their Python-level __new__


class DecodeError(ValueError):
    """An encoded row that is not a record this codec wrote."""


# --- column kinds --------------------------------------------------------------------------------------------
# A record's values are checked by kind, all columns of a kind at once (a few C-level passes per
# record, not a Python call per value): :class:`_Check` gathers them while the record is taken apart.
INT, OPT_INT, BOOL, TEXT, OPT_TEXT, NAME, OPT_NAME = range(7)


class _Check:
    """The values of one record by kind; :meth:`verify` raises DecodeError unless every one is valid."""

    __slots__ = ("lists",)

    def __init__(self) -> None:
        self.lists: tuple[list, ...] = ([], [], [], [], [], [], [])

    def add(self, kind: int, values: Sequence[Any]) -> None:
        self.lists[kind].extend(values)

    def verify(self) -> None:
        ints, opt_ints, bools, texts, opt_texts, names, opt_names = self.lists
        ints += [v for v in opt_ints if v is not None]
        # ``name`` strings, as read from an ELF string table, never hold a NUL.
        names += [v for v in opt_names if v is not None]
        texts += [v for v in opt_texts if v is not None]
        if ints and (set(map(type, ints)) != {int} or min(ints) < 0 or max(ints) >= _U64):
            raise DecodeError("an integer field: bad value")
        if bools and set(map(type, bools)) != {bool}:
            raise DecodeError("a flag field: bad value")
        if names and set(map(type, names)) != {str}:
            raise DecodeError("a name field: bad value")
        if texts and set(map(type, texts)) != {str}:
            raise DecodeError("a text field: bad value")
        joined = "".join(names)
        if "\0" in joined:
            raise DecodeError("a name field: holds a NUL")
        try:  # strings as records.text() makes them: anything that encodes back with surrogateescape
            joined.encode("utf-8", "surrogateescape")
            "".join(texts).encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a surrogate that surrogateescape never makes (e.g. U+D800)
            raise DecodeError("a text field: not a decoded string") from None


#: Per NamedTuple row type: the kind of each column, in field order.
_ROWS: dict[type, tuple[int, ...]] = {
    Section: (INT, NAME, INT, INT, INT, INT, INT, INT, INT, INT, INT),
    Import: (NAME, INT, INT),
    CrcSymbol: (NAME, INT, INT, INT),
    Export: (NAME, OPT_INT, BOOL, OPT_NAME, NAME, NAME),
    Modversion: (INT, NAME, BOOL),
    Finding: (TEXT, TEXT, OPT_NAME),
}
for _row, _kinds in _ROWS.items():
    assert len(cast(Any, _row)._fields) == len(_kinds), _row


def _flat(rows: Sequence[tuple]) -> list:
    return list(chain.from_iterable(rows))


def _rows(check: _Check, value: Any, row: Any) -> tuple:
    """The flat list ``value`` as a tuple of ``row``s, its columns given to ``check``."""
    if type(value) is not list:
        raise DecodeError(f"{row.__name__} rows: not a list")
    width = len(row._fields)
    if len(value) % width:
        raise DecodeError(f"{row.__name__} rows: {len(value)} values")
    if not value:
        return ()
    lists = check.lists
    for j, kind in enumerate(_ROWS[row]):
        lists[kind].extend(value[j::width])
    values = iter(value)
    return tuple(map(_new, repeat(row), zip(*[values] * width)))


def _fields(check: _Check, value: Any, kinds: Sequence[int | None], what: str) -> list:
    """``value``, a list of ``len(kinds)`` scalars, each given to ``check`` (a kind of None: the caller's)."""
    if type(value) is not list or len(value) != len(kinds):
        raise DecodeError(f"{what}: not {len(kinds)} fields")
    lists = check.lists
    for v, kind in zip(value, kinds):
        if kind is not None:
            lists[kind].append(v)
    return value


def _list(check: _Check, value: Any, kind: int, what: str) -> tuple:
    if type(value) is not list:
        raise DecodeError(f"{what}: not a list")
    check.lists[kind].extend(value)
    return tuple(value)


def _compression(value: Any) -> bool:
    return value is None or (type(value) is str and value in _COMPRESSIONS)


def _hex(value: Any, what: str) -> bytes:
    if type(value) is not str:
        raise DecodeError(f"{what}: not hex")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise DecodeError(f"{what}: not hex") from None


# --- encoding ----------------------------------------------------------------------------------------------

def _enc_versions(v: BasicVersions | ExtVersions | VarlenVersions | None) -> list | None:
    if v is None:
        return None
    if isinstance(v, BasicVersions):
        return [v.section_index, v.alloc, v.size, v.entry_size, _flat(v.entries)]
    if isinstance(v, ExtVersions):
        return [v.crcs_section_index, v.names_section_index, v.crcs_alloc, v.names_alloc, v.crcs_size,
                v.names_size, v.crc_count, v.name_count, _flat(v.entries)]
    return [_flat(v.entries)]


def _enc_hashed(h: HashedVersions | None) -> list | None:
    return None if h is None else [list(h.indices), list(h.digests), _flat(h.entries)]


def _enc_signature(s: Signature | None) -> list | None:
    if s is None:
        return None
    return [s.offset, s.algo, s.hash, s.id_type, s.signer_len, s.key_id_len, s.sig_len, s.id_type_name, s.signer,
            s.key_id.hex(), s.hash_algo, s.digest_oid, s.signature.hex(), s.kmod_accepts, s.pkcs7_error]


def _enc_error(e: ModuleReadError) -> list:
    return [CODEC, "e", e.reason, e.code, e.errno, e.detail, e.compression]


def encode(value: ModuleRecord | ModuleReadError) -> bytes:
    """The cache's bytes for one parse result (ASCII JSON: lone surrogates as ``\\udcXX`` escapes)."""
    if isinstance(value, ModuleReadError):
        doc: list = _enc_error(value)
    else:
        r = value
        doc = [CODEC, "r", r.file_size, r.compression, list(r.compression_notes), r.image_size, list(r.elf),
               _flat(r.sections), _flat(r.modinfo), _flat(r.imports), _flat(r.crc_symbols),
               None if r.ksymtab_strings is None else list(r.ksymtab_strings), r.ksymtab_strings_terminated,
               _flat(r.exports), _enc_versions(r.versions), _enc_versions(r.ext_versions),
               _enc_versions(r.varlen_versions), _enc_signature(r.signature), _flat(r.findings),
               _enc_hashed(r.hashed_versions)]
    return json.dumps(doc, separators=(",", ":"), check_circular=False).encode("ascii")


# --- decoding ----------------------------------------------------------------------------------------------

_ELF_KINDS = (INT, BOOL, INT, INT, INT, INT, INT, INT, INT, INT, INT)
_BASIC_KINDS = (INT, BOOL, INT, INT, None)
_EXT_KINDS = (OPT_INT, OPT_INT, BOOL, BOOL, INT, INT, INT, INT, None)
_SIG_KINDS = (INT, INT, INT, INT, INT, INT, INT, TEXT, OPT_TEXT, None, OPT_TEXT, OPT_TEXT, None, BOOL, OPT_TEXT)
assert len(_ELF_KINDS) == len(ElfHeader._fields) and len(_SIG_KINDS) == len(Signature.__dataclass_fields__)


def _dec_basic(check: _Check, value: Any) -> BasicVersions | None:
    if value is None:
        return None
    f = _fields(check, value, _BASIC_KINDS, "versions")
    if f[3] != MODVERSION_ENTRY_SIZE:
        raise DecodeError("versions.entry_size: not 64")
    return BasicVersions(f[0], f[1], f[2], f[3], _rows(check, f[4], Modversion))


def _dec_ext(check: _Check, value: Any) -> ExtVersions | None:
    if value is None:
        return None
    f = _fields(check, value, _EXT_KINDS, "ext_versions")
    return ExtVersions(*f[:8], _rows(check, f[8], Modversion))  # type: ignore[call-arg]  # 8 + 1 of 9 fields


def _dec_varlen(check: _Check, value: Any) -> VarlenVersions | None:
    if value is None:
        return None
    return VarlenVersions(_rows(check, _fields(check, value, (None,), "varlen_versions")[0], Modversion))


def _dec_hashed(check: _Check, value: Any) -> HashedVersions | None:
    if value is None:
        return None
    indices, digests, entries = _fields(check, value, (None, None, None), "hashed_versions")
    indices = _list(check, indices, INT, "hashed_versions.indices")
    raw_digests = [_hex(d, "hashed_versions.digests") for d in _list(check, digests, TEXT, "hashed_versions.digests")]
    if any(len(d) != 32 for d in raw_digests):
        raise DecodeError("hashed_versions.digests: not SHA-256 digests")
    digests = tuple(d.hex() for d in raw_digests)
    rows = _rows(check, entries, Modversion)
    if not len(indices) == len(digests) == len(rows):
        raise DecodeError("hashed_versions: lengths differ")
    return HashedVersions(indices, digests, rows)


def _dec_signature(check: _Check, value: Any) -> Signature | None:
    if value is None:
        return None
    f = _fields(check, value, _SIG_KINDS, "signature")
    f[9], f[12] = _hex(f[9], "signature.key_id"), _hex(f[12], "signature.signature")
    return Signature(*f)


def _dec_modinfo(check: _Check, value: Any) -> tuple[tuple[str, str | None], ...]:
    if type(value) is not list or len(value) % 2:
        raise DecodeError("modinfo: not pairs")
    check.add(NAME, value[0::2])
    check.add(OPT_NAME, value[1::2])
    it = iter(value)
    return tuple(zip(it, it))


def _load(blob: bytes) -> list:
    try:
        doc = json.loads(blob)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise DecodeError("not JSON") from None
    if type(doc) is not list or len(doc) < 2 or type(doc[0]) is not int or doc[0] != CODEC:
        raise DecodeError("not a record of this codec version")
    return doc


def _dec_error(check: _Check, doc: list, path: str) -> ModuleReadError:
    _, _, reason, code, errno, detail, compression = _fields(check, doc, (None, None, TEXT, NAME, INT, OPT_TEXT,
                                                                           None), "error")
    check.verify()
    if errno >= 1 << 16 or not _compression(compression):
        raise DecodeError("error: bad value")
    return ModuleReadError(path, reason, code, errno, detail, compression)


def decode(blob: bytes, path: str) -> ModuleRecord | ModuleReadError:
    """The parse result ``blob`` holds, for the file now at ``path``; raises DecodeError for anything else."""
    doc = _load(blob)
    check = _Check()
    if doc[1] == "e" and len(doc) == 7:
        return _dec_error(check, doc, path)
    if doc[1] != "r" or len(doc) != 20:
        raise DecodeError("not a record")
    (_, _, file_size, compression, notes, image_size, elf, sections, modinfo, imports, crc_symbols, strings,
     strings_terminated, exports, versions, ext_versions, varlen_versions, signature, findings, hashed) = doc
    check.add(INT, (file_size, image_size))
    check.add(BOOL, (strings_terminated,))
    if not _compression(compression):
        raise DecodeError("compression: unknown")
    elf = _fields(check, elf, _ELF_KINDS, "elf")
    if elf[0] not in (32, 64):
        raise DecodeError("elf.elfclass: not 32 or 64")
    rec = ModuleRecord(
        path=path,
        file_size=file_size,
        compression=compression,
        compression_notes=_list(check, notes, NAME, "compression_notes"),
        image_size=image_size,
        elf=ElfHeader(*elf),
        sections=_rows(check, sections, Section),
        modinfo=_dec_modinfo(check, modinfo),
        imports=_rows(check, imports, Import),
        crc_symbols=_rows(check, crc_symbols, CrcSymbol),
        ksymtab_strings=None if strings is None else _list(check, strings, NAME, "ksymtab_strings"),
        ksymtab_strings_terminated=strings_terminated,
        exports=_rows(check, exports, Export),
        versions=_dec_basic(check, versions),
        ext_versions=_dec_ext(check, ext_versions),
        varlen_versions=_dec_varlen(check, varlen_versions),
        signature=_dec_signature(check, signature),
        findings=_rows(check, findings, Finding),
        hashed_versions=_dec_hashed(check, hashed),
    )
    check.verify()
    return rec


# --- validate's verdicts -----------------------------------------------------------------------------------

_FAILURE_WIDTH = 5  # validate.Failure: code, errno, message, detail, fatal
#: errno values a verdict holds: an errno, or minus the signal that kills kmod (kmod-abort: -SIGABRT).
_ERRNO_RANGE = range(-64, 1 << 16)


def encode_verdict(value) -> bytes:
    """The cache's bytes for ``validate``'s result on one file (a Validation, or the ModuleReadError that
    stopped it); the path is the caller's, as for records."""
    if isinstance(value, ModuleReadError):
        doc = _enc_error(value)
    else:
        doc = [CODEC, "v", value.image_size, value.elf_size, *_flat(value.failures)]
    return json.dumps(doc, separators=(",", ":"), check_circular=False).encode("ascii")


def decode_verdict(blob: bytes, path: str):
    """The verdict ``blob`` holds, for the file now at ``path``; raises DecodeError for anything else."""
    from ..validate import CHECKS, Failure, Validation

    doc = _load(blob)
    check = _Check()
    if doc[1] == "e" and len(doc) == 7:
        return _dec_error(check, doc, path)
    if doc[1] != "v" or len(doc) < 4 or (len(doc) - 4) % _FAILURE_WIDTH:
        raise DecodeError("not a verdict")
    check.add(INT, doc[2:4])
    rest = doc[4:]
    codes, errnos, fatal = rest[0::5], rest[1::5], rest[4::5]
    check.add(TEXT, rest[2::5])
    check.add(TEXT, rest[3::5])
    check.add(BOOL, fatal)
    check.verify()
    if not all(type(c) is str and c in CHECKS for c in codes):
        raise DecodeError("verdict: a failure code no check has")
    if not all(type(e) is int and e in _ERRNO_RANGE for e in errnos):
        raise DecodeError("verdict: bad errno")
    failures = tuple(map(_new, repeat(Failure), zip(*[iter(rest)] * _FAILURE_WIDTH)))
    return Validation(path, doc[2], doc[3], failures)
