"""Every import version of a module, and the table(s) that carry it: `kmodcompat modversions`.

``modprobe --dump-modversions`` (kmod's tools/modprobe.c show_modversions(), over
libkmod-elf.c kmod_elf_get_modversions()) prints ``__versions`` alone: on a
module built with CONFIG_EXTENDED_MODVERSIONS (Linux 6.14, modpost's
add_versions() skips names of 56+ characters, add_extended_versions() writes
all of them) it silently drops the long names, and with BASIC_MODVERSIONS=n it
finds no section at all. kmod's man page marks the option deprecated (to go
after kmod 36). This listing is the complete one, built from the parsed record:

* ``__versions`` entries first, in file order, names de-dotted as libkmod
  de-dots them (one leading '.', ppc64 ELFv1): restricted to the ``basic``
  table, it is what --dump-modversions prints for every module kmod reads;
* then the entries only ``__version_ext_crcs``/``__version_ext_names`` carry,
  in their order. An entry of both tables (same name, same CRC; modpost writes
  every short name in both) is one row carrying both tables;
* the rejected 2023 variable-length ``__versions`` (:mod:`.modversions.varlen`)
  lists as table ``varlen``.

A table kmod or the kernel would refuse (size not a multiple of its entry,
names without NUL, a half of the extended pair missing) is named in
:attr:`Listing.problems`, from the parser's findings; its readable entries
are still listed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, NamedTuple

from .modversions import VersionTable, dedot
from .records import ModuleRecord, Modversion

BASIC, EXTENDED, VARLEN = VersionTable.BASIC, VersionTable.EXTENDED, VersionTable.VARLEN
#: ``--table`` choices → the tables they select.
TABLE_CHOICES: dict[str, tuple[VersionTable, ...]] = {BASIC: (BASIC,), EXTENDED: (EXTENDED,), "all": tuple(VersionTable)}
SCHEMA_VERSION = 1

#: Parser findings (modversions/basic.py, extended.py) that make a table unusable to kmod or the kernel, by table.
_PROBLEM_FINDINGS = {
    BASIC: ("versions-out-of-bounds", "versions-size-not-multiple", "versions-name-unterminated"),
    EXTENDED: ("ext-crcs-missing", "ext-names-missing", "ext-out-of-bounds", "ext-crcs-size-not-multiple",
                 "ext-fewer-names"),
}


class Row(NamedTuple):
    crc: int
    name: str
    tables: tuple[VersionTable, ...]  # in VersionTable's order


class Listing(NamedTuple):
    path: str
    module: str
    format: str  # ModuleRecord.modversions_format
    rows: tuple[Row, ...]
    problems: tuple[str, ...]  # messages of findings that make a selected table unusable


def _basic(rec: ModuleRecord) -> tuple[Modversion, ...]:
    v = rec.versions
    if v is None or rec.varlen_versions is not None or not v.well_formed:
        return ()  # a size that is not a multiple of 64 holds records of another layout
    return dedot(tuple(e for e in v.entries if e.terminated))


def _extended(rec: ModuleRecord) -> tuple[Modversion, ...]:
    return () if rec.ext_versions is None else dedot(rec.ext_versions.entries)


def listing(rec: ModuleRecord, table: str = "all") -> Listing:
    """The rows of the tables ``table`` selects (a :data:`TABLE_CHOICES` key)."""
    selected = TABLE_CHOICES[table]
    basic = _basic(rec) if BASIC in selected else ()
    ext = _extended(rec) if EXTENDED in selected else ()
    in_ext = Counter((e.name, e.crc) for e in ext)
    rows: list[Row] = []
    shared: Counter[tuple[str, int]] = Counter()
    for e in basic:
        key = (e.name, e.crc)
        if shared[key] < in_ext[key]:
            shared[key] += 1
            rows.append(Row(e.crc, e.name, (BASIC, EXTENDED)))
        else:
            rows.append(Row(e.crc, e.name, (BASIC,)))
    for e in ext:
        key = (e.name, e.crc)
        if shared[key]:
            shared[key] -= 1  # listed with its __versions twin
            continue
        rows.append(Row(e.crc, e.name, (EXTENDED,)))
    if VARLEN in selected and rec.varlen_versions is not None:
        rows.extend(Row(e.crc, e.name, (VARLEN,)) for e in dedot(rec.varlen_versions.entries))
    codes = {c for t in selected for c in _PROBLEM_FINDINGS.get(t, ())}
    problems = tuple(f.message for f in rec.findings if f.code in codes and
                     not (f.code == "versions-size-not-multiple" and rec.varlen_versions is not None))
    return Listing(rec.path, rec.name, rec.modversions_format, tuple(rows), problems)


def listing_json(lst: Listing) -> dict[str, Any]:
    """One module's listing as the JSON schema (kmodcompat/modversions-schema.json) describes it."""
    return {"path": lst.path, "module": lst.module, "modversions_format": lst.format,
            "versions": [{"crc": r.crc, "name": r.name, "tables": list(r.tables)} for r in lst.rows],
            "problems": list(lst.problems)}
