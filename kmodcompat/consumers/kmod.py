"""kmod as a consumer: what a kmod release shows of a module, ``--dump-modversions`` and ``depmod -e -E``.

Built on the libkmod layer (:mod:`kmodcompat.kmod`): the release's profile
decides how libkmod-elf.c reads the tables; this file judges what the user
of that kmod sees (import versions lost, false "disagrees" warnings).
"""

from __future__ import annotations

from operator import attrgetter

from ..kmod.elf import KmodError, dependency_versions, get_modversions, match_versions
from ..kmod.profile import Kmod
from ..elf.layout import STB_WEAK
from ..modversions.hashed import SHOWN_NAME as HASHED_NAME
from ..records import ModuleRecord, Modversion
from .base import FALSE_MISMATCH, OK, PARTIAL, UNREADABLE, ConsumerView, Reading

#: Symbols depmod adds itself when it loads -E/-F (depmod_add_fake_syms), so never "unknown".
DEPMOD_FAKE_SYMBOLS = frozenset({"__this_module", "_GLOBAL_OFFSET_TABLE_", "TOC."})

_name = attrgetter("name")


def read(kmod: Kmod, r: Reading) -> ConsumerView:
    """What this kmod shows of the module: ``--dump-modversions`` and ``depmod -e -E``.

    ``r.truth`` decides whether a "disagrees" warning is false; symbols missing
    from ``r.exp`` are reported unknown when ``r.judge_unknown`` (which only a
    complete tree can tell). Once per model and Reading: the weak-modules gates
    ask for kmod 34's.
    """
    return r.of("kmod", kmod, lambda _: _read(kmod, r))


def _read(kmod: Kmod, r: Reading) -> ConsumerView:
    rec, path = r.rec, r.path
    messages: list[str] = []
    try:
        visible = get_modversions(kmod, rec)
    except KmodError as e:
        visible = ()
        messages.append(f"modprobe: FATAL: could not get modversions of {path}: {e}")
    # What is lost and what depmod says depend on the module and the table alone: a
    # table equal to one read before (another kmod, another format) is not read again.
    lost = r.per_table("unseen", visible, lambda r: _unseen(r.order, visible))
    try:
        entries = dependency_versions(kmod, rec)
    except KmodError:
        false: tuple[str, ...] = ()  # PR #270: depmod drops the module's dependencies without a word
    else:
        warnings, false = r.per_table("depmod", entries, lambda r: _depmod_warnings(
            r, *match_versions(entries, map(_name, r.rec.imports))))
        messages += warnings
    if false:
        verdict = FALSE_MISMATCH
    elif not visible and r.own:
        verdict = UNREADABLE
    elif lost:
        verdict = PARTIAL
    else:
        verdict = OK
    misread: tuple[Modversion, ...] = ()
    if rec.varlen_versions is not None:
        misread = rec.varlen_versions.entries  # kmod rejects the table: every entry is lost to it
    elif rec.hashed_versions is not None:
        misread = hashed_shown(rec, visible)
    return ConsumerView(kmod.id, path, verdict, visible, lost, misread, (), tuple(messages), false)


def hashed_shown(rec: ModuleRecord, visible: tuple[Modversion, ...]) -> tuple[Modversion, ...]:
    """The hashed ``__versions`` records (the 2024 RFC) among what kmod read, as it reads them: a symbol
    named "sha256" (the name field's C string), what ``--dump-modversions`` prints for each.

    Only when ``visible`` is ``__versions`` itself (PR #270 reads the extended tables instead)."""
    v, hashed = rec.versions, rec.hashed_versions
    if v is None or hashed is None or len(visible) != len(v.entries):
        return ()
    shown = tuple(visible[i] for i in hashed.indices)
    return shown if all(e.name == HASHED_NAME for e in shown) else ()


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
    """``depmod -e -E`` on the dependency symbols (:func:`~kmodcompat.kmod.elf.get_dependency_symbols`):
    all warnings, the false ones."""
    path, truth, exp, judge_unknown = r.path, r.truth, r.exp, r.judge_unknown
    symbols, wants, unknown = r.shared("depmod-imports", _depmod_imports)
    if wants.items() <= crcs.items():
        # Every import's CRC is its exporter's: the imports draw only the unknown-symbol warnings.
        messages = list(unknown)
        checks = []
    else:
        messages = []
        checks = [(crcs.get(raw_name, 0), name, want) for raw_name, name, want in symbols]
    # A hashed record (the 2024 RFC) left over is a "symbol" named sha256 the module never imports:
    # whatever depmod says of it is false (kmod_elf_get_dependency_symbols() appends it like module_layout).
    hashed = r.rec.hashed_versions is not None
    for e in rest:
        name = e.name.removeprefix(".")
        checks.append((e.crc, name, exp.get(name)))
    false: list[str] = []
    for i, (crc, name, want) in enumerate(checks):
        bogus = hashed and name == HASHED_NAME and i >= len(checks) - len(rest)
        if want is None:
            if judge_unknown and name not in DEPMOD_FAKE_SYMBOLS:
                messages.append(_unknown_symbol(path, name))
                if bogus:
                    false.append(messages[-1])
            continue
        if crc != want:
            line = f"depmod: WARNING: {path} disagrees about version of symbol {name}"
            messages.append(line)
            if truth.get(name) == want or bogus:
                false.append(line)
    return tuple(messages), tuple(false)
