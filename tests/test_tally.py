"""What the consumers' count() give on tally.py's tables equals what their models give: the simulated
formats' totals, and the views of modules as built.

compute_views counts the simulated formats from each module's facts; with
``count=False`` it runs every model on every re-encoded record instead. The
two must give the same Totals on fixtures of every architecture, on a real
tree, and when exporter CRCs disagree with the modules (drift, unknown
symbols, CRC 0), when names are too long for ``__versions``, and when imports
are weak or are depmod's fake symbols.
"""

from __future__ import annotations

import os
import random
from dataclasses import replace

import pytest

from kmodcompat.consumers import CONSUMERS
from kmodcompat.consumers.base import exporter_crcs, tree_crcs
from kmodcompat.errors import ModuleReadError
from kmodcompat.parse.module import parse_module
from kmodcompat.elf.layout import STB_WEAK
from kmodcompat.records import Import, Modversion
from kmodcompat.report import module_summary, summary_from_counts
from kmodcompat.tally import module_tally, tally
from kmodcompat.views import ALL_FORMATS, AS_IS, _compute

from . import oracle
from .paths import MODULES as FIX


def fixture_entries() -> list[tuple[str, object]]:
    """Every fixture module that parses (some are corrupt on purpose)."""
    out = []
    for p in sorted(FIX.glob("*/*.ko*")):
        try:
            out.append((str(p), parse_module(str(p))))
        except ModuleReadError:
            pass
    return out


def assert_counts_equal_models(mods, expected, formats=ALL_FORMATS, vermagic=None) -> int:
    """Totals equal both ways, and so do the report's per-module summaries of the modules as built
    (with as without the views kept), for every registered consumer (the Debian kernel profile's included),
    the kernel's vermagic ``vermagic`` (None: unknown); returns how many modules the counting rules covered."""
    every = tuple(CONSUMERS)
    for keep, summarize, from_counts in (((), None, None), ((AS_IS,), module_summary, summary_from_counts)):
        counted = _compute(mods, every, formats, expected, keep, summarize, from_counts, True, vermagic)
        modelled = _compute(mods, every, formats, expected, keep, summarize, from_counts, False, vermagic)
        for a, b in zip(counted.totals, modelled.totals):
            assert a == b, (a.format, a.consumer)
        assert counted == modelled
    return sum(module_tally(rec, exporter_crcs(rec), expected, vermagic) is not None for _, rec in mods)


def as_built_counted(mods, expected) -> int:
    """Modules whose tables are modpost's own for their format (their as-built views are counted)."""
    return sum(t is not None and t.as_built() is not None
               for t in (module_tally(rec, exporter_crcs(rec), expected) for _, rec in mods))


def perturbed(expected: dict[str, int], rnd: random.Random) -> dict[str, int]:
    """Exporter CRCs that disagree with the modules' in every way depmod and the loader tell apart."""
    out = dict(expected)
    for name in rnd.sample(sorted(expected), len(expected) // 4):
        k = rnd.random()
        if k < 0.4:
            out[name] = rnd.getrandbits(32)  # ABI drift
        elif k < 0.7:
            del out[name]  # unknown symbol
        else:
            out[name] = 0  # exported without a CRC
    if rnd.random() < 0.5:
        out["module_layout"] = rnd.getrandbits(32)
    return out


def test_fixtures_own_and_tree_crcs():
    mods = fixture_entries()
    assert assert_counts_equal_models(mods, None) > len(mods) // 2
    expected = tree_crcs({}, [r for _, r in mods])
    assert assert_counts_equal_models(mods, expected) > len(mods) // 2
    assert as_built_counted(mods, None) > len(mods) // 4


def test_kernel_vermagic_known():
    """The loader models compare vermagic (check_modinfo) once the kernel's is known: 58 of the 106
    fixtures' vermagics differ from this kernel's in the release (compared only without __versions, as in the
    simulated "none" format), the flags or the architecture, or are missing (no-modinfo.ko); tally.py counts
    only those equal to it and the models decide the rest, with the same totals."""
    mods = fixture_entries()
    vermagic = "6.1.0-kmc-amd64 SMP preempt mod_unload modversions "
    covered = assert_counts_equal_models(mods, None, vermagic=vermagic)
    assert 0 < covered < assert_counts_equal_models(mods, None)
    assert_counts_equal_models(mods, tree_crcs({}, [r for _, r in mods]), vermagic=vermagic)
    unknown = _compute(mods, None, ALL_FORMATS, None, (), count=False)
    known = _compute(mods, None, ALL_FORMATS, None, (), count=False, vermagic=vermagic)
    as_is = {(t.format, t.consumer): t.verdicts for t in known.totals}
    for t in unknown.totals:  # only the loader models change, and only towards refusals and taints
        if not CONSUMERS[t.consumer].kind == "kernel":
            assert as_is[t.format, t.consumer] == t.verdicts
    six13 = next(t for t in known.totals if t.format == AS_IS and t.consumer == "kernel-6.13")
    before = next(t for t in unknown.totals if t.format == AS_IS and t.consumer == "kernel-6.13")
    assert six13.verdicts.get("refuses", 0) > before.verdicts.get("refuses", 0)


def test_as_built_only_when_the_tables_are_modpost_s():
    recs = {p: r for p, r in fixture_entries()}
    x86 = recs[str(FIX / "x86_64" / "basic.ko")]
    facts = module_tally(x86, exporter_crcs(x86), None)
    assert facts.as_built() == facts.counts(("basic",))["basic"]
    v = x86.versions
    stale = replace(x86, versions=replace(v, entries=v.entries + (Modversion(1, "stale_entry"),), size=v.size + 64))
    assert module_tally(stale, exporter_crcs(stale), None).as_built() is None
    unterminated = replace(x86, versions=replace(v, entries=(v.entries[0]._replace(terminated=False),) + v.entries[1:]))
    assert module_tally(unterminated, exporter_crcs(unterminated), None).as_built() is None
    # An import the module did not version but the tree's exporters do: modpost would have versioned it.
    dropped = v.entries[0]
    assert dropped.name in {i.name for i in x86.imports}
    unversioned = replace(x86, versions=replace(v, entries=v.entries[1:], size=v.size - 64))
    assert module_tally(unversioned, exporter_crcs(unversioned), None).as_built() is not None
    expected = {**exporter_crcs(x86), dropped.name: 7}
    assert module_tally(unversioned, exporter_crcs(unversioned), expected).as_built() is None
    mods = [("stale", stale), ("unterminated", unterminated), ("unversioned", unversioned), ("x86", x86)]
    assert_counts_equal_models(mods, expected)
    assert_counts_equal_models(mods, None)


def test_fixtures_with_disagreeing_exporters():
    mods = fixture_entries()
    rnd = random.Random(7)
    names = {n for _, r in mods for n in exporter_crcs(r)} | {i.name for _, r in mods for i in r.imports}
    base = {n: rnd.getrandbits(32) for n in sorted(names)} | tree_crcs({}, [r for _, r in mods])
    for _ in range(20):
        assert_counts_equal_models(mods, perturbed(base, rnd))


def _renamed(rec, rename):
    """The record with import names (and the version tables naming them) mapped through ``rename``."""
    def entries(table):
        return None if table is None else replace(table, entries=tuple(
            Modversion(e.crc, rename.get(e.name, e.name), e.terminated) for e in table.entries))
    return replace(rec, imports=tuple(Import(rename.get(i.name, i.name), i.binding, i.type) for i in rec.imports),
                   versions=entries(rec.versions), ext_versions=entries(rec.ext_versions),
                   varlen_versions=entries(rec.varlen_versions))


def test_long_names_weak_imports_and_fake_symbols():
    # Rust-length names (basic cannot be built, basic+ext leaves them out of __versions),
    # weak imports (the loader checks them, depmod does not), and a fake symbol depmod
    # never calls unknown.
    rnd = random.Random(3)
    mods = []
    for path, rec in fixture_entries():
        names = [i.name for i in rec.imports if i.name != "module_layout"]
        rename = {n: "_RNvNtCs" + "x" * rnd.choice((40, 47, 48, 52, 60, 80)) + n for n in names if rnd.random() < .4}
        if names and rnd.random() < .3:
            rename[names[0]] = "_GLOBAL_OFFSET_TABLE_"
        long = _renamed(rec, rename)
        weak = replace(long, imports=tuple(Import(i.name, STB_WEAK, i.type) if rnd.random() < .3 else i
                                           for i in long.imports))
        mods += [(path, long), (path + "#weak", weak)]
    assert assert_counts_equal_models(mods, None) > len(mods) // 2
    expected = tree_crcs({}, [r for _, r in mods])
    for _ in range(10):
        assert_counts_equal_models(mods, perturbed(expected, rnd))


def test_declines_what_its_rules_do_not_cover():
    recs = {p: r for p, r in fixture_entries()}
    ppc64 = recs[str(FIX / "ppc64" / "basic.ko")]
    assert tally(ppc64, exporter_crcs(ppc64), None) is None  # ELFv1 dot names
    x86 = recs[str(FIX / "x86_64" / "basic.ko")]
    twice = replace(x86, imports=x86.imports + x86.imports[:1])
    assert tally(twice, exporter_crcs(twice), None) is None
    assert tally(x86, exporter_crcs(x86), None) is not None
    mods = [("twice", twice), ("ppc64", ppc64), ("x86", x86)]
    assert_counts_equal_models(mods, None)


def test_kept_formats_still_come_from_the_models():
    mods = fixture_entries()
    only_basic = _compute(mods, None, ALL_FORMATS, None, ("basic",), None, None, True)
    assert {f for m in only_basic.modules for f in m.by_format} == {"basic"}  # as-is counted, not kept
    assert only_basic == _compute(mods, None, ALL_FORMATS, None, ("basic",), None, None, False)
    res = _compute(mods, None, ALL_FORMATS, None, ("basic", AS_IS), None, None, True)
    assert all(isinstance(m.by_format["basic"], (dict, str)) for m in res.modules)
    assert all(isinstance(m.by_format[AS_IS], dict) for m in res.modules)  # full views: no summary to count
    assert res == _compute(mods, None, ALL_FORMATS, None, ("basic", AS_IS), None, None, False)


@pytest.mark.realtree
@pytest.mark.parametrize("name", ["trixie-amd64", "trixie-s390x"])
def test_real_tree_tree_crcs_and_disagreeing_exporters(name):
    """trixie amd64 (.ko.xz) and s390x (big-endian, 64-bit): every module counted, totals equal the models'."""
    root = oracle.tree_root(name, fetch=os.environ.get("KMODCOMPAT_FETCH_TREES") == "1")
    if root is None:
        pytest.skip(f"tree {name} not available")
    from kmodcompat.depmod.tree import load_tree

    tree = load_tree(str(root), oracle.tree_info(root)["krel"], jobs=2)
    mods = [(m.path, m.record) for m in tree.modules if m.record is not None]
    expected = tree_crcs({}, [r for _, r in mods])
    # Every module is counted but those importing the kernel's sha256() (ceph and snd-soc-cros-ec-codec on
    # amd64): the hashed format's records read as symbols of that name, which clean tables cannot tell apart.
    clean = [m for m in mods if "sha256" not in {i.name for i in m[1].imports}]
    assert len(mods) - len(clean) <= 2
    assert assert_counts_equal_models(mods, expected) == len(clean)
    assert as_built_counted(mods, expected) == len(clean)
    rnd = random.Random(11)
    sample = rnd.sample(mods, 300)
    for _ in range(3):
        assert_counts_equal_models(sample, perturbed(expected, rnd))
