"""libkmod's reading of a module, parameterised by kmod release.

Each function here mirrors one libkmod entry point on a parsed record; the
release-specific files (``kmod30.py``, ``kmod34.py``) only set the knobs in
:class:`Kmod`. Sources are kmod-project/kmod tags v30 and v34.2, files
libkmod/libkmod-elf.c, libkmod/libkmod-module.c, tools/modinfo.c and
tools/modprobe.c; ../shared/FORMATS.md §3 has the comparison table.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from itertools import compress, repeat
from operator import attrgetter, not_
from typing import NamedTuple

from ..errors import ModuleReadError
from ..parse.module import parse_module
from ..records import (MODVERSION_ENTRY_SIZE, STB_WEAK, ModuleRecord, Modversion, all_terminated, path_to_modname,
                       raw)
from .base import FALSE_MISMATCH, OK, PARTIAL, UNREADABLE, ConsumerView, Reading, dedot

#: Symbols depmod adds itself when it loads -E/-F (depmod_add_fake_syms), so never "unknown".
DEPMOD_FAKE_SYMBOLS = frozenset({"__this_module", "_GLOBAL_OFFSET_TABLE_", "TOC."})

ENOENT_TEXT = os.strerror(errno.ENOENT)  # "No such file or directory"
ENODATA_TEXT = os.strerror(errno.ENODATA)  # "No data available"
EINVAL_TEXT = os.strerror(errno.EINVAL)  # "Invalid argument"


class KmodError(Exception):
    """A libkmod call failing with an errno; ``str()`` is strerror()."""

    def __init__(self, err: int):
        self.errno = err
        super().__init__(os.strerror(err))


@dataclass(frozen=True)
class Kmod:
    """One kmod release's behaviour, as far as module files are concerned."""

    id: str  # CLI identifier: "kmod30", "kmod34"
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

    # -- opening a file (libkmod-file.c) ----------------------------------------

    def open(self, path: str) -> ModuleRecord | ModuleReadError:
        """Parse ``path`` as this kmod would open it; an error carries kmod's errno."""
        try:
            opened: ModuleRecord | ModuleReadError = parse_module(path)
        except ModuleReadError as e:
            opened = e
        return self.as_opened(opened)

    def as_opened(self, opened: ModuleRecord | ModuleReadError) -> ModuleRecord | ModuleReadError:
        """Apply this build's limits to a file parsed once for several consumers."""
        if self.gzip_errno is not None and opened.compression == "gzip":
            return ModuleReadError(opened.path, f"kmod {self.version} (Debian build) cannot read gzip",
                                   "unsupported-compression", self.gzip_errno, compression="gzip")
        if self.zstd_single_sized_frame and isinstance(opened, ModuleRecord):
            if "zstd-no-content-size" in opened.compression_notes:
                return ModuleReadError(opened.path, "zstd frame has no content size", "decompress-failed",
                                       errno.EINVAL, "zstd:Failed to determine decompression size", "zstd")
            if "zstd-multi-frame" in opened.compression_notes:
                return ModuleReadError(opened.path, "several zstd frames", "decompress-failed",
                                       errno.EINVAL, "zstd:Destination buffer is too small", "zstd")
        return opened

    def _decoder_log(self, err: ModuleReadError, tool: str) -> bytes:
        """v33+ logs the decoder's complaint (libkmod-file-{xz,zstd}.c) before the failure line."""
        if not (self.decoder_errors_logged and err.code == "decompress-failed"):
            return b""
        if err.compression == "xz":
            what = {"truncated": "Unexpected end of input", "format": "File format not recognized",
                    "options": "Unsupported compression options"}.get(err.detail or "", "File is corrupt")
            func = "xz_uncompress_belch"
        elif err.compression == "zstd":
            what = (err.detail or "").removeprefix("zstd:") if (err.detail or "").startswith("zstd:") \
                else {"truncated": "Src size is incorrect", "trailing": "Src size is incorrect"}.get(
                    err.detail or "", "Data corruption detected")
            func = "kmod_file_load_zstd"
        else:
            return b""
        if tool == "modinfo":
            return _line(f"libkmod: ERROR: {func}: {err.compression}: {what}")
        return _line(f"{tool}: ERROR: {err.compression}: {what}")

    # -- libkmod-elf.c ---------------------------------------------------------

    def modversions(self, rec: ModuleRecord) -> list[Modversion]:
        """kmod_elf_get_modversions(): ``__versions`` only, leading '.' stripped.

        Raises KmodError as libkmod returns it: missing section (ENOENT/ENODATA),
        size not a multiple of 64, or (v34) a name without NUL (EINVAL).
        """
        return list(self._modversions(Reading(rec)))

    def _modversions(self, r: Reading) -> tuple[Modversion, ...]:
        """:meth:`modversions` (the table's own tuple when no name has a dot)."""
        rec = r.rec
        if self.reads_extended and r.section("__version_ext_crcs") and r.section("__version_ext_names"):
            return self._extended_modversions(r)
        sec = r.section("__versions")
        if sec is None:
            raise KmodError(self.missing_section_errno)
        if sec.offset + sec.size > rec.image_size:
            raise KmodError(errno.EINVAL)
        if sec.size == 0:
            return ()
        if sec.size % MODVERSION_ENTRY_SIZE:
            raise KmodError(errno.EINVAL)
        entries = rec.versions.entries if rec.versions is not None else ()
        if self.names_must_be_terminated and not r.of("terminated", entries, all_terminated):
            raise KmodError(errno.EINVAL)
        return r.of("dedot", entries, dedot)

    def exported_symbols(self, rec: ModuleRecord) -> list[KmodSymbol]:
        """kmod_elf_get_symbols(): what depmod and ``--show-exports`` take as exports.

        ``__crc_*`` symbols first (name, resolved CRC, binding, in .symtab
        order); only when there is none (no MODVERSIONS, or nothing exported),
        every non-empty string of ``__ksymtab_strings`` with CRC 0. Since
        kernel 5.4 that fallback also yields namespace names (FORMATS.md §3.5).
        """
        if rec.crc_symbols:
            return [KmodSymbol(c.name, c.crc, c.binding == STB_WEAK) for c in rec.crc_symbols]
        if rec.ksymtab_strings is None:
            raise KmodError(self.missing_section_errno)  # the fallback's section lookup fails
        if self.names_must_be_terminated and not rec.ksymtab_strings_terminated:
            raise KmodError(errno.EINVAL)  # v34 (e5ef157): __ksymtab_strings must end with NUL
        return [KmodSymbol(name, 0, False) for name in rec.ksymtab_strings]

    def _extended_modversions(self, r: Reading) -> tuple[Modversion, ...]:
        """PR #270 ffe6c67 "libkmod: Support EXTENDED_MODVERSIONS": crc size must be a
        multiple of 4, then crc_size/4 names are walked; running out of names or an
        unterminated one is EINVAL; one leading '.' is stripped (FORMATS.md §3.3, §3.12)."""
        ext = r.rec.ext_versions
        if ext is None or ext.crcs_size % 4 or len(ext.entries) < ext.crc_count:
            raise KmodError(errno.EINVAL)
        return r.of("dedot", ext.entries, dedot)

    def dependency_symbols(self, rec: ModuleRecord) -> list[KmodSymbol]:
        """kmod_elf_get_dependency_symbols(): depmod's imports with the CRC it compares.

        Each UND symbol takes the CRC of the first ``__versions`` entry of the
        same name (exact match, no de-dotting), else 0: there is no zero guard
        later, so an import versioned only in the extended tables "disagrees"
        under ``depmod -e -E``. Entries no import matched (``module_layout``)
        are appended. A ``__versions`` whose size is not a multiple of 64 counts
        as absent. v34 skips unterminated names while matching and fails the
        whole call (EINVAL) if one is left unmatched.
        """
        imports = rec.imports
        names = list(map(_name, imports))
        crcs, rest = _match_imports(self._dependency_entries(Reading(rec)), names)
        weak = map(STB_WEAK.__eq__, map(_binding, imports))  # Import.weak, without a call per import
        return list(map(_new_symbol, zip(names, map(crcs.get, names, repeat(0)), weak))) + \
            [KmodSymbol(e.name, e.crc, False) for e in rest]

    def _dependency_entries(self, r: Reading) -> tuple[Modversion, ...]:
        """The table kmod_elf_get_dependency_symbols() matches the imports against.

        Raises KmodError where the whole call fails.
        """
        entries: tuple[Modversion, ...] = ()
        if self.reads_extended:
            # PR #270 4e79a46 "Centralize modversions parsing": ENODATA means no versions,
            # any other error is returned and depmod drops the module's dependencies.
            # Analysis (the PR branch is not in the stored sources): the entries come
            # back de-dotted while .symtab names keep their dot, so on ppc64 ELFv1 the
            # strcmp() match below fails and dotted imports compare CRC 0.
            try:
                entries = self._modversions(r)
            except KmodError as e:
                if e.errno != self.missing_section_errno:
                    raise
        elif r.rec.versions is not None and r.rec.versions.well_formed:
            entries = r.rec.versions.entries
        # An unterminated name is skipped while matching, so it is always left over: EINVAL.
        if self.names_must_be_terminated and not r.of("terminated", entries, all_terminated):
            raise KmodError(errno.EINVAL)
        return entries

    # -- tools/modprobe.c ------------------------------------------------------

    def dump_modversions(self, path: str, opened: ModuleRecord | ModuleReadError | None = None) -> "ToolResult":
        """``modprobe --dump-modversions PATH``: stdout, stderr and exit status.

        ``opened`` is the file already parsed (or its read error), to share one
        parse between several consumers.
        """
        return self._modprobe_listing(path, opened, "modversions", self.modversions)

    def show_exports(self, path: str, opened: ModuleRecord | ModuleReadError | None = None) -> "ToolResult":
        """``modprobe --show-exports PATH``: the exports libkmod reports, ``0x%08x\tname``."""
        return self._modprobe_listing(path, opened, "symbols", self.exported_symbols)

    def _modprobe_listing(self, path: str, opened, what: str, get) -> "ToolResult":
        """tools/modprobe.c show_modversions() / show_exports(): same lookup, same error lines."""
        if not os.path.exists(path):
            return ToolResult(b"", _line(f"modprobe: FATAL: Module {path} not found."), 1)
        opened = self.open(path) if opened is None else self.as_opened(opened)
        fail = f"modprobe: FATAL: could not get {what} of {path}: "
        if isinstance(opened, ModuleReadError):
            log = self._decoder_log(opened, "modprobe")
            return ToolResult(b"", log + _line(fail + os.strerror(opened.errno)), 1)
        try:
            items = get(opened)
        except KmodError as e:
            return ToolResult(b"", _line(f"{fail}{e}"), 1)
        return ToolResult(b"".join(b"0x%08x\t%s\n" % (x.crc, raw(x.name)) for x in items), b"", 0)

    def view(self, rec: ModuleRecord, expected: Mapping[str, int] | None = None,
             truth: Mapping[str, int] | None = None, path: str | None = None,
             judge_unknown: bool | None = None) -> ConsumerView:
        """What this kmod shows of the module: ``--dump-modversions`` and ``depmod -e -E``.

        ``expected``: exporter CRCs by symbol (None: the module's own).
        ``truth``: the CRCs the module was really built against (default its
        own), which decides whether a "disagrees" warning is false.
        ``judge_unknown``: report symbols missing from ``expected`` as unknown,
        which only a complete tree can tell (default: when ``expected`` is given).
        """
        return self.read(Reading(rec, expected, truth, path, judge_unknown))

    def read(self, r: Reading) -> ConsumerView:
        """:meth:`view` of a :class:`Reading` (once per model: the weak-modules gates ask for kmod 34's)."""
        return r.of("kmod", self, lambda _: self._read(r))

    def _read(self, r: Reading) -> ConsumerView:
        rec, path = r.rec, r.path
        messages: list[str] = []
        try:
            visible = self._modversions(r)
        except KmodError as e:
            visible = ()
            messages.append(f"modprobe: FATAL: could not get modversions of {path}: {e}")
        # What is lost and what depmod says depend on the module and the table alone: a
        # table equal to one read before (another kmod, another format) is not read again.
        lost = r.per_table("unseen", visible, lambda r: _unseen(r.order, visible))
        try:
            entries = self._dependency_entries(r)
        except KmodError:
            false = ()  # PR #270: depmod drops the module's dependencies without a word
        else:
            warnings, false = r.per_table("depmod", entries, lambda r: _depmod_warnings(
                r, *_match_imports(entries, map(_name, r.rec.imports))))
            messages += warnings
        if false:
            verdict = FALSE_MISMATCH
        elif not visible and r.own:
            verdict = UNREADABLE
        elif lost:
            verdict = PARTIAL
        else:
            verdict = OK
        misread = ()
        if rec.varlen_versions is not None:
            misread = rec.varlen_versions.entries  # kmod rejects the table: every entry is lost to it
        return ConsumerView(self.id, path, verdict, visible, lost, misread, (), tuple(messages), false)

    # -- libkmod-module.c kmod_module_get_info() -------------------------------

    def info(self, rec: ModuleRecord) -> list[tuple[str, str]]:
        """.modinfo pairs followed by the signature pseudo-keys, as modinfo iterates them.

        Raises KmodError when the module has no ``.modinfo`` section.
        """
        if rec.section(".modinfo") is None:
            raise KmodError(self.missing_section_errno)
        items = [(k, v if v is not None else "") for k, v in rec.modinfo]
        sig = rec.signature
        if sig is None or not sig.kmod_accepts:
            return items
        hash_algo = sig.hash_algo
        if sig.digest_oid is not None and self.pkcs7_digest_names is not None:
            hash_algo = self.pkcs7_digest_names.get(sig.digest_oid)
            if hash_algo is None:
                return items  # kmod 30: fill_pkcs7() fails for a digest outside its table
        items.append(("sig_id", sig.id_type_name))
        if sig.signer is not None:
            items.append(("signer", sig.signer))
        items.append(("sig_key", hex_bytes(sig.key_id)))
        if hash_algo is not None:
            items.append(("sig_hashalgo", hash_algo))
        items.append(("signature", hex_bytes(sig.signature)))
        return items

    # -- tools/modinfo.c ---------------------------------------------------------

    def is_module_filename(self, arg: str) -> bool:
        """tools/modinfo.c is_module_filename(): a regular file with a suffix this build reads."""
        return os.path.isfile(arg) and arg.endswith(self.module_suffixes)

    def modinfo_arg(self, arg: str, field: str | None = None, separator: str = "\n",
                    dirname: str | None = None) -> "ToolResult":
        """``modinfo`` for one command-line argument: a module file, else a module name.

        A name is looked up in ``dirname/modules.dep`` (``/lib/modules/$(uname -r)``
        unless given), the first source kmod_module_new_from_lookup() consults.
        """
        if self.is_module_filename(arg):
            return self.modinfo_file(arg, field, separator)
        path = lookup_module(arg, dirname or os.path.join("/lib/modules", os.uname().release))
        if path is None:
            return ToolResult(b"", _line(f"modinfo: ERROR: Module {arg} not found."), 1)
        return self.modinfo_file(path, field, separator)

    def modinfo_file(self, path: str, field: str | None = None, separator: str = "\n",
                     opened: ModuleRecord | ModuleReadError | None = None) -> "ToolResult":
        """``modinfo [-F field] [-0] PATH`` for an argument that is a module file name.

        ``filename:`` is printed before the file is opened, so it precedes any error.
        """
        filename = path if path.startswith("/") else os.path.join(os.getcwd(), path)  # path_make_absolute_cwd
        if field == "filename":
            return ToolResult(raw(f"{filename}{separator}"), b"", 0)
        head = raw(f"{'filename:':<16}{filename}{separator}") if field is None else b""
        opened = self.open(path) if opened is None else self.as_opened(opened)
        modname = path_to_modname(path)
        fail = f"modinfo: ERROR: could not get modinfo from '{modname}': "
        if isinstance(opened, ModuleReadError):
            log = self._decoder_log(opened, "modinfo")
            return ToolResult(head, log + _line(fail + os.strerror(opened.errno)), 1)
        try:
            out, err = self.modinfo(opened, field, separator)
        except KmodError as e:
            return ToolResult(head, _line(f"{fail}{e}"), 1)
        return ToolResult(head + out, err, 0)

    def modinfo(self, rec: ModuleRecord, field: str | None = None, separator: str = "\n") -> tuple[bytes, bytes]:
        """(stdout, stderr) of ``modinfo [-F field] [-0]`` after the ``filename:`` line."""
        sep = separator
        items = self.info(rec)
        if field == "parm":
            lines, errors = _params(items, listing=False)
            return raw("".join(f"{line}{sep}" for line in lines)), errors
        out: list[str] = []
        params_seen = False
        for key, value in items:
            if field is not None:
                if key == field:
                    out.append(f"{value}{sep}")
                continue
            if key in ("parm", "parmtype"):
                params_seen = True
                continue
            if sep == "\0":
                out.append(f"{key}={value}{sep}")
            else:
                # printf("%s:%-*s%s", key, 15 - keylen, "", value): glibc reads a negative
                # width as '-' plus its magnitude, so kmod 30 pads long keys by len-15;
                # kmod 34 clamps the width at 0.
                width = 15 - len(key)
                if width < 0:
                    width = -width if self.negative_pad_width else 0
                out.append(f"{key}:{'':<{width}}{value}{sep}")
        errors = b""
        if field is None and params_seen:
            lines, errors = _params(items, listing=True)
            out.extend(f"{'parm:':<16}{line}{sep}" for line in lines)
        return raw("".join(out)), errors


def _match_imports(entries: tuple[Modversion, ...],
                   import_names: Iterable[str]) -> tuple[dict[str, int], list[Modversion]]:
    """Each import name's CRC, from the first entry of that name; the entries no import took, in order."""
    names = list(map(_name, entries))
    crcs = dict(zip(names, map(_crc, entries)))
    if len(crcs) == len(names):
        # Every name once (modpost writes each symbol once): an entry is left over
        # exactly when no import names it.
        imported = set(import_names)
        return crcs, list(compress(entries, map(not_, map(imported.__contains__, names))))
    first = dict(zip(reversed(names), range(len(names) - 1, -1, -1)))  # the lowest index of each name wins
    visited = set(map(first.get, import_names))
    visited.discard(None)  # imports no entry versions
    rest = [e for i, e in enumerate(entries) if i not in visited]
    return dict(zip(reversed(names), map(_crc, reversed(entries)))), rest


def _unseen(order: tuple[str, ...], visible: tuple[Modversion, ...]) -> tuple[str, ...]:
    seen = set(map(_name, visible))
    return tuple(n for n in order if n not in seen)


def _unknown_symbol(path: str, name: str) -> str:
    return f"depmod: WARNING: {path} needs unknown symbol {name}"


def _depmod_imports(r: Reading) -> tuple[tuple[tuple[str, str, int | None], ...], dict[str, int], tuple[str, ...]]:
    """The non-weak imports depmod looks up, as (.symtab name, name looked up, exporter's CRC or None);
    the known CRCs by .symtab name; the "needs unknown symbol" warnings they draw, in order."""
    exp, path, judge_unknown = r.exp, r.path, r.judge_unknown
    symbols = []
    unknown = []
    for imp in r.rec.imports:
        if imp.binding != STB_WEAK:
            name = imp.name.removeprefix(".")  # depmod_symbol_find() strips one leading dot
            want = exp.get(name)
            symbols.append((imp.name, name, want))
            if want is None and judge_unknown and name not in DEPMOD_FAKE_SYMBOLS:
                unknown.append(_unknown_symbol(path, name))
    return tuple(symbols), {raw_name: want for raw_name, _, want in symbols if want is not None}, tuple(unknown)


def _depmod_warnings(r: Reading, crcs: dict[str, int],
                     rest: list[Modversion]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``depmod -e -E`` on the dependency symbols (:meth:`Kmod.dependency_symbols`): all warnings, the false ones."""
    path, truth, exp, judge_unknown = r.path, r.truth, r.exp, r.judge_unknown
    symbols, wants, unknown = r.shared("depmod-imports", _depmod_imports)
    if wants.items() <= crcs.items():
        # Every import's CRC is its exporter's: the imports draw only the unknown-symbol warnings.
        messages = list(unknown)
        checks = []
    else:
        messages = []
        checks = [(crcs.get(raw_name, 0), name, want) for raw_name, name, want in symbols]
    for e in rest:
        name = e.name.removeprefix(".")
        checks.append((e.crc, name, exp.get(name)))
    false: list[str] = []
    for crc, name, want in checks:
        if want is None:
            if judge_unknown and name not in DEPMOD_FAKE_SYMBOLS:
                messages.append(_unknown_symbol(path, name))
            continue
        if crc != want:
            line = f"depmod: WARNING: {path} disagrees about version of symbol {name}"
            messages.append(line)
            if truth.get(name) == want:
                false.append(line)
    return tuple(messages), tuple(false)


class KmodSymbol(NamedTuple):
    """A symbol as libkmod reports it: name, CRC (0 when unversioned), weak binding."""

    name: str
    crc: int
    weak: bool


_name = attrgetter("name")
_crc = attrgetter("crc")
_binding = attrgetter("binding")
#: KmodSymbol from a (name, crc, weak) tuple without the NamedTuple's Python-level
#: __new__ (as records._unpickle_flat builds rows): a tree's 190k dependency symbols in C.
_new_symbol = partial(tuple.__new__, KmodSymbol)


class ToolResult(NamedTuple):
    stdout: bytes
    stderr: bytes
    status: int


def lookup_module(name: str, dirname: str) -> str | None:
    """Path of module ``name`` per ``dirname/modules.dep`` ('-' and '_' equivalent), or None."""
    want = name.replace("-", "_")
    try:
        with open(os.path.join(dirname, "modules.dep"), "rb") as f:
            for line in f:
                rel = line.split(b":", 1)[0].decode("utf-8", "surrogateescape")
                if path_to_modname(rel) == want:
                    return rel if rel.startswith("/") else os.path.join(dirname, rel)
    except OSError:
        pass
    return None


def _line(s: str) -> bytes:
    return raw(s + "\n")


def hex_bytes(b: bytes) -> str:
    """kmod_module_hex_to_str(): "AA:BB:..", a line break and two tabs after every 20 bytes."""
    parts = []
    n = len(b)
    for i, byte in enumerate(b):
        parts.append(f"{byte:02X}")
        if i < n - 1:
            parts.append(":\n\t\t" if (i + 1) % 20 == 0 else ":")
    return "".join(parts)


def _params(items: list[tuple[str, str]], listing: bool) -> tuple[list[str], bytes]:
    """modinfo's parm/parmtype merge: one line per parameter name, and error lines.

    add_param() prepends a name when it is first seen (as parm or parmtype),
    so parameters come out in reverse order of first appearance; a later
    duplicate overwrites the text in place. A value without ':' is reported
    and skipped (exit status unchanged). A type-only parameter prints
    ``name:type`` in the full listing and ``name: (type)`` with ``-F parm``.
    """
    order: list[str] = []
    desc: dict[str, str | None] = {}
    types: dict[str, str | None] = {}
    errors = []
    for key, value in items:
        if key not in ("parm", "parmtype"):
            continue
        name, colon, rest = value.partition(":")
        if not colon:
            errors.append(_line(f"modinfo: ERROR: Found invalid \"{key}={value}\": missing ':'"))
            continue
        if name not in desc:
            order.append(name)
            desc[name] = None
            types[name] = None
        if key == "parm":
            desc[name] = rest
        else:
            types[name] = rest
    lines = []
    for name in reversed(order):
        d, t = desc[name], types[name]
        if d is None:
            lines.append(f"{name}:{t}" if listing else f"{name}: ({t})")
        elif t is not None:
            lines.append(f"{name}:{d} ({t})")
        else:
            lines.append(f"{name}:{d}")
    return lines, b"".join(errors)
