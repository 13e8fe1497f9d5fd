"""Are these CRCs checking anything? Figures over a set of modules.

For every import of every module: does it carry a CRC, in which table, and
what could that CRC catch?

* versioned in ``__versions`` (every kmod and kernel can check it), only in the
  extended tables (only a 6.14+ kernel and unreleased kmod see it), or not at all;
* a *placeholder*: genksyms versions a symbol it sees as ``extern int NAME;``
  with the CRC-32 of the text ``int NAME `` (verified on Debian's vmlinux
  exports, all of them real ``int`` variables). When the exporter actually
  defines a *function* with that CRC, the check compares nothing but the name;
* Rust symbols (v0 ``_R...``, legacy ``_ZN...E``), whose length puts them
  beyond the 55/59-character limit of ``__versions``.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from itertools import repeat

from .consumers.base import exporter_crcs
from .files.bounded import SYSTEM_MAP, read_input
from .modversions.basic import name_limit
from .records import ModuleRecord, raw
from .rust import is_rust


def placeholder_crc(name: str) -> int:
    """The CRC genksyms gives a symbol declared as ``extern int NAME;``."""
    return zlib.crc32(b"int " + raw(name) + b" ")


@dataclass(frozen=True)
class CrcUsefulness:
    modules: int = 0
    imports: int = 0  # undefined symbols of .symtab
    versioned_basic: int = 0  # a CRC in __versions
    versioned_ext_only: int = 0  # a CRC only in the extended tables
    unversioned: int = 0  # no CRC anywhere
    placeholder_int: int = 0  # versioned with crc32("int NAME ")
    placeholder_on_functions: int = 0  # ... while the exporter defines a function: checks only the name
    placeholder_unknown_kind: int = 0  # ... exporter's symbol kind unknown
    rust_imports: int = 0
    rust_versioned: int = 0
    rust_ext_only: int = 0
    too_long_for_basic: int = 0  # names longer than the __versions field holds
    name_length_histogram: dict[int, int] = field(default_factory=dict)  # import name length → count
    placeholder_function_names: tuple[str, ...] = ()  # distinct names, sorted

    @property
    def real_checks(self) -> int:
        """Versioned imports whose CRC can catch more than a renamed symbol: placeholders on functions
        check only the name, and placeholders of unknown kind are not counted as checks either (an
        unknown is not a finding)."""
        return (self.versioned_basic + self.versioned_ext_only - self.placeholder_on_functions
                - self.placeholder_unknown_kind)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["name_length_histogram"] = {str(k): v for k, v in sorted(self.name_length_histogram.items())}
        d["real_checks"] = self.real_checks
        d["placeholder_function_names"] = list(self.placeholder_function_names)
        return d


def crc_usefulness(records: Iterable[ModuleRecord], symbol_kinds: Mapping[str, str] | None = None) -> CrcUsefulness:
    """Figures over ``records``. ``symbol_kinds`` maps exported names to "func"/"object"
    (from System.map for vmlinux); exports of the records themselves are added."""
    recs = list(records)
    kinds: dict[str, str] = dict(symbol_kinds or {})
    for r in recs:
        for x in r.exports:
            kinds.setdefault(x.name, x.kind)
    # Every figure of an import follows from its name, the CRC its module recorded (or none),
    # whether __versions has the name and the module's name limit. A tree's ~190k imports
    # share ~20k such facts (names repeat, with the same CRC): counted first, in C, then
    # each distinct one is judged once.
    facts: Counter[tuple[str, int | None, bool, int]] = Counter()
    for r in recs:
        basic = {m.name.removeprefix(".") for m in r.versions.entries} \
            if r.versions is not None and r.versions.well_formed else set()
        crcs = exporter_crcs(r)
        names = [imp.name.removeprefix(".") for imp in r.imports]
        facts.update(zip(names, map(crcs.get, names), map(basic.__contains__, names),
                         repeat(name_limit(r.elf.elfclass))))
    return _figures(len(recs), facts, kinds)


def _figures(modules: int, facts: Counter[tuple[str, int | None, bool, int]],
             kinds: Mapping[str, str]) -> CrcUsefulness:
    """:func:`crc_usefulness` from the imports counted by (name, CRC or None, in __versions, name limit)."""
    c = Counter(modules=modules)
    lengths: Counter[int] = Counter()
    placeholder_funcs: set[str] = set()
    for (name, crc, basic, limit), n in facts.items():
        length = len(raw(name))
        rust = n if is_rust(name) else 0
        c["imports"] += n
        lengths[length] += n
        c["rust_imports"] += rust
        if length > limit:
            c["too_long_for_basic"] += n
        if crc is None:
            c["unversioned"] += n
            continue
        if basic:
            c["versioned_basic"] += n
        else:
            c["versioned_ext_only"] += n
            c["rust_ext_only"] += rust
        c["rust_versioned"] += rust
        if crc == placeholder_crc(name):
            c["placeholder_int"] += n
            kind = kinds.get(name)
            if kind == "func":
                c["placeholder_on_functions"] += n
                placeholder_funcs.add(name)
            elif kind not in ("object",):
                c["placeholder_unknown_kind"] += n
    return CrcUsefulness(**c, name_length_histogram=dict(sorted(lengths.items())),
                         placeholder_function_names=tuple(sorted(placeholder_funcs)))


def system_map_kinds(path: str) -> dict[str, str]:
    """Symbol kinds from a System.map: T/t/W/w code → "func", data letters → "object".

    Read through :func:`~kmodcompat.files.bounded.read_input` (a regular file within
    System.map's size cap); raises :class:`~kmodcompat.files.bounded.InputFileError`.
    """
    kinds: dict[str, str] = {}
    for line in read_input(path, SYSTEM_MAP).splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        letter, name = parts[1], parts[2]
        if letter in _FUNC:
            kinds.setdefault(name.decode("utf-8", "surrogateescape"), "func")
        elif letter in _OBJECT:
            kinds.setdefault(name.decode("utf-8", "surrogateescape"), "object")
    return kinds


# nm's type letters, as whole fields (a field "Tt" is neither).
_FUNC = {b"T", b"t", b"W", b"w"}
_OBJECT = {bytes([c]) for c in b"DdBbRrGgSsVv"}
