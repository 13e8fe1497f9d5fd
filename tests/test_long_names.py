"""Over-long names before modpost sees them: the report's ``long_names``, ``--fail-on long-names`` and the CI formats.

The expected names are computed here from the struct layout alone (``struct modversion_info``: a 64-byte
record, ``unsigned long crc`` then ``char name[64 - sizeof(unsigned long)]``; modpost's add_versions()
refuses ``strlen(name) >= MODULE_NAME_LEN``) and from the files as text (Module.symvers split on tabs), not
through the code under test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from kmodcompat.cli.report import demo_tree
from kmodcompat.depmod.tree import load_tree
from kmodcompat.report import build_report, schema
from kmodcompat.report import markdown as md_report
from kmodcompat.report.policy import evaluate, outcomes, parse_policy

from . import oracle
from .paths import REPO

#: A C name of 56 characters: one too many for __versions on 64-bit (none of the fixtures has a C one).
C_LONG = "kmc_c_symbol_with_a_name_just_one_character_too_long_xxx"
assert len(C_LONG) == 56


def _module_name_len(elfclass: int) -> int:
    return 64 - elfclass // 8  # MODULE_NAME_LEN


def _expected(tree, symvers: Path) -> tuple[set[str], set[str]]:
    """(exported, imported) names of MODULE_NAME_LEN characters or more, vmlinux's from the Module.symvers text."""
    exported, imported = set(), set()
    elfclass = tree.modules[0].record.elf.elfclass  # vmlinux's importers: the tree's word size
    for m in tree.modules:
        r = m.record
        n = _module_name_len(r.elf.elfclass)
        exported |= {x.name for x in r.exports if len(x.name.encode()) >= n}
        imported |= {i.name for i in r.imports if len(i.name.encode()) >= n}
    for line in symvers.read_text().splitlines():
        fields = line.split("\t")
        if fields[2] == "vmlinux" and len(fields[1].encode()) >= _module_name_len(elfclass):
            exported.add(fields[1])
    return exported, imported


def _copy(tmp_path: Path, drop_long: bool = False, c_export: bool = False) -> tuple[str, str]:
    base, kver = demo_tree()
    root = tmp_path / "tree"
    shutil.copytree(base, root, symlinks=True)
    symvers = next(root.glob("usr/src/*/Module.symvers"))
    lines = symvers.read_text().splitlines(keepends=True)
    if drop_long:  # the modules and the vmlinux export with a long name removed
        tree = load_tree(str(root), kver)
        for m in tree.modules:
            if any(len(x.name) >= 56 for x in (*m.record.imports, *m.record.exports)):
                Path(m.path).unlink()
        lines = [x for x in lines if len(x.split("\t")[1]) < 56]
    if c_export:
        lines.append(f"0x12345678\t{C_LONG}\tvmlinux\tEXPORT_SYMBOL_GPL\t\n")
    symvers.write_text("".join(lines))
    return str(root), kver


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "kmodcompat", *args], capture_output=True, text=True, cwd=REPO)


@pytest.fixture(scope="module")
def demo_doc():
    base, kver = demo_tree()
    return build_report(load_tree(base, kver), jobs=1)


def test_the_report_lists_exactly_the_long_names(demo_doc):
    base, kver = demo_tree()
    tree = load_tree(base, kver)
    exported, imported = _expected(tree, next(Path(base).glob("usr/src/*/Module.symvers")))
    ln = demo_doc["long_names"]
    assert ln["limit"] == 55 and ln["kernel_exports_known"]
    assert {x["name"] for x in ln["exports"]["names"]} == exported and len(exported) == ln["exports"]["total"] == 2
    assert {x["name"] for x in ln["imports"]["names"]} == imported and len(imported) == ln["imports"]["total"] == 1
    # Every one is Rust in the fixtures (v0 mangling), so no C name.
    assert (ln["exports"]["c"], ln["exports"]["rust"], ln["imports"]["c"], ln["imports"]["rust"]) == (0, 2, 0, 1)
    vmlinux = [x for x in ln["exports"]["names"] if x["exporter"] == "vmlinux"]
    assert len(vmlinux) == 1 and vmlinux[0]["path"] is None
    importers = [m.relpath for m in tree.modules if imported & {i.name for i in m.record.imports}]
    assert sorted(ln["imports"]["names"][0]["modules"]) == sorted(importers) and ln["imports"]["modules"] == 6
    assert any("56+ characters" in h and "2 exported, 1 imported (0 C, 2 Rust)" in h for h in demo_doc["headlines"])
    md = md_report.render(demo_doc)
    assert "2 exported (0 C, 2 Rust), 1 imported (0 C, 1 Rust) by 6 module(s)" in md
    jsonschema.validate(demo_doc, schema())


def test_the_report_says_what_the_rpm_requirement_scripts_drop(demo_doc):
    from kmodcompat.ksyms import generate, package

    base, kver = demo_tree()
    tree = load_tree(base, kver)
    symvers = next(Path(base).glob("usr/src/*/Module.symvers")).read_bytes()
    pkgs = [package(tree.kmod, m.record) for m in tree.modules]
    for style in ("suse", "redhat"):
        lines = generate(style, False, pkgs, symvers=symvers)
        k = demo_doc["ksym_requires"][style]
        assert (k["requires"], k["dropped"]) == (sum(not x.added for x in lines), sum(x.added for x in lines))
    # kmc_ext_only's imports and the long Rust one: in the extended tables only, so --dump-modversions drops them.
    assert demo_doc["ksym_requires"]["suse"]["dropped"] > 0
    assert "SUSE 17, 2 dropped; Red Hat 10, 2 dropped" in md_report.render(demo_doc)


def test_c_names_count_apart_and_gate_alone(tmp_path):
    base, kver = _copy(tmp_path, c_export=True)
    doc = build_report(load_tree(base, kver), jobs=1)
    jsonschema.validate(doc, schema())
    e = doc["long_names"]["exports"]
    assert (e["total"], e["c"], e["rust"]) == (3, 1, 2) and e["names"][-1]["name"] == C_LONG  # longest first
    assert evaluate(parse_policy("long-names:c"), doc) == [
        "1 C symbol name(s) of 56+ characters, too long for a BASIC-only build (1 exported, 0 imported)"]
    [o] = outcomes(parse_policy("long-names:c"), doc)
    assert [(h.path, h.module) for h in o.hits] == [(None, "vmlinux")] and C_LONG in o.hits[0].reason
    assert evaluate(parse_policy("long-names"), doc)[0].startswith("3 symbol name(s)")


def test_a_tree_without_long_names_says_so_quietly(tmp_path):
    base, kver = _copy(tmp_path, drop_long=True)
    doc = build_report(load_tree(base, kver), jobs=1)
    jsonschema.validate(doc, schema())
    ln = doc["long_names"]
    assert ln["exports"]["total"] == ln["imports"]["total"] == 0 and doc["counts"]["modules"] == 3
    assert not any("56+" in h for h in doc["headlines"])
    assert "No exported or imported symbol name over 55 characters: a BASIC-only build has none to refuse." \
        in md_report.render(doc)
    assert evaluate(parse_policy("long-names"), doc) == []
    p = _cli("report", "-b", base, kver, "--out", str(tmp_path / "r"), "--fail-on", "long-names", "--format", "junit")
    assert p.returncode == 0, p.stderr
    assert "<failure" not in p.stdout and 'name="long-names"' in p.stdout


def test_policy_terms():
    assert parse_policy("long-names,long-names:c,long-names:rust")[1] == ("long-names", "c", None)
    for bad in ("long-names:x", "long-names@basic", "long-names:c@ext-only"):
        with pytest.raises(ValueError):
            parse_policy(bad)


def test_fail_on_long_names_exits_1_and_the_ci_formats_carry_each_module(tmp_path):
    base, kver = demo_tree()
    p = _cli("report", "-b", base, kver, "--out", str(tmp_path / "r"), "--fail-on", "long-names", "--format", "sarif")
    assert p.returncode == 1 and "breaks: 2 symbol name(s) of 56+ characters" in p.stderr, p.stderr
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    sarif = json.loads(p.stdout)
    results = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == "long-names"]
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    importers = set(doc["long_names"]["imports"]["names"][0]["modules"])
    exporters = {x["path"] for x in doc["long_names"]["exports"]["names"] if x["path"]}
    assert importers | exporters | {"modules.dep"} == uris  # vmlinux's export: at the tree's index
    assert all(r["level"] == "error" for r in results)
    p = _cli("report", "-b", base, kver, "--out", str(tmp_path / "r"), "--fail-on", "long-names:c", "--format", "junit")
    assert p.returncode == 0, p.stderr  # no C name in the demo tree
    p = _cli("report", "-b", base, kver, "--out", str(tmp_path / "r"), "--fail-on", "long-names", "--format", "junit")
    assert p.returncode == 1
    for path in importers | exporters:
        case = p.stdout[p.stdout.index(f'name="{path}"'):]
        assert case[:case.index("</testcase>")].count("<failure") == 1


@pytest.mark.realtree
@pytest.mark.parametrize("name", sorted(oracle.TREES))
def test_real_trees_long_names(name):
    """Debian's trees are BASIC-only builds: no import can be long, and (measured) no export is either;
    the longest names are 52-55 characters (trixie armmp's drm_atomic_helper_connector_hdmi_update_audio_infoframe:
    55, which would fit even on 64-bit)."""
    from kmodcompat.files.kernel import kernel_source
    from kmodcompat.report import long_names

    root = oracle.tree_root(name, fetch=os.environ.get("KMODCOMPAT_FETCH_TREES") == "1")
    if root is None:
        pytest.skip(f"tree {name} not available")
    tree = load_tree(str(root), oracle.tree_info(root)["krel"])
    source = kernel_source(tree.dirname, tree.kver)
    ln = long_names([(m.path, m.record) for m in tree.modules], tree, source)
    exported, imported = _expected(tree, Path(source.path))  # Debian's headers: a plain Module.symvers
    assert {x["name"] for x in ln["exports"]["names"]} == exported
    assert {x["name"] for x in ln["imports"]["names"]} == imported
    assert ln["kernel_exports_known"] and ln["exports"]["total"] == ln["imports"]["total"] == 0
    # Nothing only in the extended tables (a BASIC-only build): the RPM scripts drop nothing (trixie amd64:
    # 19,805 requirement lines from each).
    from kmodcompat.ksyms import dropped_counts

    counts = dropped_counts(tree.kmod, [m.record for m in tree.modules], Path(source.path).read_bytes())
    assert counts["suse"]["dropped"] == counts["redhat"]["dropped"] == 0 and counts["suse"]["requires"] > 10_000
