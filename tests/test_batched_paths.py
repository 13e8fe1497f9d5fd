"""The batched paths of the serial report stages agree with their one-at-a-time definitions.

depmod's resolution (:func:`kmodcompat.depmod.resolve.run_depmod`) looks a
module's dependency symbols up in one go, and :func:`crc_usefulness` counts
a tree's imports by distinct fact before judging them. Here both are held to
the plain rules they stand for, one symbol or import at a time, on the
fixture modules of every architecture: ppc64 ELFv1 brings imports with a
leading '.', which depmod strips before the lookup.
"""

from __future__ import annotations

import gc
import shutil
import zlib
from collections import Counter
from pathlib import Path

import pytest

from kmodcompat.consumers.base import own_crcs
from kmodcompat.kmod.elf import KmodError, get_dependency_symbols
from kmodcompat.depmod.kernel_symbols import load_module_symvers
from kmodcompat.depmod.resolve import KERNEL, SymbolEntry, run_depmod
from kmodcompat.depmod.writer import render
from kmodcompat.errors import ModuleReadError
from kmodcompat.modversions.basic import name_limit
from kmodcompat.parse.module import parse_module
from kmodcompat.records import raw
from kmodcompat.rust import is_rust
from kmodcompat.depmod.tree import load_tree
from kmodcompat.usefulness import crc_usefulness, placeholder_crc

from .paths import MODULES as FIXTURES

KVER = "9.9.9-kmc"


def _crc(name: str) -> int:
    return zlib.crc32(b"kmodcompat:" + name.lstrip(".").encode())


@pytest.fixture(scope="module", params=["ppc64", "s390x", "x86_64"])
def tree_root(request, tmp_path_factory) -> Path:
    """Every fixture module of one architecture in a tree, and a Module.symvers of some of their imports."""
    base = tmp_path_factory.mktemp(f"tree-{request.param}")
    moddir = base / "root" / "lib" / "modules" / KVER / "kernel"
    moddir.mkdir(parents=True)
    for src in sorted((FIXTURES / request.param).glob("*.ko*")):
        if src.name.startswith("kcheck-secstrings-index"):  # kmod aborts on it: depmod would stop there
            continue
        shutil.copyfile(src, moddir / src.name.replace("+", "_").replace("-", "_"))
    kernel = {"printk": _crc("printk"), "kfree": _crc("kfree") ^ 1, "module_layout": 0, ".TOC.": 0}
    (base / "Module.symvers").write_text("".join(f"0x{c:08x}\t{n}\tvmlinux\tEXPORT_SYMBOL\t\n"
                                                 for n, c in kernel.items()))
    return base


def _per_symbol(dm) -> dict:
    """depmod_load_module_dependencies(), one dependency symbol at a time through symbol_find()."""
    check = dm.kernel is not None and dm.kernel.check_symvers
    edges: dict[tuple[int, int], list[str]] = {}
    kernel_imports: list[list[str]] = [[] for _ in dm.modules]
    unresolved, disagreements = [], []
    for i, m in enumerate(dm.modules):
        if m.record is None:
            continue
        try:
            syms = get_dependency_symbols(dm.kmod, m.record)
        except KmodError:
            continue
        for s in syms:
            entry = dm.symbol_find(s.name)
            if entry is None:
                unresolved.append((i, s.name, s.weak))
                continue
            if check and entry.crc != s.crc and not s.weak:
                disagreements.append((i, s.name, s.crc, entry.crc, entry.owner))
            if entry.owner == KERNEL:
                kernel_imports[i].append(s.name)
            else:
                edges.setdefault((i, entry.owner), []).append(s.name)
    return {"edges": list(edges.items()), "kernel_imports": kernel_imports, "unresolved": unresolved,
            "disagreements": disagreements,
            "deps": [[owner for j, owner in edges if j == i] for i in range(len(dm.modules))]}


@pytest.mark.parametrize("prefix", ["", "."])
@pytest.mark.parametrize("with_kernel", [True, False])
def test_resolution_is_per_symbol_lookup(tree_root, prefix, with_kernel):
    tree = load_tree(str(tree_root / "root"), KVER, config=[])
    kernel = load_module_symvers(str(tree_root / "Module.symvers"), prefix) if with_kernel else None
    dm = run_depmod(tree, kernel, print_unknown=True, prefix=prefix)
    want = _per_symbol(dm)
    assert list(dm.edges.items()) == want["edges"]
    assert dm.kernel_imports == want["kernel_imports"]
    assert dm.deps == want["deps"]
    assert [(u.module, u.symbol, u.weak) for u in dm.unresolved] == want["unresolved"]
    assert [(d.module, d.symbol, d.module_crc, d.expected_crc, d.owner) for d in dm.disagreements] == \
        want["disagreements"]


@pytest.mark.parametrize("prefix", ["", "_", "."])
def test_symbols_find_is_symbol_find_per_name(tree_root, prefix):
    dm = run_depmod(load_tree(str(tree_root / "root"), KVER, config=[]), prefix=prefix)
    for name in (".foo", "foo", "_foo", "..foo", "-x", "", "TOC.", "\udcff"):
        dm.symbols[name] = SymbolEntry(name, KERNEL, 0)
    cases = [[], ["foo"], [".foo"], ["..foo"], ["_foo", "foo"], ["zzz", ".foo"], ["-x", ".foo"], ["", "foo"],
             ["$x"], ["\udcff", ".TOC."], ["__foo", "._foo"]]
    for names in cases:
        assert [id(e) for e in dm.symbols_find(names)] == [id(dm.symbol_find(n)) for n in names], names


@pytest.mark.parametrize("enabled", [True, False])
def test_run_depmod_leaves_the_collector_as_it_was(tree_root, enabled):
    tree = load_tree(str(tree_root / "root"), KVER, config=[])
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        run_depmod(tree)
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


def test_modinfo_string_without_value_is_an_empty_alias(tree_root):
    dm = run_depmod(load_tree(str(tree_root / "root"), KVER, config=[]))
    dm.info[0] = (("alias", None), ("softdep", None), ("alias", "x"))
    out = render(dm, dry_run=True)
    name = dm.modules[0].name
    assert f"alias  {name}\nalias x {name}\n".encode() in out.file("modules.alias")
    assert f"softdep {name} \n".encode() in out.file("modules.softdep")


def _per_import(records, symbol_kinds: dict[str, str]) -> dict:
    """crc_usefulness()'s figures by their definition, one import at a time."""
    kinds = dict(symbol_kinds)
    for r in records:
        for x in r.exports:
            kinds.setdefault(x.name, x.kind)
    c: Counter[str] = Counter(modules=len(records))
    lengths: Counter[int] = Counter()
    funcs = set()
    for r in records:
        basic = {m.name.removeprefix(".") for m in r.versions.entries} \
            if r.versions is not None and r.versions.well_formed else set()
        crcs = {k.removeprefix("."): v for k, v in own_crcs(r).items()}
        for imp in r.imports:
            name = imp.name.removeprefix(".")
            rust = is_rust(name)
            c["imports"] += 1
            lengths[len(raw(name))] += 1
            c["rust_imports"] += rust
            c["too_long_for_basic"] += len(raw(name)) > name_limit(r.elf.elfclass)
            crc = crcs.get(name)
            if crc is None:
                c["unversioned"] += 1
                continue
            c["versioned_basic" if name in basic else "versioned_ext_only"] += 1
            c["rust_ext_only"] += rust and name not in basic
            c["rust_versioned"] += rust
            if crc == placeholder_crc(name):
                c["placeholder_int"] += 1
                kind = kinds.get(name)
                c["placeholder_on_functions"] += kind == "func"
                c["placeholder_unknown_kind"] += kind not in ("func", "object")
                if kind == "func":
                    funcs.add(name)
    return {**c, "name_length_histogram": dict(sorted(lengths.items())),
            "placeholder_function_names": tuple(sorted(funcs))}


def test_crc_usefulness_is_per_import_count():
    records = []
    for path in sorted(FIXTURES.glob("*/*.ko*")):
        try:
            records.append(parse_module(str(path)))
        except ModuleReadError:
            continue  # a corrupt stream: no imports to count
    assert any(i.name.startswith(".") for r in records for i in r.imports)  # ppc64 ELFv1 names are in
    for kinds in ({}, {"kmc_asm_func": "object", "kmc_int_var": "func", "printk": "func"}):
        for subset in (records, records[::-1], records[::2], records[:1], []):
            got = crc_usefulness(subset, kinds)
            for key, value in _per_import(subset, kinds).items():
                assert getattr(got, key) == value, key
    figures = crc_usefulness(records)
    assert figures.placeholder_on_functions and figures.versioned_ext_only and figures.rust_imports
    assert figures.too_long_for_basic and figures.unversioned and figures.rust_ext_only
