"""``kmodcompat diff``: fixture pairs named entry by entry, trees, packages, exit codes, renderings, real trees.

Fixture pairs are the same importer built in each MODVERSIONS format (the
generator gives every symbol one CRC in every file) and an exporter whose
``short_sym`` CRC is rewritten in ``__kcrctab`` at test time. For each pair
the test states every expected version entry, section and .modinfo change
and asserts the diff names exactly those. Section expectations come from
pyelftools, not from kmodcompat's own reader.

The real-tree tests diff Debian bookworm (6.1) against trixie (6.12) amd64
and check three reported changes against ``modprobe --dump-modversions`` and
``readelf`` on the real files.
"""

from __future__ import annotations

import io
import json
import lzma
import os
import re
import shutil
import subprocess
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest
from elftools.elf.elffile import ELFFile

from kmodcompat.cli import main
from kmodcompat.diff import (
    EXIT_CHANGE, EXIT_INCOMPATIBLE, EXIT_SAME, DepFacts, diff_dependencies, diff_modules, diff_sections, diff_trees,
    exit_status,
)
from kmodcompat.parse.module import parse_module
from kmodcompat.elf.layout import SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHT_NOBITS, SHT_PROGBITS, SHT_RELA
from kmodcompat.records import Section
from kmodcompat.report import diff_render
from kmodcompat.report.diff_json import to_json
from kmodcompat.depmod.tree import load_tree

from . import oracle
from .paths import MODULES, REPO, X86_64 as FIX

SCHEMA = json.loads((REPO / "kmodcompat" / "report" / "diff-schema.json").read_text())
KVER = "6.1.0-kmc"
FETCH = os.environ.get("KMODCOMPAT_FETCH_TREES") == "1"

#: The importer's versioned imports that fit in __versions, in modpost order, and its one long (Rust) import.
SHORT = ("__fentry__", "printk", "kmalloc_caches", "kfree", "short_sym", "ns_sym", "module_layout")
RUST = ("_RNvXs_NtCshhMfd4mY5QU_6kernel8user_ptrNtB4_18UserSlicePtrReaderNtNtB6_9io_buffer14IoBufferReader8read_raw")
#: Kernel release each importer fixture was built for (its vermagic).
RELEASE = {"basic": "6.1.0", "basic+ext": "6.18.0", "ext-only": "6.18.0", "none": "6.12.0", "varlen": "6.2.0"}
#: The tables each fixture keeps its entries in: (short names, the Rust name); () = not versioned there.
TABLES = {"basic": (("basic",), ()), "basic+ext": (("basic", "ext"), ("ext",)), "ext-only": (("ext",), ("ext",)),
          "none": ((), ()), "varlen": (("varlen",), ("varlen",))}


def _expected_versions(old: str, new: str) -> dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """name → (kind, old tables, new tables) for every entry that must be reported, and only those."""
    out = {}
    for names, pos in ((SHORT, 0), ((RUST,), 1)):
        a, b = TABLES[old][pos], TABLES[new][pos]
        for n in names:
            if a == b:
                continue
            kind = "appeared" if not a else "disappeared" if not b else "moved"
            out[n] = (kind, a, b)
    return out


#: Section header fields in the order :func:`_elf_sections` gives them, named as the diff names them.
ELF_FIELDS = ("type", "flags", "size", "addralign", "entsize")


def _elf_sections(path: Path) -> dict[str, tuple]:
    """name → (type, flags, size, addralign, entsize), read by pyelftools."""
    elf = ELFFile(io.BytesIO(path.read_bytes()))
    return {s.name: (s["sh_type"], s["sh_flags"], s["sh_size"], s["sh_addralign"], s["sh_entsize"])
            for s in elf.iter_sections() if s.name}


FORMAT_PAIRS = [("basic", "basic+ext"), ("basic", "ext-only"), ("basic+ext", "ext-only"), ("basic", "none"),
                ("none", "basic+ext"), ("basic", "varlen"), ("ext-only", "basic")]


@pytest.mark.parametrize("old,new", FORMAT_PAIRS, ids=[f"{a}->{b}" for a, b in FORMAT_PAIRS])
def test_format_pair_names_every_change_and_nothing_else(old, new):
    a, b = FIX / f"{old}.ko", FIX / f"{new}.ko"
    d = diff_modules(parse_module(str(a)), parse_module(str(b)))

    got = {v.name: (v.kind, tuple(t for t, _ in v.old), tuple(t for t, _ in v.new)) for v in d.versions}
    assert got == _expected_versions(old, new)
    for v in d.versions:  # one CRC per symbol across the fixtures: a move never changes it
        assert len({c for _, c in v.old} | {c for _, c in v.new}) == 1

    ea, eb = _elf_sections(a), _elf_sections(b)
    assert {s.name for s in d.sections if s.kind == "added"} == eb.keys() - ea.keys()
    assert {s.name for s in d.sections if s.kind == "removed"} == ea.keys() - eb.keys()
    changed = {n for n in ea.keys() & eb.keys() if ea[n] != eb[n]}
    assert {s.name for s in d.sections if s.kind == "changed"} == changed
    assert not [s for s in d.sections if s.kind == "renamed" or "order" in s.fields]
    for s in d.sections:
        if s.kind == "changed":
            assert s.fields == tuple(f for i, f in enumerate(ELF_FIELDS) if ea[s.name][i] != eb[s.name][i])

    keys = {"description", "alias", "srcversion", "name"} | ({"vermagic"} if RELEASE[old] != RELEASE[new] else set())
    assert {m.key for m in d.modinfo} == keys
    alias = next(m for m in d.modinfo if m.key == "alias")
    assert len(alias.added) == len(alias.removed) == 1  # the pci: alias; the of: alias is shared
    assert d.imports_added == ((RUST,) if old == "basic" else ())
    assert d.imports_removed == ((RUST,) if new == "basic" else ())
    assert [(x.field, x.old, x.new) for x in d.attributes] == [("modversions_format", old, new)]
    assert d.exports == ()


def test_format_pair_consumer_effects_and_exit_codes():
    def diff(a: str, b: str):
        return diff_modules(parse_module(str(FIX / f"{a}.ko")), parse_module(str(FIX / f"{b}.ko")))

    d = diff("basic", "ext-only")  # a pre-6.14 kernel sees no versions at all: refuses
    effects = {c.consumer: (c.old.verdict, c.new.verdict, c.effect) for c in d.consumers}
    assert effects["kernel-6.13"] == ("loads", "refuses", "breaks")
    assert effects["kmod34"] == ("ok", "false-mismatch", "breaks")
    assert "kernel-6.14" not in effects  # reads the extended tables: nothing changes for it
    assert exit_status(d) == EXIT_CHANGE | EXIT_INCOMPATIBLE

    d = diff("ext-only", "basic")  # the way back improves every consumer: a change, not a break
    assert {c.effect for c in d.consumers} == {"improves"}
    assert exit_status(d) == EXIT_CHANGE
    assert exit_status(diff("basic", "basic")) == EXIT_SAME


# -- fixture builders -------------------------------------------------------------------------------


def patched_export_crc(path: Path, symbol: str, crc: int) -> bytes:
    """The module with one __kcrctab* entry rewritten (found by its old value, which must be unique)."""
    rec = parse_module(str(path))
    data = bytearray(path.read_bytes())
    old = next(x.crc for x in rec.exports if x.name == symbol).to_bytes(4, rec.elf.endian)
    hits = []
    for name in ("__kcrctab", "__kcrctab_gpl"):
        s = rec.section(name)
        if s is not None:
            hits += [s.offset + i for i in range(0, s.size, 4) if data[s.offset + i:s.offset + i + 4] == old]
    assert len(hits) == 1
    data[hits[0]:hits[0] + 4] = crc.to_bytes(4, rec.elf.endian)
    return bytes(data)


def patched_modinfo(path: Path, key: str, value: str) -> bytes:
    """The module with one .modinfo value replaced by another of the same length."""
    data = path.read_bytes()
    old = re.search(rb"\0" + key.encode() + rb"=([^\0]*)\0", data)
    assert old is not None and len(old.group(1)) == len(value)
    return data[:old.start(1)] + value.encode() + data[old.end(1):]


def make_tree(root: Path, files: dict[str, bytes], kernel: dict[str, int]) -> Path:
    """ROOT/lib/modules/KVER/kernel/<files> and the kernel's Module.symvers where the report finds it."""
    mods = root / "lib" / "modules" / KVER / "kernel"
    mods.mkdir(parents=True)
    for name, data in files.items():
        (mods / name).write_bytes(data)
    headers = root / "usr" / "src" / f"linux-headers-{KVER}"
    headers.mkdir(parents=True)
    (headers / "Module.symvers").write_text("".join(f"0x{crc:08x}\t{n}\tvmlinux\tEXPORT_SYMBOL\t\n"
                                                    for n, crc in kernel.items()))
    return root


def kernel_exports() -> dict[str, int]:
    """The importers' kernel imports (the Rust one included) with the CRCs they recorded: a kernel they
    were built against."""
    rec = parse_module(str(FIX / "ext-only.ko"))
    return {m.name: m.crc for m in rec.ext_versions.entries if m.name not in ("short_sym", "ns_sym")}


NEW_CRC = 0x12345678
SHF_INFO_LINK = 0x40


def test_export_crc_pair_names_only_that_export(tmp_path):
    new = tmp_path / "exports-rel.ko"
    new.write_bytes(patched_export_crc(FIX / "exports-rel.ko", "short_sym", NEW_CRC))
    d = diff_modules(parse_module(str(FIX / "exports-rel.ko")), parse_module(str(new)))
    assert [(x.name, x.kind, x.fields, x.incompatible) for x in d.exports] == [("short_sym", "changed", ("crc",), True)]
    assert d.exports[0].old.crc == 0xAF2D4D78 and d.exports[0].new.crc == NEW_CRC
    assert not (d.sections or d.versions or d.modinfo or d.imports_added or d.imports_removed or d.attributes
                or d.consumers)
    assert exit_status(d) == EXIT_CHANGE | EXIT_INCOMPATIBLE


@pytest.mark.parametrize("change,status", [
    ({"gpl_only": True}, EXIT_CHANGE | EXIT_INCOMPATIBLE),  # non-GPL importers stop resolving it
    ({"namespace": "OTHER_NS"}, EXIT_CHANGE | EXIT_INCOMPATIBLE),  # importers lack MODULE_IMPORT_NS(OTHER_NS)
    ({"crc": None}, EXIT_CHANGE),  # built without MODVERSIONS: nothing is checked any more
])
def test_export_flag_changes(change, status):
    old = parse_module(str(FIX / "exports-rel.ko"))
    exports = tuple(x._replace(**change) if x.name == "short_sym" else x for x in old.exports)
    d = diff_modules(old, replace(old, exports=exports))
    assert [(x.name, x.fields) for x in d.exports] == [("short_sym", tuple(change))]
    assert exit_status(d) == status
    back = diff_modules(replace(old, exports=exports), old)  # the reverse only relaxes, except a CRC coming back
    assert exit_status(back) == (EXIT_CHANGE | EXIT_INCOMPATIBLE if "crc" in change else EXIT_CHANGE)


def test_modinfo_only_change_is_compatible(tmp_path):
    p = tmp_path / "basic.ko"
    p.write_bytes(patched_modinfo(FIX / "basic.ko", "srcversion", "0" * 23))
    d = diff_modules(parse_module(str(FIX / "basic.ko")), parse_module(str(p)))
    assert [(m.key, m.old, m.new) for m in d.modinfo] == [("srcversion", ("ACC4E8D775601F339B38609",), ("0" * 23,))]
    assert not (d.sections or d.versions or d.exports or d.consumers)
    assert exit_status(d) == EXIT_CHANGE


def _sec(i: int, name: str, size: int, type_: int = SHT_PROGBITS, flags: int = SHF_ALLOC, align: int = 8,
         entsize: int = 0) -> Section:
    return Section(i, name, type_, flags, 0, 0x40 * i, size, 0, 0, align, entsize)


def test_section_renames_reorders_and_field_changes():
    null = Section(0, "", 0, 0, 0, 0, 0, 0, 0, 0, 0)
    rela = {"type_": SHT_RELA, "flags": SHF_INFO_LINK, "entsize": 24}
    old = [null, _sec(1, ".text", 96, flags=SHF_ALLOC | SHF_EXECINSTR, align=16), _sec(2, "__old_name", 24, align=4),
           _sec(3, ".data", 8, flags=SHF_ALLOC | SHF_WRITE), _sec(4, ".bss", 8, type_=SHT_NOBITS),
           _sec(5, "__gone", 0), _sec(6, ".x", 4), _sec(7, ".x", 4), _sec(8, ".rela__old_name", 48, **rela),
           _sec(9, ".rela.gone_target", 72, **rela)]
    new = [null, _sec(1, ".data", 8, flags=SHF_ALLOC | SHF_WRITE, align=16),
           _sec(2, ".text", 96, flags=SHF_ALLOC | SHF_EXECINSTR, align=16), _sec(3, "__new_name", 24, align=4),
           _sec(4, ".bss", 8, type_=SHT_PROGBITS, flags=SHF_ALLOC | SHF_WRITE, entsize=4), _sec(5, "__fresh", 0),
           _sec(6, ".x", 4), _sec(7, ".rela__new_name", 72, **rela), _sec(8, ".rela.fresh_target", 72, **rela)]
    got = {(c.kind, c.name): c.fields for c in diff_sections(old, new)}
    assert got == {
        ("changed", ".data"): ("addralign", "order"),  # the one section that moved: only it says "order"
        ("renamed", "__new_name"): (),  # same type, flags, size, alignment: renamed-looking
        ("renamed", ".rela__new_name"): ("size",),  # follows its target's rename
        ("changed", ".bss"): ("type", "flags", "entsize"),
        ("added", "__fresh"): (),  # empty sections are never paired as renames
        ("removed", "__gone"): (),
        ("removed", ".x"): (),  # the second of two same-named sections
        ("added", ".rela.fresh_target"): (),  # identical to .rela.gone_target, but relocating something else
        ("removed", ".rela.gone_target"): (),
    }


def test_dependency_diff_cycles_lines_and_unresolved():
    old = DepFacts({"a": ("b",), "b": (), "c": ("a", "b")}, (("x", "y"),), (("a", "foo", False),))
    new = DepFacts({"a": ("b", "d"), "b": (), "c": ("b", "a"), "d": ()}, (("a", "d"),),
                   (("a", "foo", False), ("c", "bar", False), ("c", "baz", True)))
    d = diff_dependencies(old, new)
    assert [(c.module, c.added, c.removed) for c in d.dep_changed] == [("a", ("d",), ()), ("c", (), ())]
    assert d.new_cycles == (("a", "d"),) and d.resolved_cycles == (("x", "y"),)
    assert d.newly_unresolved == (("c", "bar", False), ("c", "baz", True))
    assert diff_dependencies(old, new, unresolved_checked=False).newly_unresolved == ()


# -- trees --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crc_trees(tmp_path_factory):
    """OLD: importer + exporter. NEW: the same importer file, the exporter with short_sym's CRC changed,
    and a new ext-only importer that also records the old CRC (neither importer was rebuilt)."""
    base = tmp_path_factory.mktemp("trees")
    imp, exp = (FIX / "basic.ko").read_bytes(), (FIX / "exports-rel.ko").read_bytes()
    old = make_tree(base / "old", {"basic.ko": imp, "exports-rel.ko": exp}, kernel_exports())
    new = make_tree(base / "new", {"basic.ko": imp, "ext-only.ko": (FIX / "ext-only.ko").read_bytes(),
                                   "exports-rel.ko": patched_export_crc(FIX / "exports-rel.ko", "short_sym", NEW_CRC)},
                    kernel_exports())
    return old, new


def test_tree_diff_with_one_changed_module_names_it_first(tmp_path, capsys):
    imp, exp = (FIX / "basic.ko").read_bytes(), (FIX / "exports-rel.ko").read_bytes()
    old = make_tree(tmp_path / "old", {"basic.ko": imp, "exports-rel.ko": exp}, kernel_exports())
    new = make_tree(tmp_path / "new", {"basic.ko": imp, "exports-rel.ko": patched_export_crc(
        FIX / "exports-rel.ko", "short_sym", NEW_CRC)}, kernel_exports())
    assert main(["diff", str(old), str(new)]) == 12
    head = "\n".join(capsys.readouterr().out.splitlines()[:20])
    assert "Changed modules (1): exports_rel." in head  # the module that changed
    assert "Modules that break (1): basic." in head  # and the one that breaks, old build on the new CRC
    doc = to_json(diff_trees(load_tree(str(old), KVER), load_tree(str(new), KVER), jobs=1))
    jsonschema.validate(doc, SCHEMA)
    assert [b["module"] for b in doc["breaks"]] == ["basic"] and "kernel-6.14: loads → refuses" in \
        doc["breaks"][0]["why"]
    assert doc["context"] == {"arch": None, "kernel_modversions": None, "notes": []}


def test_tree_diff_of_unlike_trees_says_so_and_counts_no_break(tmp_path):
    """Different machines, or a kernel with and one without MODVERSIONS: said at the top; the consumer
    verdicts and CRCs that follow from it are not breaks."""
    arm = MODULES / "arm"
    files = ("basic.ko", "exports-rel.ko")
    x86 = make_tree(tmp_path / "x86", {f: (FIX / f).read_bytes() for f in files}, kernel_exports())
    armt = make_tree(tmp_path / "arm", {f: (arm / f).read_bytes() for f in files}, kernel_exports())
    doc = to_json(diff_trees(load_tree(str(x86), KVER), load_tree(str(armt), KVER), jobs=1))
    jsonschema.validate(doc, SCHEMA)
    assert doc["context"]["arch"] == {"old": "EM_X86_64", "new": "EM_ARM"}
    assert doc["headlines"][0].startswith("Different architectures (EM_X86_64 → EM_ARM)")
    assert doc["breaks"] == [] and doc["status"]["exit_code"] == 4 and doc["status"]["reasons"] == []
    assert diff_render.text(doc).splitlines()[1].startswith("Different architectures")

    def without_modversions(path: Path) -> bytes:
        data = path.read_bytes()
        return data.replace(b" modversions ", b"             ")  # vermagic without the token, same length

    plain = make_tree(tmp_path / "plain", {f: without_modversions(FIX / f) for f in files}, kernel_exports())
    doc = to_json(diff_trees(load_tree(str(x86), KVER), load_tree(str(plain), KVER), jobs=1))
    jsonschema.validate(doc, SCHEMA)
    assert doc["context"]["kernel_modversions"] == {"old": True, "new": False}
    assert doc["headlines"][0].startswith("Different MODVERSIONS settings (old kernel with, new without)")
    assert not any(b["why"].startswith("kernel") for b in doc["breaks"])


def test_tree_diff_export_crc_change(crc_trees):
    old, new = crc_trees
    d = diff_trees(load_tree(str(old), KVER), load_tree(str(new), KVER), jobs=1)
    assert d.added == (("ext_only", "kernel/ext-only.ko"),) and d.removed == ()
    k = d.kabi
    assert k.kernel_compared
    assert [(c.name, c.kind, c.fields) for c in k.changes] == [("short_sym", "changed", ("crc",))]
    c = k.changes[0]
    assert (c.old.crc, c.new.crc, c.exporter) == (0xAF2D4D78, NEW_CRC, "exports_rel")
    assert set(c.importers) == {"basic", "ext_only"}  # the NEW tree's importers
    assert c.old_builds_failing == ("basic",)
    assert set(c.failing_now) == {"basic", "ext_only"}  # neither was rebuilt against the new CRC
    assert [(g.exports, set(g.importers)) for g in k.groups] == [(("short_sym",), {"basic", "ext_only"})]
    eff = {e.consumer: (e.modules, dict(e.effects), dict(e.verdicts)) for e in k.effects}
    assert eff["kernel-6.14"] == (1, {"breaks": 1}, {"refuses": 1})
    assert eff["kmod34"] == (1, {"warns": 1}, {"ok": 1})  # depmod -E: "disagrees about version of symbol"
    by_name = {m.name: m for m in d.modules}
    assert not by_name["basic"].file_changed  # same file, read differently against the new exporter
    assert {c.consumer: c.effect for c in by_name["basic"].consumers}["kernel-6.14"] == "breaks"
    assert by_name["exports_rel"].file_changed and not by_name["exports_rel"].sections
    assert d.dependencies.dep_changed == () and d.dependencies.newly_unresolved == ()
    assert exit_status(d) == EXIT_CHANGE | EXIT_INCOMPATIBLE

    doc = to_json(d)
    jsonschema.validate(doc, SCHEMA)
    assert doc["status"] == {"exit_code": 12, "changed": True, "incompatible": True, "reasons": list(d.breaking)}
    assert doc["totals"]["modules_changed"] == 1 and doc["totals"]["modules_affected"] == 1
    txt = diff_render.text(doc)
    for needle in ("short_sym", "0xaf2d4d78", "0x12345678", "exports_rel", "Incompatible (exit status 12)"):
        assert needle in txt
    md = diff_render.markdown(doc)
    assert "## kABI: exports" in md and "| short_sym " in md


def test_tree_diff_exporter_removed(tmp_path):
    imp = (FIX / "basic.ko").read_bytes()
    old = make_tree(tmp_path / "old", {"basic.ko": imp, "exports-rel.ko": (FIX / "exports-rel.ko").read_bytes()},
                    kernel_exports())
    new = make_tree(tmp_path / "new", {"basic.ko": imp}, kernel_exports())
    d = diff_trees(load_tree(str(old), KVER), load_tree(str(new), KVER), jobs=1)
    assert d.removed == (("exports_rel", "kernel/exports-rel.ko"),)
    removed = {c.name: c for c in d.kabi.changes}
    assert set(removed) == {"short_sym", "ns_sym", "gpl_sym",
                            "_RNvCs7Fz3hV9gT2k_12kmc_exporter29kmc_rust_exported_long_symbol"}
    assert all(c.kind == "removed" and c.incompatible for c in removed.values())
    assert removed["short_sym"].importers == ("basic",) and removed["short_sym"].failing_now == ("basic",)
    assert removed["gpl_sym"].importers == ()
    deps = d.dependencies
    assert [(c.module, c.removed) for c in deps.dep_changed] == [("basic", ("exports_rel",))]
    assert {(m, s) for m, s, _ in deps.newly_unresolved} == {("basic", "short_sym"), ("basic", "ns_sym")}
    assert exit_status(d) == EXIT_CHANGE | EXIT_INCOMPATIBLE
    jsonschema.validate(to_json(d), SCHEMA)


def test_tree_rebuilt_with_extended_versions_groups_by_cause(tmp_path):
    """The same tree rebuilt BASIC → BASIC+EXTENDED: the patterns say so once, not per module."""
    files_old = {f"m{i}.ko": (FIX / "basic.ko").read_bytes() for i in range(3)}
    files_new = {f"m{i}.ko": (FIX / "basic+ext.ko").read_bytes() for i in range(3)}
    ks = kernel_exports()
    d = diff_trees(load_tree(str(make_tree(tmp_path / "o", files_old, ks)), KVER),
                   load_tree(str(make_tree(tmp_path / "n", files_new, ks)), KVER), jobs=1)
    pats = {(p.area, p.change, p.subject): p for p in d.patterns}
    moved = pats[("versions", "moved", "basic → basic+ext")]
    assert (moved.modules, moved.count) == (3, 3 * len(SHORT))
    assert pats[("versions", "appeared", "- → ext")].details == ((RUST, 3),)
    assert pats[("section", "added", "__version_ext_crcs")].modules == 3
    assert pats[("attribute", "changed", "modversions_format")].details == (("basic → basic+ext", 3),)
    assert pats[("consumer", "breaks", "kmod34")].modules == 3  # false "disagrees" warnings for the Rust import
    assert d.kabi.changes == ()
    assert exit_status(d) == EXIT_CHANGE | EXIT_INCOMPATIBLE


def test_tree_identical_is_exit_zero(tmp_path):
    files = {"basic.ko": (FIX / "basic.ko").read_bytes(), "exports-rel.ko": (FIX / "exports-rel.ko").read_bytes()}
    a = make_tree(tmp_path / "a", files, kernel_exports())
    b = make_tree(tmp_path / "b", files, kernel_exports())
    d = diff_trees(load_tree(str(a), KVER), load_tree(str(b), KVER), jobs=1)
    assert exit_status(d) == EXIT_SAME and d.unchanged == 2 and not d.modules
    assert main(["diff", str(a), str(b)]) == EXIT_SAME


# -- CLI ------------------------------------------------------------------------------------------------


def test_cli_exit_codes_and_formats(crc_trees, tmp_path, capsys):
    old, new = crc_trees
    assert main(["diff", str(FIX / "basic.ko"), str(FIX / "basic.ko")]) == 0
    capsys.readouterr()
    p = tmp_path / "basic.ko"
    p.write_bytes(patched_modinfo(FIX / "basic.ko", "srcversion", "1" * 23))
    assert main(["diff", str(FIX / "basic.ko"), str(p)]) == 4
    capsys.readouterr()
    assert main(["diff", "--format", "json", str(old), str(new)]) == 12
    doc = json.loads(capsys.readouterr().out)
    jsonschema.validate(doc, SCHEMA)
    assert doc["kind"] == "trees" and doc["kabi"]["changes"][0]["name"] == "short_sym"
    assert main(["diff", "-b", str(old), "-b", str(new), "--format", "markdown", KVER, KVER]) == 12
    assert "# kmodcompat diff:" in capsys.readouterr().out
    assert main(["diff", "--format", "html", str(old), str(new)]) == 12
    assert capsys.readouterr().out.startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("argv,status,message", [
    (["MISSING", "basic.ko"], 2, "missing.ko: no such file or directory"),
    (["basic.ko", "TREE"], 2, "is a module but"),
    (["notelf.ko", "basic.ko"], 1, "notelf.ko: not an ELF file"),
    (["-b", "/", "-b", "/", "-b", "/", "a", "b"], 2, "once (both trees) or twice"),
    (["--old-symvers", "nope", "basic.ko", "basic.ko"], 2, "apply to trees only"),
])
def test_cli_errors_are_one_line(argv, status, message, crc_trees, capsys):
    old, _ = crc_trees
    names = {"TREE": str(old), "MISSING": str(FIX / "missing.ko")}
    fixed = [names.get(a, str(FIX / a) if a.endswith(".ko") else a) for a in argv]
    assert main(["diff", *fixed]) == status
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("kmodcompat: ")


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb not installed")
def test_cli_debian_packages(crc_trees, tmp_path, capsys):
    """Two .deb files of modules (built with dpkg-deb): unpacked, compared as trees (the image has no symvers:
    the headers package gives it with --old-symvers/--new-symvers)."""
    debs = []
    for side, root in zip(("old", "new"), crc_trees):
        pkg = tmp_path / side
        shutil.copytree(root / "lib", pkg / "usr" / "lib")
        (pkg / "DEBIAN").mkdir()
        (pkg / "DEBIAN" / "control").write_text(f"Package: linux-image-kmc\nVersion: 1.{side == 'new'}\n"
                                                "Architecture: amd64\nMaintainer: t <t@example.org>\n"
                                                "Description: test modules\n")
        deb = tmp_path / f"{side}.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(pkg), str(deb)], check=True,
                       capture_output=True)
        debs.append(str(deb))
    symvers = [str(r / "usr" / "src" / f"linux-headers-{KVER}" / "Module.symvers") for r in crc_trees]
    assert main(["diff", "--format", "json", "--old-symvers", symvers[0], "--new-symvers", symvers[1], *debs]) == 12
    doc = json.loads(capsys.readouterr().out)
    assert doc["old"]["label"] == "linux-image-kmc" and doc["kabi"]["kernel_compared"]  # the package's name
    assert "kmodcompat-packages" not in json.dumps(doc)  # nor the temporary directory anywhere
    assert [c["name"] for c in doc["kabi"]["changes"]] == ["short_sym"]
    assert [m["name"] for m in doc["modules"]["added"]] == ["ext_only"]
    bad = tmp_path / "bad.deb"
    bad.write_bytes(b"not a package")
    assert main(["diff", str(bad), debs[1]]) == 2  # an input that cannot be used
    assert capsys.readouterr().err == f"kmodcompat: {bad}: not a Debian package (bad magic)\n"


def test_html_fragment_embeds_in_the_report(crc_trees):
    old, new = crc_trees
    doc = to_json(diff_trees(load_tree(str(old), KVER), load_tree(str(new), KVER), jobs=1))
    frag = diff_render.html_fragment(doc)
    assert frag.startswith('<section id="diff"') and frag.endswith("</section>")

    class Check(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack: list[str] = []
            self.headings: list[str] = []

        def handle_starttag(self, tag, attrs):
            self.stack.append(tag)
            if tag.startswith("h"):
                self.headings.append(tag)

        def handle_endtag(self, tag):
            assert self.stack.pop() == tag  # well nested

    c = Check()
    c.feed(frag)
    assert c.stack == [] and min(c.headings) == "h2"  # below the report page's <h1>
    assert "short_sym" in frag


# -- real trees -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_diff():
    roots = {}
    for name in ("bookworm-amd64", "trixie-amd64"):
        root = oracle.tree_root(name, fetch=FETCH)
        if root is None:
            pytest.skip(f"tree {name} not under {oracle.REALTREES} (KMODCOMPAT_FETCH_TREES=1 downloads it)")
        roots[name] = root
    old = load_tree(str(roots["bookworm-amd64"]), oracle.tree_krel(roots["bookworm-amd64"]))
    new = load_tree(str(roots["trixie-amd64"]), oracle.tree_krel(roots["trixie-amd64"]))
    d = diff_trees(old, new)
    return old, new, d


def _image(path: str, tmp_path: Path) -> str:
    """A file readelf can read: .ko as is, .ko.xz decompressed."""
    if not path.endswith(".xz"):
        return path
    out = tmp_path / (os.path.basename(path)[:-3])
    out.write_bytes(lzma.decompress(Path(path).read_bytes()))
    return str(out)


def _dump_modversions(path: str) -> dict[str, int]:
    r = oracle.run_kmod("kmod30", "modprobe", ["--dump-modversions", path])
    assert r.status == 0, r.stderr
    return {name: int(crc, 16) for crc, name in (ln.split("\t") for ln in r.stdout.decode().splitlines())}


def _readelf_sections(path: str) -> dict[str, tuple[str, int, int]]:
    """name → (flags letters, size, alignment) from ``readelf -S -W``."""
    out = subprocess.run(["readelf", "-S", "-W", path], capture_output=True, text=True, check=True).stdout
    secs = {}
    for line in out.splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([A-Za-z]*)"
                     r"\s+\d+\s+\d+\s+(\d+)$", line)
        if m:
            secs[m.group(1)] = (m.group(3), int(m.group(2), 16), int(m.group(4)))
    return secs


@pytest.mark.realtree
def test_real_trees_diff_runs_and_adds_up(real_diff):
    old, new, d = real_diff
    doc = to_json(d)
    t = doc["totals"]
    assert t["modules_added"] + t["modules_changed"] + t["modules_affected"] + t["modules_unchanged"] \
        + t["modules_became_unreadable"] == len(new.modules)
    assert t["modules_removed"] + len(new.modules) - t["modules_added"] == len(old.modules)
    k = d.kabi
    assert k.kernel_compared and k.new_exports - k.old_exports == t["exports_added"] - t["exports_removed"]
    assert doc["status"]["exit_code"] == 12  # 6.1 → 6.12: thousands of CRCs changed
    first = doc["modules"]["changed"][:200]  # the schema on a slice (the whole document is tens of MB)
    jsonschema.validate({**doc, "modules": {**doc["modules"], "changed": first}}, SCHEMA)
    summary = oracle.REALTREES / ".oracle" / "diff-bookworm-trixie-amd64.json"
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(json.dumps({"totals": t, "headlines": doc["headlines"]}, indent=1))


@pytest.mark.realtree
def test_real_trees_spot_check_export_crc_against_dump_modversions(real_diff):
    """A module export whose CRC changed: each tree's importer records the CRC the diff reports."""
    old, new, d = real_diff
    if not oracle.kmod_available("kmod30"):
        pytest.skip("kmod 30 modprobe not runnable here")
    ob, nb = old.by_name(), new.by_name()
    change = next(c for c in d.kabi.changes if c.kind == "changed" and "crc" in c.fields
                  and c.old.exporter != "vmlinux" and any(i in ob for i in c.importers))
    importer = next(i for i in change.importers if i in ob)
    assert _dump_modversions(ob[importer].path)[change.name] == change.old.crc
    assert _dump_modversions(nb[importer].path)[change.name] == change.new.crc
    assert importer in change.old_builds_failing


@pytest.mark.realtree
def test_real_trees_spot_check_section_change_against_readelf(real_diff, tmp_path):
    """A section whose alignment changed and one that was added, as readelf sees the two files."""
    old, new, d = real_diff
    ob, nb = old.by_name(), new.by_name()
    m = next(m for m in d.modules if any("addralign" in s.fields for s in m.sections)
             and any(s.kind == "added" for s in m.sections))
    ro = _readelf_sections(_image(ob[m.name].path, tmp_path))
    rn = _readelf_sections(_image(nb[m.name].path, tmp_path))
    s = next(s for s in m.sections if "addralign" in s.fields)
    assert (ro[s.name][2], rn[s.name][2]) == (s.old.addralign, s.new.addralign)
    added = next(s for s in m.sections if s.kind == "added")
    assert added.name not in ro and rn[added.name][1:] == (added.new.size, added.new.addralign)
    assert {x.new.name for x in m.sections if x.kind in ("added", "renamed")} == rn.keys() - ro.keys()
    assert {x.old.name for x in m.sections if x.kind in ("removed", "renamed")} == ro.keys() - rn.keys()


@pytest.mark.realtree
def test_real_trees_spot_check_version_entries_against_dump_modversions(real_diff):
    """A module whose __versions lost and gained entries: exactly those, per modprobe --dump-modversions."""
    old, new, d = real_diff
    if not oracle.kmod_available("kmod30"):
        pytest.skip("kmod 30 modprobe not runnable here")
    ob, nb = old.by_name(), new.by_name()
    m = next(m for m in d.modules if {"appeared", "disappeared", "crc-changed"} <= {v.kind for v in m.versions})
    a, b = _dump_modversions(ob[m.name].path), _dump_modversions(nb[m.name].path)
    kinds = {v.name: v.kind for v in m.versions}
    assert {n for n, k in kinds.items() if k == "disappeared"} == a.keys() - b.keys()
    assert {n for n, k in kinds.items() if k == "appeared"} == b.keys() - a.keys()
    assert {n for n, k in kinds.items() if k == "crc-changed"} == {n for n in a.keys() & b.keys() if a[n] != b[n]}


@pytest.mark.realtree
def test_real_trees_ci_formats(real_diff):
    """bookworm → trixie as JUnit and SARIF: valid against the published schemas, one case per kABI change
    and changed module, failing (error) exactly for the changes the status counts."""
    from kmodcompat.report import ci, junit, sarif

    from .test_ci_formats import check_junit, check_sarif, errors, failing_names

    _, _, d = real_diff
    doc = to_json(d)
    cases = ci.diff_cases(doc)
    top = check_junit(junit.render(cases))
    run = check_sarif(sarif.render(cases))
    changes = doc["kabi"]["changes"]
    breaking = [c for c in changes if c["breaks"]]
    assert doc["status"]["exit_code"] == 12 and run["invocations"][0]["exitCode"] == 12
    assert int(top.get("tests")) == len(changes) + len(doc["modules"]["changed"]) + len(
        doc["modules"]["became_unreadable"]) + len(doc["dependencies"]["new_cycles"]) + len(
        doc["dependencies"]["newly_unresolved"])
    assert int(top.get("failures")) == len(breaking) + len(doc["breaks"]) + len(doc["dependencies"]["new_cycles"]) \
        + sum(1 for u in doc["dependencies"]["newly_unresolved"] if not u["weak"])
    assert len(errors(run)) == int(top.get("failures"))
    assert len(run["results"]) < 25_000  # GitHub code scanning's limit of results per run
    assert {c["name"] for c in breaking} <= failing_names(top)
