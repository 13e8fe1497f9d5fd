"""Where the kernel's exports come from (files/kernel.py kernel_source) and what the report makes of unknowns.

The trees are the diff tests' (fixture modules importing kernel symbols); the
kernel's side is given as a Module.symvers, a boot image made to the kernel's
layout (tests/kernel_images.py), Debian's placeholder System.map, a real one,
or nothing.
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

from kmodcompat.depmod.tree import load_tree
from kmodcompat.files.kernel import KernelSourceError, kernel_source
from kmodcompat.report import MODULES_LISTED, NAMES_PER_MODULE, build_report, schema, unresolved_imports

from . import kernel_images as ki
from . import oracle
from .test_diff import FIX, KVER, kernel_exports, make_tree
from .paths import REPO

PLACEHOLDER = "ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n"


def _tree(tmp_path: Path, *, symvers: bool = False, image: bool = False, system_map: str | None = None) -> Path:
    root = make_tree(tmp_path / "t", {"ext-only.ko": (FIX / "ext-only.ko").read_bytes(),
                                      "basic.ko": (FIX / "basic.ko").read_bytes()}, kernel_exports())
    if not symvers:
        shutil.rmtree(root / "usr" / "src")
    boot = root / "boot"
    boot.mkdir()
    if image:
        syms = [ki.Sym(n, crc, False, "") for n, crc in kernel_exports().items()]
        (boot / f"vmlinuz-{KVER}").write_bytes(ki.bzimage(ki.compress("gzip", ki.vmlinux(syms, ki.Layout(True, 4, True)))))
    if system_map is not None:
        (boot / f"System.map-{KVER}").write_text(system_map)
    return root


def _moddir(root: Path) -> str:
    return str(root / "lib" / "modules" / KVER)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kmodcompat", *args], capture_output=True, text=True, cwd=REPO,
                          env=oracle.ENV, timeout=120)


def test_order_symvers_then_image_then_system_map(tmp_path):
    real_map = "".join(f"ffffffff81000000 r __ksymtab_{n}\n" for n in kernel_exports())
    root = _tree(tmp_path, symvers=True, image=True, system_map=real_map)
    assert kernel_source(_moddir(root), KVER).kind == "Module.symvers"
    shutil.rmtree(root / "usr" / "src")
    src = kernel_source(_moddir(root), KVER)
    assert (src.kind, src.crcs, src.gpl_flags, src.count) == ("boot image", True, True, len(kernel_exports()))
    assert dict((n, c) for n, c, _ in src.symbols.symbols) == kernel_exports() and src.symbols.check_symvers
    assert "with CRCs, GPL-only flags and namespaces" in src.line()
    os.unlink(root / "boot" / f"vmlinuz-{KVER}")
    src = kernel_source(_moddir(root), KVER)
    assert (src.kind, src.crcs, src.symbols.check_symvers) == ("System.map", False, False)
    assert src.line().endswith("no CRCs, no GPL-only flags, no namespaces")
    assert src.expected([]) is None


@pytest.mark.parametrize("content, why", [(PLACEHOLDER, "Debian's placeholder"), ("", "empty"),
                                          ("ffffffff81000000 T printk\n", "no __ksymtab_ symbol")])
def test_a_placeholder_or_empty_system_map_is_nothing(tmp_path, content, why):
    src = kernel_source(_moddir(_tree(tmp_path, system_map=content)), KVER)
    assert not src.known and src.kind is None and len(src.notes) == 1 and why in src.notes[0]
    assert src.line().startswith("kernel exports unknown (") and "not checkable" in src.line()


def test_a_bad_image_found_is_a_note_and_the_next_source_is_taken(tmp_path):
    real_map = "".join(f"ffffffff81000000 r __ksymtab_{n}\n" for n in kernel_exports())
    root = _tree(tmp_path, system_map=real_map)
    (root / "boot" / f"vmlinuz-{KVER}").write_bytes(b"\x1f\x8b" + b"\0" * 100)
    src = kernel_source(_moddir(root), KVER)
    assert src.kind == "System.map" and len(src.notes) == 1 and src.notes[0].startswith(str(root / "boot"))


def test_named_sources_that_fail_are_errors_not_fallbacks(tmp_path):
    root = _tree(tmp_path, image=True)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(KernelSourceError, match="not a regular file"):
        kernel_source(_moddir(root), KVER, image=str(fifo))  # refused without blocking on the FIFO
    with pytest.raises(KernelSourceError, match="Debian's placeholder"):
        (tmp_path / "map").write_text(PLACEHOLDER)
        kernel_source(_moddir(root), KVER, system_map=str(tmp_path / "map"))
    notakernel = tmp_path / "x"
    notakernel.write_bytes(b"\0" * 4096)
    run = _cli("report", _moddir(root), "--kernel-image", str(notakernel), "--out", str(tmp_path / "o"),
               "--no-cache", "-j", "1")
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "not a kernel image" in run.stderr


def test_report_from_the_boot_image_equals_the_report_from_module_symvers(tmp_path):
    by_symvers = build_report(load_tree(_moddir(_tree(tmp_path / "a", symvers=True)), None), jobs=1)
    by_image = build_report(load_tree(_moddir(_tree(tmp_path / "b", image=True, system_map=PLACEHOLDER)), None),
                            jobs=1)
    jsonschema.validate(by_image, schema())
    assert by_image["tree"]["kernel_exports"]["source"] == "boot image"
    assert by_image["consumers"]["exporter_crcs"] == "tree"
    assert by_image["consumers"]["totals"] == by_symvers["consumers"]["totals"]
    assert by_image["graph"]["unresolved"] == by_symvers["graph"]["unresolved"]
    assert {x["symbol"] for x in by_image["graph"]["unresolved"]["symbols"]} == {"short_sym", "ns_sym"}
    assert by_image["graph"]["not_checkable"]["total"] == 0


def test_unknown_kernel_exports_are_not_checkable_never_unresolved(tmp_path):
    root = _tree(tmp_path, system_map=PLACEHOLDER)
    doc = build_report(load_tree(_moddir(root), None), jobs=1)
    jsonschema.validate(doc, schema())
    g = doc["graph"]
    assert g["unresolved"]["total"] == 0 and g["not_checkable"]["reason"] == "kernel exports unknown"
    # Every import no module exports: the kernel's (which the kernel would have) and the two it would not.
    assert {x["symbol"] for x in g["not_checkable"]["symbols"]} == set(kernel_exports()) | {"short_sym", "ns_sym"}
    assert g["not_checkable"]["modules"] == 2
    assert not any("resolve to no exporter" in h for h in doc["headlines"])
    assert doc["consumers"]["exporter_crcs"] == "module's own"
    run = _cli("report", _moddir(root), "--fail-on", "unresolved", "--out", str(tmp_path / "o"), "--no-cache",
               "-j", "1")
    assert run.returncode == 0, run.stderr
    assert "kmodcompat: kernel exports unknown (" in run.stderr and "placeholder" in run.stderr
    md = (tmp_path / "o" / "report.md").read_text()
    assert "kernel exports unknown" in md and "not checkable" in md
    html = (tmp_path / "o" / "report.html").read_text()
    assert '<p class="small" id="kernel-exports">kernel exports unknown (' in html


def test_import_lists_are_bounded():
    items = [(f"mod{m:04d}", f"sym{s:03d}", s % 7 == 0) for m in range(400) for s in range(60)]
    items += items[:100]  # a module importing a name twice (two tables) counts twice, lists it once
    u = unresolved_imports(items)
    assert (u["total"], u["modules"], u["weak"]) == (24100, 400, sum(1 for *_, w in items if w))
    assert len(u["by_module"]) == MODULES_LISTED and all(len(x["symbols"]) == NAMES_PER_MODULE for x in u["by_module"])
    assert u["by_module"][0] == {"module": "mod0000", "count": 120, "weak": 2 * 9,
                                 "symbols": [f"sym{s:03d}" for s in range(10)]}
    assert len(json.dumps(u)) < 40_000


def test_report_json_keeps_one_line_per_module_and_reads_back_the_same(tmp_path):
    from kmodcompat.cli.report import report_text

    doc = build_report(load_tree(_moddir(_tree(tmp_path, system_map=PLACEHOLDER)), None), jobs=1)
    text = report_text(doc)
    assert json.loads(text) == doc
    rows = [line for line in text.splitlines() if line.startswith('   {"path": ')]
    assert len(rows) == len(doc["consumers"]["per_module"]) == 2


def test_depmod_kernel_image_is_what_e_gives_from_the_same_exports(tmp_path):
    """``depmod -e --kernel-image`` warns as ``-e -E`` over the Module.symvers of the same exports (ext-only.ko's
    CRCs, so one import's CRC disagrees when changed), plus the one line naming the image."""
    exports = kernel_exports()
    changed = next(iter(exports))
    exports[changed] ^= 1
    root = _tree(tmp_path / "i")
    syms = [ki.Sym(n, crc, False, "") for n, crc in exports.items()]
    img = tmp_path / "vmlinuz"
    img.write_bytes(ki.bzimage(ki.compress("xz", ki.vmlinux(syms, ki.Layout(True, 4, True)))))
    symvers = tmp_path / "Module.symvers"
    symvers.write_text("".join(f"0x{crc:08x}\t{n}\tvmlinux\tEXPORT_SYMBOL\t\n" for n, crc in exports.items()))
    base = ["depmod", "-n", "-e", "-b", str(root), "-C", str(tmp_path / "none"), KVER]
    by_image, by_symvers = _cli(*base, "--kernel-image", str(img)), _cli(*base, "-E", str(symvers))
    assert (by_image.returncode, by_image.stdout) == (by_symvers.returncode, by_symvers.stdout)
    first, rest = by_image.stderr.split("\n", 1)
    assert first.startswith(f"kmodcompat: kernel exports from boot image {img} (bzImage, xz, x86_64")
    assert rest == by_symvers.stderr and f"disagrees about version of symbol {changed}" in rest
    bad = _cli(*base, "--kernel-image", str(symvers))
    assert bad.returncode == 1 and bad.stderr.startswith(f"depmod: FATAL: could not load {symvers}: not a kernel")


def test_views_and_diff_say_where_the_kernel_exports_came_from(tmp_path):
    old, new = _tree(tmp_path / "o", image=True, system_map=PLACEHOLDER), _tree(tmp_path / "n", system_map=PLACEHOLDER)
    views = _cli("views", _moddir(old), "--format", "json")
    doc = json.loads(views.stdout)
    assert doc["kernel_exports"]["source"] == "boot image" and doc["exporter_crcs"] == "tree"
    text = _cli("views", _moddir(new)).stdout.splitlines()
    assert text[1].startswith("kernel exports unknown (") and "placeholder" in text[1]
    diff = _cli("diff", _moddir(old), _moddir(new), "--format", "json", "-j", "1")
    d = json.loads(diff.stdout)
    assert d["old"]["kernel_image"] == str(old / "boot" / f"vmlinuz-{KVER}")
    assert d["new"]["kernel_exports"].startswith("kernel exports unknown")
    assert diff.stderr.count("kmodcompat: old: kernel exports from boot image") == 1
    assert any("unresolved imports not compared" in n for n in d["notes"])
