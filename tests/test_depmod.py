"""depmod on a tree built from the fixtures, against real kmod 30 and 34.2 depmod.

The tree (made in a tmp dir at test time from fixtures/modules/x86_64) has:

* the exporter three times: ``kernel/exp/``, ``updates/`` and ``extra/`` (who
  wins depends on depmod.d ``search``/``override``; by default ``updates/``);
* importers of every modversions format: basic, basic+ext (.xz and .zst),
  extended-only (its imports "disagree" under ``-E``, false positives) and
  none; a second exporter of the same symbols (``exports-nocrc``); a corrupt
  .xz module (kept, reported); a .ko.gz file (invisible to Debian's kmod);
* two modules patched to import from each other (``cycle/``), left out by
  ``exclude cycle`` except in the cycle scenario;
* a modules.order naming one module twice (kmod 30 keeps the last line,
  34.2 the first), modules.builtin and modules.builtin.modinfo;
* a Module.symvers / System.map for vmlinux where ``kfree`` has another CRC
  (a real mismatch) and ``printk`` is missing (unresolved).

Every scenario is run by real depmod and by kmodcompat; files, stdout,
stderr and exit status must be identical.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from kmodcompat.kmod.profile import KMOD_RELEASES
from kmodcompat.depmod.kernel_symbols import load_module_symvers
from kmodcompat.depmod.resolve import run_depmod
from kmodcompat.depmod.writer import render
from kmodcompat.depmod.tree import load_tree

from . import oracle
from .paths import REPO, X86_64 as FIX

KVER = "9.9.9-kmc"
LONG = "_RNvXs_NtCshhMfd4mY5QU_6kernel8user_ptrNtB4_18UserSlicePtrReaderNtNtB6_9io_buffer14IoBufferReader8read_raw"

LAYOUT = {
    "kernel/exp/kmc_exports.ko": "exports-rel.ko",
    "updates/kmc_exports.ko": "exports-abs.ko",
    "extra/kmc_exports.ko": "exports-kflagstab.ko",
    "kernel/imp/kmc_basic.ko": "basic.ko",
    "kernel/imp/kmc_bext.ko.xz": "basic+ext.ko.xz",
    "kernel/imp/kmc_zst.ko.zst": "basic+ext.ko.zst",
    "kernel/imp/kmc_extonly.ko": "ext-only.ko",
    "kernel/imp/kmc_none.ko": "none.ko",
    "kernel/imp/kmc_broken.ko.xz": "corrupt.ko.xz",
    "kernel/imp/kmc_gz.ko.gz": "basic.ko.gz",
    "kernel/dup/kmc-nocrc.ko": "exports-nocrc.ko",
}

CONFIGS = {
    "default": "exclude cycle\n",
    "search": "# extra first, then updates, then everything else\nsearch extra updates built-in\nexclude cycle\n",
    "override": "override kmc_exports 9.9.* kernel/exp\noverride kmc_exports 1.0 extra\nexclude  cycle\n",
    "cycle": "",
}
WINNER = {"default": "updates/kmc_exports.ko", "search": "extra/kmc_exports.ko",
          "override": "kernel/exp/kmc_exports.ko"}


def crc_of(name: str) -> int:
    return zlib.crc32(b"kmodcompat:" + name.lstrip(".").encode())


def _cycle_module(a: str, b: str) -> bytes:
    """exports-rel.ko exporting ``cyc_<a>`` (renamed ns_sym) and importing ``cyc_<b>`` (renamed printk)."""
    data = (FIX / "exports-rel.ko").read_bytes()
    for old, new in ((b"\0__crc_ns_sym\0", f"\0__crc_cyc_{a}{a}\0".encode()), (b"\0printk\0", f"\0cyc_{b}{b}\0".encode())):
        assert old in data and len(old) == len(new)
        data = data.replace(old, new)
    return data


def _devname_module(major: bool) -> bytes:
    """basic.ko with its of: alias turned into ``devname:`` (and its pci alias into a char-major one)."""
    data = (FIX / "basic.ko").read_bytes()
    swaps = [(b"alias=of:N*T*Ckmodcompat,fixture\0", b"alias=devname:kmc/fixture-node00\0")]
    if major:
        old = data[data.index(b"alias=pci:"):data.index(b"\0", data.index(b"alias=pci:")) + 1]
        swaps.append((old, b"alias=char-major-10-200".ljust(len(old) - 1, b"x") + b"\0"))
    for old, new in swaps:
        assert data.count(old) == 1 and len(old) == len(new)
        data = data.replace(old, new)
    return data


def build_tree(base: Path) -> Path:
    moddir = base / "root" / "lib" / "modules" / KVER
    for rel, src in LAYOUT.items():
        dst = moddir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIX / src, dst)
    (moddir / "kernel" / "imp" / "kmc_dev.ko").write_bytes(_devname_module(major=True))
    (moddir / "kernel" / "imp" / "kmc_devnomaj.ko").write_bytes(_devname_module(major=False))
    (moddir / "cycle").mkdir()
    (moddir / "cycle" / "cyc_a.ko").write_bytes(_cycle_module("a", "b"))
    (moddir / "cycle" / "cyc_b.ko").write_bytes(_cycle_module("b", "a"))
    (moddir / "modules.order").write_text("kernel/dup/kmc-nocrc.ko\nkernel/imp/kmc_none.ko\n"
                                          "updates/kmc_exports.ko\nextra/kmc_exports.ko\n"
                                          "kernel/imp/kmc_basic.ko\nkernel/imp/kmc_none.ko\n")
    (moddir / "modules.builtin").write_text("kernel/fs/ext4/ext4.ko\nkernel/crypto/aes-generic.ko\n")
    (moddir / "modules.builtin.modinfo").write_bytes(
        b"ext4.alias=fs-ext4\0aes_generic.alias=crypto-aes\0aes_generic.alias=aes\0")
    kernel = {"__fentry__": crc_of("__fentry__"), "kmalloc_caches": crc_of("kmalloc_caches"),
              "kfree": crc_of("kfree") ^ 1, "module_layout": 0xA735AB32, LONG: crc_of(LONG)}
    (base / "Module.symvers").write_text("".join(f"0x{c:08x}\t{n}\tvmlinux\tEXPORT_SYMBOL\t\n" for n, c in kernel.items())
                                         + f"0x{crc_of('short_sym'):08x}\tshort_sym\tdrivers/x/kmc\tEXPORT_SYMBOL\t\n")
    (base / "System.map").write_text("".join(f"ffffffff8100{i:04x} r __ksymtab_{n}\n" for i, n in enumerate(kernel))
                                     + "ffffffff81000000 T _text\n")
    for name, text in CONFIGS.items():
        (base / "conf" / name).mkdir(parents=True)
        (base / "conf" / name / "kmc.conf").write_text(text)
    return base / "root"


@pytest.fixture(scope="module")
def fixture_tree(tmp_path_factory) -> Path:
    return build_tree(tmp_path_factory.mktemp("depmodtree"))


def _real(version: str, args: list[str]) -> oracle.Run:
    if not oracle.kmod_available(version):
        pytest.skip(f"{version} is not runnable here (tools/test.sh installs it)")
    return oracle.run_kmod(version, "depmod", args)


def _fresh_root(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def _stderr(dm, out) -> bytes:
    return b"".join(d.line().encode("utf-8", "surrogateescape") for d in (*dm.diagnostics, *out.diagnostics))


@pytest.mark.parametrize("version", sorted(KMOD_RELEASES))
@pytest.mark.parametrize("scenario", sorted(CONFIGS))
def test_write_mode_with_symvers_identical(fixture_tree, tmp_path, version, scenario):
    """``depmod -C conf -b ROOT -e -E Module.symvers KVER``: every file, stderr and status."""
    base = fixture_tree.parent
    kmod = KMOD_RELEASES[version]
    conf = base / "conf" / scenario
    real_root = _fresh_root(fixture_tree, tmp_path / "real")
    our_root = _fresh_root(fixture_tree, tmp_path / "ours")
    real = _real(version, ["-C", str(conf), "-b", str(real_root), "-e", "-E", str(base / "Module.symvers"), KVER])

    tree = load_tree(str(our_root), KVER, config=[str(conf)], kmod=kmod)
    dm = run_depmod(tree, load_module_symvers(str(base / "Module.symvers")), print_unknown=True)
    out = render(dm)
    real_files = oracle.read_outputs(real_root / "lib" / "modules" / KVER)
    assert dict(out.files) == real_files
    assert _stderr(dm, out).replace(b"/ours/", b"/real/") == real.stderr
    assert real.status == (1 if dm.failed else 0)

    text = real.stderr.decode()
    if scenario == "cycle":
        assert real.status == 1 and not real_files
        assert "Cycle detected: cyc_" in text and "Found 2 modules in dependency cycles!" in text
        assert dm.cycles and sorted(dm.cycles[0][:2]) == ["cyc_a", "cyc_b"]
        return
    dep = real_files["modules.dep"].decode()
    # The exporter depmod keeps is the only one in modules.dep, and (coming after kmc-nocrc) owns the symbols.
    assert sum(dep.count(f"{p}:") for p in WINNER.values()) == 1
    assert f"kernel/imp/kmc_basic.ko: {WINNER[scenario]}\n" in dep
    assert "kmc_gz" not in dep and "cyc_a" not in dep
    assert "kernel/imp/kmc_broken.ko.xz:\n" in dep
    assert "failed to load symbols from" in text and "kmc_broken.ko.xz" in text
    assert "kmc_basic.ko needs unknown symbol printk" in text
    assert "kmc_basic.ko disagrees about version of symbol kfree" in text
    assert "kmc_extonly.ko disagrees about version of symbol short_sym" in text
    assert "kmc_bext.ko.xz disagrees about version of symbol " + LONG in text
    assert {m.name for m in tree.failures} == {"kmc_broken"}
    assert real_files["modules.devname"] == (b"# Device nodes to trigger on-demand module loading.\n"
                                             b"kmc_dev kmc/fixture-node00 c10:200\n")
    assert "Module 'kmc_devnomaj' has devname (kmc/fixture-node00) but lacks major and minor" in text
    symbols = real_files["modules.symbols"].decode()
    assert "alias symbol:short_sym kmc_exports\n" in symbols and "alias symbol:MY_NS kmc_nocrc\n" in symbols


@pytest.mark.parametrize("version", sorted(KMOD_RELEASES))
@pytest.mark.parametrize("scenario", ["default", "cycle"])
def test_dry_run_with_system_map_identical(fixture_tree, version, scenario):
    """``depmod -n -e -F System.map``: stdout, stderr and status, through the command line."""
    base = fixture_tree.parent
    args = ["-C", str(base / "conf" / scenario), "-b", str(fixture_tree), "-n", "-e", "-F",
            str(base / "System.map"), KVER]
    real = _real(version, args)
    ours = subprocess.run([sys.executable, "-m", "kmodcompat", "depmod", "--as", version, *args],
                          capture_output=True, cwd=REPO)
    assert (ours.stdout, ours.stderr, ours.returncode) == (real.stdout, real.stderr, real.status)
    if scenario == "default":
        assert b"needs unknown symbol printk" in real.stderr and b"disagrees" not in real.stderr


@pytest.mark.parametrize("version", sorted(KMOD_RELEASES))
def test_modules_order_duplicate_line(fixture_tree, version):
    """kmod 34.2 places a module at its first modules.order line, kmod 30 at its last."""
    base = fixture_tree.parent
    args = ["-C", str(base / "conf" / "default"), "-b", str(fixture_tree), "-n", KVER]
    real = _real(version, args)
    lines = real.stdout.decode().splitlines()
    first = [ln.split(":")[0] for ln in lines[:4]]
    if version == "kmod34":
        assert first == ["kernel/dup/kmc-nocrc.ko", "kernel/imp/kmc_none.ko", "updates/kmc_exports.ko",
                         "kernel/imp/kmc_basic.ko"]
    else:
        assert first == ["kernel/dup/kmc-nocrc.ko", "updates/kmc_exports.ko", "kernel/imp/kmc_basic.ko",
                         "kernel/imp/kmc_none.ko"]
    tree = load_tree(str(fixture_tree), KVER, config=[str(base / "conf" / "default")], kmod=KMOD_RELEASES[version])
    assert [m.output_path for m in tree.modules[:4]] == first


def test_json_marks_false_positive_disagreements(fixture_tree):
    """The extended-only imports "disagree" only because kmod ignores __version_ext_*; a changed CRC does not."""
    base = fixture_tree.parent
    p = subprocess.run([sys.executable, "-m", "kmodcompat", "depmod", "--format", "json", "-n", "-e", "-E",
                        str(base / "Module.symvers"), "-C", str(base / "conf" / "default"), "-b", str(fixture_tree),
                        KVER], capture_output=True, cwd=REPO, check=True)
    doc = json.loads(p.stdout)
    dis = {(d["module"], d["symbol"]): d for d in doc["disagreements"]}
    assert dis[("kmc_extonly", "short_sym")]["false_positive"] is True
    assert dis[("kmc_extonly", "short_sym")]["reason"] == "extended-only"
    assert dis[("kmc_bext", LONG)]["false_positive"] is True
    assert dis[("kmc_basic", "kfree")]["false_positive"] is False
    assert dis[("kmc_basic", "kfree")]["reason"] == "crc-differs"
    assert dis[("kmc_none", "short_sym")]["reason"] == "no-modversions"
    warn = [w for w in doc["warnings"] if w["code"] == "disagrees"]
    assert {w["false_positive"] for w in warn} == {True, False}
    assert {"module": "kmc_basic", "symbol": "printk", "weak": False} in doc["unresolved"]
    assert [f["module"] for f in doc["failures"]] == ["kmc_broken"]
    assert any(s["path"].endswith("kernel/exp/kmc_exports.ko") for s in doc["shadowed"])


def test_cli_writes_files_like_depmod(fixture_tree, tmp_path):
    """The command writes the same files real depmod writes, into the tree."""
    base = fixture_tree.parent
    real_root = _fresh_root(fixture_tree, tmp_path / "real")
    our_root = _fresh_root(fixture_tree, tmp_path / "ours")
    conf = str(base / "conf" / "search")
    real = _real("kmod34", ["-C", conf, "-b", str(real_root), KVER])
    p = subprocess.run([sys.executable, "-m", "kmodcompat", "depmod", "-C", conf, "-b", str(our_root), KVER],
                       capture_output=True, cwd=REPO)
    assert p.returncode == real.status == 0
    assert p.stderr.replace(b"/ours/", b"/real/") == real.stderr
    assert oracle.read_outputs(our_root / "lib" / "modules" / KVER) == \
        oracle.read_outputs(real_root / "lib" / "modules" / KVER)


def test_graph_exports_symvers_commands(fixture_tree):
    base = fixture_tree.parent
    common = ["-C", str(base / "conf" / "default"), "-b", str(fixture_tree), KVER]

    def run(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "kmodcompat", *args], capture_output=True, cwd=REPO,
                              check=True, text=True).stdout

    g = json.loads(run("graph", "--format", "json", "-E", str(base / "Module.symvers"), *common))
    links = {(link["source"], link["target"]): link["symbols"] for link in g["links"]}
    assert links[("kmc_basic", "kmc_exports")] == ["short_sym", "ns_sym"]
    assert "kfree" in links[("kmc_basic", "vmlinux")]
    dot = run("graph", "--module", "kmc_basic", *common)
    assert '"kmc_basic" -> "kmc_exports"' in dot and "kmc_none" not in dot
    assert "<graphml" in run("graph", "--format", "graphml", *common)
    cyc = json.loads(run("graph", "--format", "json", "-C", str(base / "conf" / "cycle"), "-b", str(fixture_tree),
                         KVER))
    assert ["cyc_a", "cyc_b"] in cyc["components"]
    ex = json.loads(run("exports", "--format", "json", *common))
    short = [e for e in ex["exports"] if e["symbol"] == "short_sym"]
    assert [(e["exporter"], e["resolved_here"]) for e in short] == [("kmc_nocrc", False), ("kmc_exports", True)]
    assert "kmc_basic" in short[1]["importers"] and "kmc_exports:gpl_sym" in ex["unused"]
    assert "| symbol" in run("exports", "--format", "markdown", *common)
    sv = run("symvers", *common).splitlines()
    assert f"0x{crc_of('short_sym'):08x}\tshort_sym\tupdates/kmc_exports\tEXPORT_SYMBOL\t" in sv
    assert "0x00000000\tns_sym\tdup/kmc-nocrc\tEXPORT_SYMBOL\tMY_NS" in sv


@pytest.mark.parametrize("version", sorted(KMOD_RELEASES))
@pytest.mark.parametrize("option", ["-F", "-E"])
def test_malformed_kernel_symbol_files(fixture_tree, tmp_path, version, option):
    """Odd System.map / Module.symvers lines, and the -P prefix, as depmod reads them."""
    smap = tmp_path / "System.map"
    smap.write_text("nospace\nffff r __ksymtab_kfree\nffff r ___ksymtab_kmalloc_caches\nffff T two words here\n"
                    "ffff r __ksymtab___fentry__\n")
    symvers = tmp_path / "Module.symvers"
    symvers.write_text(f"0x{crc_of('kfree'):08x}\tkfree\tvmlinux\tEXPORT_SYMBOL\t\n"
                       "0xzz\tbad\tvmlinux\tEXPORT_SYMBOL\t\n"
                       f"0x{crc_of('kmalloc_caches'):08x} _kmalloc_caches vmlinux EXPORT_SYMBOL\n"
                       f"{crc_of('__fentry__'):x}\t__fentry__\tvmlinux\n")
    args = ["-C", str(fixture_tree.parent / "conf" / "default"), "-b", str(fixture_tree), "-n", "-e", "-P", "_",
            option, str(smap if option == "-F" else symvers), KVER]
    real = _real(version, args)
    ours = subprocess.run([sys.executable, "-m", "kmodcompat", "depmod", "--as", version, *args],
                          capture_output=True, cwd=REPO)
    assert (ours.stdout, ours.stderr, ours.returncode) == (real.stdout, real.stderr, real.status)
    assert (b"invalid line: nospace" in real.stderr) == (option == "-F")
