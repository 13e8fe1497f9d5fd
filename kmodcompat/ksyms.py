"""The RPM dependency lines distributions generate from kernel modules: `kmodcompat ksyms`.

Two families of generators read a kernel module package's modules at rpmbuild time:

* openSUSE/SUSE, rpm-config-SUSE ``scripts/find-provides.ksyms`` and
  ``scripts/find-requires.ksyms`` (run for ``fileattrs/kmp.attr``):
  ``kmod(NAME.ko)`` and ``ksym(FLAVOR:SYMBOL) = CRC`` (CRC in hex, no ``0x``,
  leading zeros stripped); the provides' CRCs come from the kernel's
  ``scripts/mod/ksym-provides`` (openSUSE kernel-source,
  ``patches.rpmify/Add-ksym-provides-tool.patch``), the requires' from
  ``/sbin/modprobe --dump-modversions``.
* RHEL 9, kernel-srpm-macros 1.0-13.el9 (split from redhat-rpm-config; its
  ``/usr/lib/rpm/redhat/find-provides.ksyms`` / ``find-requires.ksyms`` and the
  ``fileattrs/kmod.attr`` provides, the Lua successor of redhat-rpm-config's
  ``kmod.prov``): ``kmod(NAME.ko)``, ``ksym(SYMBOL) = 0xCRC`` and
  ``kernel(SYMBOL) = 0xCRC`` (the provides of modules under
  ``lib/modules/*/kernel``; for the requires, the symbols whose name and CRC the
  kernel's Module.symvers lists). Fedora's current scripts (not run here) read
  ``objdump -t`` alone where these try ``nm`` first; by their text the lines
  agree whenever a module's CRCs are all global absolute ones or all in sections,
  as on every real module.

Each function below is one script's pipeline (sed, awk, sort, join), re-done on
the same input lines, byte for byte and in the same order, under ``LC_ALL=C``
(sort and join compare bytes; the Red Hat scripts export ``LC_ALL=C``
themselves, the SUSE ones set no locale: in another, their sort order may differ). tests/rpm_scripts.py runs the
real scripts (read from their public repositories at pinned commits) as the
oracle of tests/test_ksyms.py.

What the requirement scripts never see: ``--dump-modversions`` prints
``__versions`` only, so the imports a Linux 6.14+ EXTENDED_MODVERSIONS build
keeps only in ``__version_ext_crcs``/``__version_ext_names`` (names of 56+
characters; every import of a BASIC_MODVERSIONS=n build) get no requirement at
all. :func:`suse_requires` and :func:`redhat_requires` run the same pipeline over those imports too
(:func:`kmodcompat.listing.listing`'s extended-only rows, written as
``--dump-modversions`` would print them), and marks the lines that only they
produce (:attr:`Line.added`). The provides lose nothing: every export keeps its
``__crc_`` symbol whatever the name's length.

Not modelled: the scripts' non-module inputs (vmlinux, modules.builtin,
modules-load.d), SUSE's symset table (``/usr/lib/rpm/symset-table`` reads
``/boot/symsets-*.tar.gz``, which no SUSE kernel has shipped in years: with
none, every SUSE requirement is ``ksym()``), RHEL's kABI stablelist warnings
(stderr only), and the package-name tests (``kernel-*`` packages get no
requirements from either script).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from .kmod.elf import KmodError
from .kmod.profile import Kmod
from .kmod.tools import dump_modversions, modinfo
from .listing import listing
from .modversions import VersionTable
from .elf.layout import SHN_ABS, SHT_PROGBITS, STB_GLOBAL, STB_LOCAL
from .records import ModuleRecord, raw

STYLES = ("suse", "redhat")
#: ksym-provides' ``sym.st_shndx >= SHN_LORESERVE``: the reserved indexes print st_value.
SHN_LORESERVE = 0xFF00
_BAD_CRC = (1 << 64) - 1  # parse/ksymtab.py's value for a CRC outside its section


class Line(NamedTuple):
    text: bytes  # without the newline
    added: bool  # only the imports --dump-modversions drops produce it


class Package(NamedTuple):
    """What the scripts read of each module, in the order rpm hands them the files."""

    path: str
    record: ModuleRecord
    vermagic: bytes  # `modinfo -F vermagic` stdout
    dump: bytes  # `modprobe --dump-modversions` stdout
    dropped: bytes  # the extended-only imports, as --dump-modversions lines


def package(kmod: Kmod, rec: ModuleRecord) -> Package:
    """The tool outputs the scripts would read, from kmod ``kmod``'s modinfo and modprobe."""
    try:
        vermagic, _ = modinfo(kmod, rec, "vermagic")
    except KmodError:  # `modinfo -F vermagic` prints its error on stderr and nothing on stdout (no .modinfo)
        vermagic = b""
    dump = dump_modversions(kmod, rec.path, rec).stdout
    rows = listing(rec, "all").rows
    dropped = b"".join(raw(f"0x{r.crc:08x}\t{r.name}\n") for r in rows if r.tables == (VersionTable.EXTENDED,))
    return Package(rec.path, rec, vermagic, dump, dropped)


# -- shell and coreutils pieces --------------------------------------------------------------------

def _lines(out: bytes) -> list[bytes]:
    """A pipe's lines as `while read`/sed/awk see them (a last line without newline counts)."""
    return out.split(b"\n")[:-1] if out.endswith(b"\n") else out.split(b"\n") if out else []


def _sort_unique(lines: Iterable[bytes], key: Callable[[bytes], bytes] | None = None) -> list[bytes]:
    """GNU ``sort -u`` (with ``-k``: unique by the key, the first line of each run kept) in the C locale."""
    if key is None:
        return sorted(set(lines))
    out: dict[bytes, bytes] = {}
    for line in lines:
        out.setdefault(key(line), line)
    return [out[k] for k in sorted(out)]


def _field1_blank(line: bytes) -> bytes:
    """``sort -k1,1`` without ``-t``: the first field, up to the first blank."""
    m = re.match(rb"[ \t]*[^ \t]*", line)
    return m.group(0) if m else b""


def _tab_field(line: bytes, n: int) -> bytes:
    parts = line.split(b"\t")
    return parts[n - 1] if len(parts) >= n else b""


def first_word(vermagic: bytes) -> bytes:
    """``modinfo -F vermagic | sed -e 's: .*::' -e q`` seen through ``set --`` with IFS=newline."""
    first = _lines(vermagic)[:1]
    return first[0].split(b" ", 1)[0] if first else b""


# -- openSUSE: rpm-config-SUSE scripts/find-provides.ksyms, find-requires.ksyms ---------------------

def _suse_modname(path: str) -> bytes:
    """``modname="${f%%.[gx]z}"; modname="${modname%%.zst}"``, then basename and ``tr '-' '_'``."""
    name = raw(path)
    name = re.sub(rb"\.[gx]z$", b"", name)
    name = name.removesuffix(b".zst")
    return name.rstrip(b"/").rsplit(b"/", 1)[-1].replace(b"-", b"_")


def _suse_ksym_tool(flavor: bytes, rec: ModuleRecord) -> list[bytes]:
    """openSUSE's ksym-provides (patches.rpmify/Add-ksym-provides-tool.patch): every ``__crc_`` symbol of
    .symtab, in table order: a reserved st_shndx prints st_value, a SHT_PROGBITS section the u32 at the
    symbol (``ksym(%s:%s) = %lx``); symbols in other sections are skipped."""
    out = []
    for c in rec.crc_symbols:
        if c.shndx < SHN_LORESERVE:
            if c.shndx >= len(rec.sections) or rec.sections[c.shndx].type != SHT_PROGBITS:
                continue
        elif c.shndx != SHN_ABS:
            continue  # parse/ksymtab.py keeps no st_value for SHN_COMMON and the like (no module has one)
        out.append(b"ksym(" + flavor + b":" + raw(c.name) + b") = " + b"%x" % c.crc)
    return out


def _nm_abs(rec: ModuleRecord) -> list[tuple[bytes, bytes]]:
    """``nm | sed -r -ne 's:^0*([0-9a-f]+) A __crc_(.+):...'``: the global absolute __crc_ symbols
    (nm's 'A'), value in hex without leading zeros, name after the prefix (non-empty)."""
    return [(b"%x" % c.crc, raw(c.name)) for c in rec.crc_symbols
            if c.shndx == SHN_ABS and c.binding == STB_GLOBAL and c.name]


def _ksym_provides_era(version: bytes) -> bool:
    """``[ "$major" -gt 4 -o \\( "$major" -eq 4 -a "$sub" -ge 10 \\) ]``: a kernel that has ksym-provides;
    a version test cannot evaluate (not integers) is false, as `[` fails."""
    major = version.split(b".", 1)[0]
    rest = version.split(b".", 1)[1] if b"." in version else version
    sub = rest.split(b".", 1)[0]
    number = re.compile(rb"[ \t]*[-+]?[0-9]+[ \t]*\Z")
    if not number.match(major):
        return False
    if int(major) > 4:
        return True
    return int(major) == 4 and bool(number.match(sub)) and int(sub) >= 10


def suse_provides(pkgs: Sequence[Package], flavor: bytes | None = None) -> list[Line]:
    """find-provides.ksyms over the module files: ``kmod(NAME.ko)`` and the ksym() provides, ``sort -u``.

    The script sets ``version`` and ``flavor`` from the first module with a vermagic and keeps
    them for every later module (they are never reset in its loop); ``flavor`` overrides it."""
    out: list[bytes] = []
    version = derived = b""
    for p in pkgs:
        out.append(b"kmod(" + _suse_modname(p.path) + b")")
        if not derived:
            version = p.vermagic.rstrip(b"\n").split(b" ", 1)[0]  # version=${version%% *}
            derived = version.rsplit(b"-", 1)[-1]  # flavor=${version##*-}
        if not derived:
            continue  # "warning: cannot determine kernel flavor" on stderr
        flv = derived if flavor is None else flavor
        if _ksym_provides_era(version):
            out.extend(_suse_ksym_tool(flv, p.record))
        else:
            out.extend(b"ksym(" + flv + b":" + name + b") = " + value for value, name in _nm_abs(p.record))
    return [Line(t, False) for t in _sort_unique(out)]


def _suse_requires_lines(pkgs: Sequence[Package], dumps: Sequence[bytes], flavor: bytes | None) -> list[bytes]:
    # all_requires: `sed -r -e 's:^0x0*::' -e 's:$:\t'"$1"':'` | sort -t $'\t' -k2 -u
    requires: list[bytes] = []
    for p, dump in zip(pkgs, dumps):
        vermagic = first_word(p.vermagic)
        requires.extend(re.sub(rb"^0x0*", b"", line) + b"\t" + vermagic for line in _lines(dump))
    requires = _sort_unique(requires, key=lambda line: line.split(b"\t", 1)[1] if b"\t" in line else b"")
    # all_provides: nm's global absolute __crc_ symbols, sort -t $'\t' -k2 -u: only their names count
    provided = {name for p in pkgs for _, name in _nm_abs(p.record)}
    # join -t $'\t' -j 2 -v 1: the requirements no module of the package provides, "name\tcrc\tvermagic"
    # (join's field order), then awk '{ print $3 "/" $2 "/" $1 }' | sort -t $'\t' -k 1,1 -u
    keys = []
    for line in requires:
        fields = line.split(b"\t")
        name = fields[1] if len(fields) > 1 else b""
        if name in provided:
            continue
        joined = [name, fields[0], *fields[2:]]
        third = joined[2] if len(joined) > 2 else b""
        keys.append(third + b"/" + joined[1] + b"/" + joined[0])
    keys = _sort_unique(keys, key=lambda line: line.split(b"\t", 1)[0])
    # join -a 2 with the (empty) symset table, sort -u, then the last awk
    out = []
    for line in _sort_unique(keys):
        arr = line.split(b"/")
        flv = flavor if flavor is not None else re.sub(rb"^.*-", b"", arr[0])  # gensub(/.*-/, "", 1, arr[1])
        sym = arr[2] if len(arr) > 2 else b""
        out.append(b"ksym(" + flv + b":" + sym + b") = " + (arr[1] if len(arr) > 1 else b""))
    return out


def suse_requires(pkgs: Sequence[Package], flavor: bytes | None = None) -> list[Line]:
    """find-requires.ksyms over the module files, and the lines the dropped imports add."""
    return _with_additions(lambda dumps: _suse_requires_lines(pkgs, dumps, flavor), pkgs)


# -- Fedora/RHEL: kernel-srpm-macros kmod.attr, find-provides.ksyms, find-requires.ksyms ------------

_BUILTIN_PATH = rb"/?lib/modules/[1-9][^/]*/kernel"


def _kmod_attr(path: str) -> list[bytes]:
    """kmod.attr's ``%__kmod_provides``: ``kmod(M)`` for M = ``string.match(basename, "%g+.ko")`` (Lua's
    %g: a printable character other than space in the C locale; its unescaped ``.``: any character). rpm
    hands the macro the path as ``%1``, which ends at the first blank. Its ``strip_compress_sfx``
    (``gsub(fn, "(.*)(.gz|.bz2|.xz|.zst)?$", "%1")``: a Lua pattern has no alternation) never changes
    a match ending in "ko", so there is no second ``kmod()``."""
    arg = re.split(rb"[ \t\n]", raw(path), maxsplit=1)[0]
    m = re.search(rb"[\x21-\x7e]+.ko", re.sub(rb"(?s).*/", b"", arg), re.DOTALL)
    return [b"kmod(" + m.group(0) + b")"] if m else []


def _rhel_crcs(rec: ModuleRecord, prefix: bytes) -> list[bytes]:
    """find-provides.ksyms' CRCs of one module (kernel-srpm-macros-1.0-13.el9), before its ``sort``.

    First ``nm | awk``: nm lists the defined symbols by name (bytes, LC_ALL=C); the awk prints the
    ``__crc_`` ones of type ``A`` (absolute and global) as ``0x%08x`` and stops at the first of another
    type (``a``, ``R``, ``r``, ...: exit 23). On 23, ``objdump -t | awk`` prints every local and global
    (objdump's ``l``/``g``: not weak, not unique, not undefined) ``__crc_`` symbol in table order, as
    ``0x%08s`` of the 8 hex digits at twice its value in its section's ``readelf -R`` dump, byte-swapped
    in 4-byte groups on a little-endian module: the u32 at the symbol, for the 4-aligned CRCs of every
    module (an unaligned one would mix two words: not modelled); a CRC past its section's end, and an
    absolute one (``readelf -R '*ABS*'`` dumps nothing), prints ``0x`` and 8 spaces."""
    out = []
    stopped = False
    for c in sorted((c for c in rec.crc_symbols if c.name), key=lambda c: raw(c.name)):  # (.+): a name
        if c.shndx != SHN_ABS or c.binding != STB_GLOBAL:
            stopped = True
            break
        out.append(prefix + b"(" + raw(c.name) + b") = " + b"0x%08x" % int(float(c.crc)))  # strtonum: a double
    if not stopped:
        return out
    for c in rec.crc_symbols:
        if c.binding not in (STB_LOCAL, STB_GLOBAL):
            continue
        value = b"0x        " if c.shndx == SHN_ABS or c.crc == _BAD_CRC else b"0x%08x" % c.crc
        out.append(prefix + b"(" + raw(c.name) + b") = " + value)
    return out


def redhat_provides(pkgs: Sequence[Package], buildroot: str = "") -> list[Line]:
    """find-provides.ksyms (``sort -k1,1 -u``) over the modules.

    ``kernel()`` instead of ``ksym()`` for a module whose path matches
    ``^${RPM_BUILD_ROOT}/\\?lib/modules/[1-9][^/]*/kernel`` (the kernel package's own modules)."""
    crcs = []
    root = re.escape(raw(buildroot))
    for p in pkgs:
        builtin = re.match(root + _BUILTIN_PATH, raw(p.path)) is not None
        crcs.extend(_rhel_crcs(p.record, b"kernel" if builtin else b"ksym"))
    return [Line(t, False) for t in _sort_unique(crcs, key=_field1_blank)]


def _redhat_requires_lines(pkgs: Sequence[Package], dumps: Sequence[bytes], symvers: bytes | None) -> list[bytes]:
    # all_requires: awk --non-decimal-data '{printf("%s:0x%08x\n", $2, $1)}' (FS tab), + "\t$1", sort -k1,1 -u
    requires = []
    for p, dump in zip(pkgs, dumps):
        vermagic = first_word(p.vermagic)
        for line in _lines(dump):
            crc = _awk_number(_tab_field(line, 1))
            requires.append(_tab_field(line, 2) + b":" + b"0x%08x" % crc + b"\t" + vermagic)
    requires = _sort_unique(requires, key=_field1_blank)
    # mod_requires joins them with the module's own provides, which the script formats as "(sym) = 0x..."
    # (dep_pfx is unset there): no requirement line ever equals one, so nothing is filtered.
    kernel = first_word(pkgs[0].vermagic) if pkgs else b""
    provided = set()
    for line in _lines(symvers or b""):  # awk '{ print $2 ":" $1 }' (FS tab), + "\t$kernel", sort -k1,1 -u
        provided.add(_field1_blank(_tab_field(line, 2) + b":" + _tab_field(line, 1) + b"\t" + kernel))
    matched = _sort_unique(line for line in requires if _tab_field(line, 1) in provided)
    others = _sort_unique(line for line in requires if _tab_field(line, 1) not in provided)
    out = []
    for prefix, lines in ((b"kernel", matched), (b"ksym", others)):
        for line in lines:  # awk 'BEGIN { FS = "[\t:]" } { print PREFIX "(" $1 ") = " $2 }'
            fields = re.split(rb"[\t:]", line)
            out.append(prefix + b"(" + fields[0] + b") = " + (fields[1] if len(fields) > 1 else b""))
    return out


def _awk_number(field: bytes) -> int:
    """gawk --non-decimal-data's value of a field: 0x hex, leading-0 octal, else decimal (its longest
    numeric prefix, 0 without one); printf %x of it."""
    s = field.strip(b" \t\n")
    m = re.match(rb"[-+]?0[xX]([0-9a-fA-F]+)", s)
    if m:
        return int(m.group(1), 16)
    m = re.match(rb"[-+]?[0-9]+", s)
    return int(m.group(0)) if m else 0


def redhat_requires(pkgs: Sequence[Package], symvers: bytes | None) -> list[Line]:
    """find-requires.ksyms over the module files (``symvers``: the kernel's Module.symvers, as
    ``/usr/src/kernels/$(vermagic of the first module)/Module.symvers``; None when there is none, so
    every requirement is ``ksym()``), and the lines the dropped imports add."""
    return _with_additions(lambda dumps: _redhat_requires_lines(pkgs, dumps, symvers), pkgs)


# -- both -------------------------------------------------------------------------------------------

def _with_additions(run: Callable[[Sequence[bytes]], list[bytes]], pkgs: Sequence[Package]) -> list[Line]:
    """The script's lines over --dump-modversions' output, merged in its order with the lines the
    same pipeline prints once the dropped imports are listed too (marked ``added``)."""
    script = run([p.dump for p in pkgs])
    if not any(p.dropped for p in pkgs):
        return [Line(t, False) for t in script]
    complete = run([p.dump + p.dropped for p in pkgs])
    seen = set(script)
    return [Line(t, t not in seen) for t in complete] + [Line(t, False) for t in script if t not in set(complete)]


#: The module paths each script reads (the others it skips): SUSE find-provides.ksyms' and
#: find-requires.ksyms' ``case`` patterns (``*`` matches ``/`` there), the Red Hat scripts'
#: ``grep -E '/lib/modules/.+\.ko(\.gz|\.bz2|\.xz|\.zst)?$'``. A path with a newline is two
#: lines to ``read`` and grep: none is handled.
_HANDLED = {("suse", True): re.compile(rb".*/lib/modules/.*/.*\.ko(\.[gx]z|\.zst)?"),
            ("suse", False): re.compile(rb".*/lib/modules/.*\.ko(\.[gx]z|\.zst)?"),
            ("redhat", True): re.compile(rb".*/lib/modules/.+\.ko(\.gz|\.bz2|\.xz|\.zst)?"),
            ("redhat", False): re.compile(rb".*/lib/modules/.+\.ko(\.gz|\.bz2|\.xz|\.zst)?")}
#: kmod.attr's ``%__kmod_path``, which rpm matches against the path inside the package (the build root removed).
_KMOD_PATH = re.compile(rb"/lib/modules/.*/(modules\.builtin|.*\.ko|.*\.ko\.gz|.*\.ko\.bz2|.*\.ko\.xz|.*\.ko\.zst)")


def handled(style: str, provides: bool, path: str) -> bool:
    """Whether that script reads the module at ``path`` at all."""
    return _HANDLED[(style, provides)].fullmatch(raw(path)) is not None


def generate(style: str, provides: bool, pkgs: Sequence[Package], *, flavor: bytes | None = None,
             buildroot: str = "", symvers: bytes | None = None) -> list[Line]:
    """One generator's lines: ``style`` "suse" or "redhat", provides or requires, over the modules
    of one package (the paths the script skips contribute nothing, as there)."""
    kmods: list[bytes] = []
    if style == "redhat" and provides:
        root = raw(buildroot)
        kmods = [t for p in pkgs if raw(p.path).startswith(root)
                 and _KMOD_PATH.fullmatch(raw(p.path)[len(root):]) for t in _kmod_attr(p.path)]
    pkgs = [p for p in pkgs if handled(style, provides, p.path)]
    if style == "redhat" and provides:
        return [Line(t, False) for t in kmods] + redhat_provides(pkgs, buildroot)
    if style == "suse":
        return suse_provides(pkgs, flavor) if provides else suse_requires(pkgs, flavor)
    return redhat_provides(pkgs, buildroot) if provides else redhat_requires(pkgs, symvers)


def dropped_counts(kmod: Kmod, records: Sequence[ModuleRecord], symvers: bytes | None = None) -> dict[str, dict]:
    """For the report: per style, the requirement lines find-requires.ksyms prints for the whole tree
    taken as one package, and how many more it would print if it saw the extended-only imports."""
    pkgs = [package(kmod, rec) for rec in records]
    out = {}
    for style in STYLES:
        lines = generate(style, False, pkgs, symvers=symvers)
        out[style] = {"requires": sum(not line.added for line in lines), "dropped": sum(line.added for line in lines)}
    return out
