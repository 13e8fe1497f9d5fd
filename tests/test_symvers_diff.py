"""diff with a Module.symvers on a side: two Module.symvers (.gz too), a baseline against a tree, a tree
against a baseline; the kABI diff of the tree diff, from the one Module.symvers reader."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import jsonschema
import pytest

from kmodcompat.cli import main
from kmodcompat.report import diff_render
from tests.test_diff import KVER, NEW_CRC, SCHEMA, crc_trees  # noqa: F401  (the fixture)

OLD = """0x11111111\tkfree\tvmlinux\tEXPORT_SYMBOL\t
0x22222222\tgone\tvmlinux\tEXPORT_SYMBOL_GPL\t
0x33333333\tmade_gpl\tvmlinux\tEXPORT_SYMBOL\t
0x44444444\tput_in_ns\tdrivers/net/tun\tEXPORT_SYMBOL\t
0x55555555\tsame\tfs/ext4/ext4\tEXPORT_SYMBOL\t
"""
NEW = """0x11111112\tkfree\tvmlinux\tEXPORT_SYMBOL\t
0x33333333\tmade_gpl\tvmlinux\tEXPORT_SYMBOL_GPL\t
0x44444444\tput_in_ns\tdrivers/net/tun\tEXPORT_SYMBOL\tNET_NS
0x55555555\tsame\tfs/ext4/ext4\tEXPORT_SYMBOL\t
0x66666666\tadded\tvmlinux\tEXPORT_SYMBOL\t
"""


def _run(argv, capsys) -> tuple[int, dict, str]:
    status = main(["diff", "--format", "json", *argv])
    out = capsys.readouterr()
    return status, json.loads(out.out) if out.out.strip() else {}, out.err


def test_two_module_symvers_files(tmp_path, capsys):
    old, new = tmp_path / "old" / "Module.symvers", tmp_path / "symvers-6.99.gz"
    old.parent.mkdir()
    old.write_text(OLD)
    new.write_bytes(gzip.compress(NEW.encode()))  # as /boot/symvers-KVER.gz
    status, doc, err = _run([str(old), str(new)], capsys)
    assert status == 12 and err == ""
    jsonschema.validate(doc, SCHEMA)
    assert doc["kind"] == "kabi" and doc["kabi"]["kernel_compared"]
    changes = {c["name"]: (c["kind"], c["fields"], c["incompatible"]) for c in doc["kabi"]["changes"]}
    assert changes == {"kfree": ("changed", ["crc"], True), "gone": ("removed", [], True),
                       "made_gpl": ("changed", ["gpl_only"], True), "put_in_ns": ("changed", ["namespace"], True),
                       "added": ("added", [], False)}
    assert {c["name"]: c["old"]["exporter"] for c in doc["kabi"]["changes"] if c["old"]}["put_in_ns"] == "tun"
    txt = diff_render.text(doc)
    assert "Incompatible (exit status 12)" in txt and "0x11111112" in txt and "Modules:" not in txt
    assert main(["diff", str(old), str(old)]) == 0
    assert "No difference." in capsys.readouterr().out


def _baseline(tree: Path, out: Path, capsys) -> Path:
    """What RHEL and Ubuntu keep in git: the kernel's Module.symvers, its vmlinux lines and the modules'."""
    assert main(["symvers", "--modules-only", str(tree)]) == 0
    modules = capsys.readouterr().out
    vmlinux = (tree / "usr" / "src" / f"linux-headers-{KVER}" / "Module.symvers").read_text()
    out.write_text(vmlinux + modules)
    return out


def test_tree_against_baseline_and_back(crc_trees, tmp_path, capsys):  # noqa: F811
    old, new = crc_trees
    baseline = _baseline(old, tmp_path / "Module.symvers", capsys)
    status, doc, _ = _run([str(old), str(baseline)], capsys)
    assert status == 0 and doc["kabi"]["changes"] == []  # a tree against its own Module.symvers: the same
    status, doc, _ = _run([str(baseline), str(new)], capsys)
    jsonschema.validate(doc, SCHEMA)
    assert status == 12 and doc["new"]["kernel_release"] == KVER
    (c,) = [c for c in doc["kabi"]["changes"] if c["kind"] != "added"]
    assert (c["name"], c["fields"], c["old"]["crc"], c["new"]["crc"]) == ("short_sym", ["crc"], 0xAF2D4D78, NEW_CRC)
    assert set(c["importers"]) == {"basic", "ext_only"} and set(c["failing_now"]) == {"basic", "ext_only"}
    # The same change as the tree diff's kABI part.
    status, trees, _ = _run([str(old), str(new)], capsys)
    assert [x for x in trees["kabi"]["changes"] if x["kind"] != "added"][0]["new"] == c["new"]


def test_symvers_errors_are_one_line(tmp_path, capsys):
    sv = tmp_path / "Module.symvers"
    sv.write_text(OLD)
    bad = tmp_path / "bad.symvers.gz"
    bad.write_bytes(b"not gzip")
    for argv, message in ((["--old-symvers", str(sv), str(sv), str(sv)], "is an operand already"),
                          ([str(bad), str(sv)], f"{bad}: not a gzip file")):
        assert main(["diff", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("kmodcompat: ") and message in err and err.count("\n") == 1


@pytest.mark.realtree
def test_real_headers_symvers_diff_is_the_tree_diff_on_the_kernel_exports(capsys):
    """bookworm's and trixie's linux-headers Module.symvers against the two trees' diff: the same kABI
    changes of the kernel's exports (and of the modules' exports both list)."""
    from tests import oracle

    roots = [oracle.tree_root(n) for n in ("bookworm-amd64", "trixie-amd64")]
    if None in roots:
        pytest.skip("bookworm-amd64 / trixie-amd64 not under $REALTREES")
    files = [str(next((r / "usr" / "src").glob("linux-headers-*/Module.symvers"))) for r in roots]
    s_sv, sv, _ = _run(files, capsys)
    s_tr, tr, _ = _run([str(r) for r in roots], capsys)
    assert s_sv == s_tr == 12

    def kernel(doc):
        return sorted((c["name"], c["kind"], c["fields"], c["old"], c["new"]) for c in doc["kabi"]["changes"]
                      if (c["old"] or c["new"])["exporter"] == "vmlinux")

    assert kernel(sv) == kernel(tr) and len(kernel(sv)) > 1000
