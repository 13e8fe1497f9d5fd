"""``simulate TREE --out DIR`` writes a tree (issue 19 item 4): the layout, compressions, the tree's own files and
the kernel's, signatures kept where the bytes are, dropped and said where they are not; ``diff TREE DIR`` then
shows the format's effect alone, on fixture trees and on whole real Debian trees."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kmodcompat.files.compress import COMPRESSIONS, compress
from kmodcompat.files.opener import read_module_bytes
from kmodcompat.parse.module import parse_module
from kmodcompat.simulate import simulate
from kmodcompat.simulate_tree import MARKER

from . import oracle
from .paths import DEMO, DEMO_KVER, REPO, X86_64 as FIX

DEMO_SYMVERS = DEMO / "usr" / "src" / f"linux-headers-{DEMO_KVER}" / "Module.symvers"
KVER = "6.14.0-sim"
#: file in the tree → fixture: every compression, signed and unsigned modules, formats basic and others.
MODULES = {"kernel/crypto/signed_xz.ko.xz": "signed-sha256.ko.xz", "kernel/fs/plain.ko": "basic.ko",
           "kernel/sha3.ko": "signed-sha3-256.ko", "kernel/drivers/zst.ko.zst": "basic+ext.ko.zst",
           "kernel/drivers/ext.ko": "ext-only.ko", "kernel/drivers/exp.ko": "exports-rel.ko"}
BASIC = ("kernel/crypto/signed_xz.ko.xz", "kernel/fs/plain.ko", "kernel/sha3.ko")
#: (gzip is left to the compressor's own test: kmod 34, the default, is built without zlib and sees no .ko.gz.)


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": "/dev/null", "LC_ALL": "C.UTF-8"}
    return subprocess.run([sys.executable, "-m", "kmodcompat", *args], capture_output=True, text=True, env=env,
                          cwd=cwd or REPO)


def _tree(root: Path, modules: dict[str, str] = MODULES) -> Path:
    """A root with one kernel: the modules, depmod's files beside them, two depmod.d files, the kernel's files."""
    moddir = root / "lib" / "modules" / KVER
    for rel, fixture in modules.items():
        (moddir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIX / fixture, moddir / rel)
    (moddir / "modules.order").write_text("".join(f"{r.split('.ko')[0]}.ko\n" for r in modules))
    (moddir / "modules.builtin").write_text("kernel/fs/ext4/ext4.ko\n")
    (moddir / "modules.builtin.modinfo").write_bytes(b"ext4.license=GPL\0ext4.alias=fs-ext4\0")
    for d, name in (("etc/depmod.d", "local.conf"), ("lib/depmod.d", "dist.conf")):
        (root / d).mkdir(parents=True)
        (root / d / name).write_text("search updates built-in\n")
    (root / "usr" / "src" / f"linux-headers-{KVER}").mkdir(parents=True)
    shutil.copy(DEMO_SYMVERS, root / "usr" / "src" / f"linux-headers-{KVER}" / "Module.symvers")
    (root / "boot").mkdir()
    (root / "boot" / f"System.map-{KVER}").write_text("ffffffff81000000 r __ksymtab_printk\n")
    return moddir


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_compressed_as_the_kernel_installs_and_read_back(compression):
    data = (FIX / "basic.ko").read_bytes()
    packed = compress(data, compression)
    assert read_module_bytes_of(packed) == (data, compression)
    if compression == "xz":
        assert packed[7] == 0x01  # stream flags: check type CRC32, the one the kernel's XZ Embedded verifies
    if compression == "zstd":
        import zstandard
        params = zstandard.get_frame_parameters(packed)
        assert params.content_size == len(data) and params.has_checksum
    if compression == "gzip":
        assert packed[3] == 0 and packed[4:8] == bytes(4)  # gzip -n: no name, no time stamp


def read_module_bytes_of(packed: bytes) -> tuple[bytes, str | None]:
    import tempfile
    with tempfile.NamedTemporaryFile() as f:
        f.write(packed)
        f.flush()
        opened = read_module_bytes(f.name)
    return opened.data, opened.compression


def test_a_tree_is_written_as_a_tree(tmp_path):
    moddir = _tree(tmp_path / "root")
    out = tmp_path / "sim"
    run = _cli("simulate", "--no-cache", str(tmp_path / "root"), "--format-as", "ext-only", "--out", str(out), "-j", "1")
    assert run.returncode == 0, run.stderr
    sim = out / "lib" / "modules" / KVER
    for rel in MODULES:  # every module at its path, in its own compression, unsigned unless left as it was
        orig, new = parse_module(str(moddir / rel)), parse_module(str(sim / rel))
        assert new.compression == orig.compression and new.modversions_format == "ext-only", rel
        assert new.signature is None or (sim / rel).read_bytes() == (moddir / rel).read_bytes()
    assert (sim / "kernel/drivers/ext.ko").read_bytes() == (moddir / "kernel/drivers/ext.ko").read_bytes()
    for rel in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        assert (sim / rel).read_bytes() == (moddir / rel).read_bytes()
    for rel in ("etc/depmod.d/local.conf", "lib/depmod.d/dist.conf", f"usr/src/linux-headers-{KVER}/Module.symvers",
                f"boot/System.map-{KVER}"):
        assert (out / rel).read_bytes() == (tmp_path / "root" / rel).read_bytes(), rel
    record = json.loads((out / MARKER).read_text())
    assert record["format"] == "ext-only" and record["kernel_release"] == KVER
    assert sorted(record["signatures_dropped"]) == ["kernel/crypto/signed_xz.ko.xz", "kernel/sha3.ko"]
    assert run.stderr.splitlines()[-1] == (
        f"6 module(s) written as ext-only under {sim}: 5 rewritten (2 signature(s) dropped: the bytes they signed "
        "changed), 1 copied unchanged (already ext-only); 7 file(s) of the tree copied")
    # The report of the simulated tree names the original release, finds the same kernel exports and says
    # whose signatures the simulation dropped, on its first screen too.
    rep = _cli("report", "--no-cache", str(out), "--out", str(tmp_path / "rep"), "-j", "1")
    assert rep.returncode == 0, rep.stderr
    doc = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert doc["tree"]["kernel_release"] == KVER
    assert doc["tree"]["kernel_exports"]["path"] == str(out / "usr" / "src" / f"linux-headers-{KVER}" /
                                                        "Module.symvers")
    by = doc["tree"]["simulated_by"]
    assert (by["format"], by["rewritten"], by["unchanged"], by["signatures_dropped"]) == ("ext-only", 5, 1, 2)
    assert by["line"] in doc["headlines"][:2] and f"kmodcompat: {by['line']}" in rep.stderr.splitlines()
    assert "2 of them signed before: the simulation dropped those signatures" in by["line"]


def test_modules_already_in_the_format_are_copied_with_their_signatures(tmp_path):
    moddir = _tree(tmp_path / "root", {k: MODULES[k] for k in BASIC})
    out = tmp_path / "sim"
    run = _cli("simulate", "--no-cache", str(tmp_path / "root"), "--format-as", "basic", "--out", str(out), "-j", "1")
    assert run.returncode == 0, run.stderr
    for rel in BASIC:
        assert (out / "lib" / "modules" / KVER / rel).read_bytes() == (moddir / rel).read_bytes(), rel
    assert json.loads((out / MARKER).read_text())["signatures_dropped"] == []
    diff = _cli("diff", str(tmp_path / "root"), str(out), "--format", "json")
    assert diff.returncode == 0, diff.stderr
    totals = json.loads(diff.stdout)["totals"]
    assert totals.pop("modules_unchanged") == 3 and not any(totals.values()), totals
    # The report of an unchanged simulation says so: nothing rewritten, no signature dropped.
    rep = _cli("report", "--no-cache", str(out), "--out", str(tmp_path / "rep"), "-j", "1")
    by = json.loads((tmp_path / "rep" / "report.json").read_text())["tree"]["simulated_by"]
    assert (by["rewritten"], by["unchanged"], by["signatures_dropped"]) == (0, 3, 0), rep.stderr


def test_a_module_directory_named_directly_gives_a_root_without_depmod_config(tmp_path):
    moddir = _tree(tmp_path / "root", {"kernel/ext.ko": "ext-only.ko"})
    out = tmp_path / "sim"
    run = _cli("simulate", "--no-cache", str(moddir), "--format-as", "basic+ext", "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert (out / "lib" / "modules" / KVER / "kernel" / "ext.ko").is_file()
    assert not (out / "etc").exists() and not (out / "lib" / "depmod.d").exists()  # read without one: none copied
    assert (out / "usr" / "src" / f"linux-headers-{KVER}" / "Module.symvers").is_file()  # found beside it


def test_an_output_directory_in_use_or_inside_the_tree_is_refused(tmp_path):
    _tree(tmp_path / "root", {"kernel/sha3.ko": "signed-sha3-256.ko"})
    used = tmp_path / "used"
    used.mkdir()
    (used / "old.ko").write_bytes(b"")
    afile = tmp_path / "afile"
    afile.write_bytes(b"x")
    for out, why in ((used, "exists and is not an empty directory"), (afile, "exists and is not an empty directory"),
                     (tmp_path / "root" / "sim", "inside the tree")):
        run = _cli("simulate", "--no-cache", str(tmp_path / "root"), "--format-as", "basic", "--out", str(out))
        assert run.returncode == 2 and run.stderr.count("\n") == 1 and why in run.stderr, (out, run.stderr)
    assert sorted(os.listdir(used)) == ["old.ko"] and not (tmp_path / "root" / "sim").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _cli("simulate", "--no-cache", str(tmp_path / "root"), "--format-as", "basic", "--out", str(empty)).returncode == 0


@pytest.mark.realtree
def test_recompressed_modules_read_as_the_plain_ones_by_real_kmod(tmp_path):
    """Real kmod opens each recompressed module (xz with its CRC32 check, zstd) to the same bytes. Not gzip: Debian
    builds kmod without zlib (kmod/profile.py gzip_errno), so its kmod reads no .ko.gz at all."""
    for v in ("kmod30", "kmod34"):
        if not oracle.kmod_available(v):
            pytest.skip(f"{v} is not runnable here")
    rec = parse_module(str(FIX / "basic.ko"))
    plain = simulate(rec, (FIX / "basic.ko").read_bytes(), "basic+ext")
    (tmp_path / "plain.ko").write_bytes(plain)
    suffix = {"xz": ".ko.xz", "zstd": ".ko.zst"}
    for compression in ("xz", "zstd"):
        path = tmp_path / f"packed{suffix[compression]}"
        path.write_bytes(compress(plain, compression))
        for v in ("kmod30", "kmod34"):
            for tool, args in (("modprobe", ["--dump-modversions"]), ("modinfo", ["-F", "vermagic"])):
                want = oracle.run_kmod(v, tool, [*args, str(tmp_path / "plain.ko")])
                got = oracle.run_kmod(v, tool, [*args, str(path)])
                assert want.status == 0 and (got.stdout, got.status) == (want.stdout, 0), (v, tool, compression)


def _real(name: str) -> Path:
    root = oracle.tree_root(name, fetch=os.environ.get("KMODCOMPAT_FETCH_TREES") == "1")
    if root is None:
        pytest.skip(f"tree {name} not available")
    return root


@pytest.mark.realtree
@pytest.mark.parametrize("name", ["bookworm-amd64", "trixie-amd64"])
def test_a_basic_tree_simulated_as_basic_is_the_same_tree(name, tmp_path):
    """Done when (issue 19): ``diff TREE $(simulate TREE --format-as basic)`` reports no change at all."""
    root = _real(name)
    out = tmp_path / "sim"
    start = time.monotonic()
    run = _cli("simulate", "--no-cache", str(root), "--format-as", "basic", "--out", str(out))
    took = time.monotonic() - start
    assert run.returncode == 0, run.stderr[-2000:]
    assert " 0 rewritten" in run.stderr.splitlines()[-1]  # every module copied, signature and compression kept
    assert took < 300, f"simulate took {took:.0f} s"
    diff = _cli("diff", str(root), str(out), "--format", "json")
    assert diff.returncode == 0, diff.stderr[-2000:]
    doc = json.loads(diff.stdout)
    totals = dict(doc["totals"])
    assert totals.pop("modules_unchanged") > 3000 and not any(totals.values()) and doc["patterns"] == [], totals
    assert doc["old"]["kernel_release"] == doc["new"]["kernel_release"]


#: What a format changes in a module, and nothing else may: its version tables, the section name table that names
#: them, the format, the signature (dropped: its bytes changed), the consumers' readings.
FORMAT_EFFECTS = {("versions", None), ("attribute", "modversions_format"), ("consumer", None),
                  ("section", "__versions"), ("section", "__version_ext_crcs"), ("section", "__version_ext_names"),
                  ("section", ".shstrtab"), *(("modinfo", k) for k in ("sig_id", "signer", "sig_key", "sig_hashalgo"))}


@pytest.mark.realtree
def test_a_tree_simulated_ext_only_changes_only_the_version_tables(tmp_path):
    """Done when (issue 19): with ``--format-as ext-only``, only the version tables and the consumers they break."""
    root = _real("trixie-amd64")
    out = tmp_path / "sim"
    start = time.monotonic()
    run = _cli("simulate", "--no-cache", str(root), "--format-as", "ext-only", "--out", str(out))
    took = time.monotonic() - start
    assert run.returncode == 0, run.stderr[-2000:]
    assert took < 300, f"simulate took {took:.0f} s"
    diff = _cli("diff", str(root), str(out), "--format", "json")
    doc = json.loads(diff.stdout)
    assert diff.returncode == 12, diff.stderr[-2000:]  # changed, and breaks consumers
    t = doc["totals"]
    assert t["modules_unchanged"] == 0 and t["modules_changed"] > 4000
    assert (t["modules_added"], t["modules_removed"], t["exports_changed"], t["exports_added"], t["exports_removed"],
            t["dep_lines_changed"], t["new_cycles"], t["newly_unresolved"]) == (0,) * 8
    for p in doc["patterns"]:
        key = (p["area"], p["subject"]) if p["area"] not in ("versions", "consumer") else (p["area"], None)
        assert key in FORMAT_EFFECTS, p
    assert {b["module"] for b in doc["breaks"]} <= {m["name"] for m in doc["modules"]["changed"]}
    # The report of the simulated tree: the original's release and kernel exports, every signature dropped.
    rep = _cli("report", "--no-cache", str(out), "--out", str(tmp_path / "rep"))
    tree = json.loads((tmp_path / "rep" / "report.json").read_text())["tree"]
    assert tree["kernel_release"] == root.joinpath("TREE-INFO").read_text().split("krel=")[1].split()[0]
    exports = tree["kernel_exports"]
    assert exports["path"].startswith(f"{out}/") and exports["exports"] > 10000, rep.stderr[-2000:]
    assert doc["old"]["kernel_exports"] == exports["line"].replace(str(out), str(root))  # the same exports
    signed = sum(1 for line in run.stderr.splitlines()[-1:] if "signature(s) dropped" in line)
    assert signed and tree["simulated_by"]["signatures_dropped"] == tree["simulated_by"]["rewritten"] == \
        t["modules_changed"]


def test_a_kernel_file_that_cannot_be_read_is_said_and_left_out(tmp_path):
    _tree(tmp_path / "root", {"kernel/sha3.ko": "signed-sha3-256.ko"})
    with open(tmp_path / "root" / "boot" / f"System.map-{KVER}", "r+b") as f:
        f.truncate((64 << 20) + 1)  # one byte over the System.map cap (files/bounded.py), sparse
    out = tmp_path / "sim"
    run = _cli("simulate", "--no-cache", str(tmp_path / "root"), "--format-as", "basic", "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert f"System.map-{KVER}: larger than the 64 MiB limit for a System.map: not copied" in run.stderr
    assert not (out / "boot").exists() and (out / "lib" / "modules" / KVER / "kernel" / "sha3.ko").is_file()
