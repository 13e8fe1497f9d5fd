"""Format simulation, and the consumer models on simulated modules, against the real binaries.

Real modules from the Debian trees are re-encoded in every format
(kmodcompat.simulate), written as real ELF files, and given to real kmod 30,
kmod 34.2 and busybox. Our models must print exactly what they print.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kmodcompat.consumers import CONSUMERS, busybox
from kmodcompat.kmod import tools
from kmodcompat.kmod.profile import KMOD_RELEASES
from kmodcompat.consumers.base import own_crcs
from kmodcompat.depmod.kernel_symbols import load_module_symvers
from kmodcompat.parse.module import parse_module, parse_module_bytes
from kmodcompat.files.opener import read_module_bytes
from kmodcompat.simulate import (FORMATS, BuildError, import_versions, rewrite_sections, simulate, simulate_record,
                                 written_format)

from . import oracle
from .paths import MODULES as FIX, X86_64 as FIXTURES

MV_TREES = ("bookworm-amd64", "trixie-amd64", "trixie-s390x", "trixie-armmp")
KVER = "9.9.9"  # busybox only takes a version that looks like x.y.z
PER_TREE = 6


@pytest.mark.parametrize("arch", ["x86_64", "s390x", "arm", "ppc", "ppc64"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_simulated_fixture_has_the_format_and_the_same_versions(arch, fmt):
    src = FIX / arch / "basic+ext.ko"
    rec = parse_module(str(src))
    try:
        out = simulate(rec, read_module_bytes(str(src)).data, fmt)
    except BuildError as e:
        assert fmt == "basic" and "too long symbol" in str(e)  # the Rust name cannot be basic-only
        return
    sim = parse_module_bytes(out)
    assert sim.modversions_format == fmt
    assert [(c, n) for c, n in import_versions(sim)] == ([] if fmt == "none" else import_versions(rec)
                                                        if fmt != "basic+ext" else import_versions(rec))
    # everything but the version sections is unchanged
    keep = lambda r: [(s.name, s.type, s.flags, s.size) for s in r.sections  # noqa: E731
                      if s.name not in ("__versions", "__version_ext_crcs", "__version_ext_names", ".shstrtab")]
    assert keep(sim) == keep(rec)
    assert sim.imports == rec.imports and sim.exports == rec.exports and sim.modinfo == rec.modinfo


@pytest.mark.parametrize("arch", ["x86_64", "s390x", "arm", "ppc", "ppc64"])
def test_simulated_record_reads_the_tables_from_the_rewritten_bytes(arch):
    # simulate_record writes its minimal ELF directly; it must be rewrite_sections' image, byte for byte.
    from kmodcompat.simulate import _empty_elf, _tables_image, encode
    rec = parse_module(str(FIX / arch / "basic+ext.ko"))
    for fmt in FORMATS:
        try:
            tables = encode(import_versions(rec), fmt, rec.elf.elfclass, rec.elf.little_endian)
        except BuildError:
            continue
        empty = _empty_elf(rec.elf.elfclass, rec.elf.little_endian)
        assert _tables_image(tables, rec.elf.elfclass, rec.elf.little_endian) == rewrite_sections(empty, (), tables)


def _vmlinux_symvers(root: Path) -> tuple[Path, dict[str, int]]:
    _, path = oracle.kernel_symbol_files(root)
    return path, {name: crc for name, crc, _ in load_module_symvers(str(path)).symbols}


def _sample(root: Path, symvers: dict[str, int]) -> list[str]:
    """Modules whose imports all come from vmlinux, spread over the tree, deterministic."""
    picked = []
    mods = oracle.tree_modules(root)
    for path in mods[:: max(1, len(mods) // 200)]:
        rec = parse_module(path)
        if rec.versions is None or not rec.imports:
            continue
        if all(i.name in symvers for i in rec.imports):
            picked.append(path)
        if len(picked) == PER_TREE:
            break
    return picked


@pytest.fixture(scope="module", params=MV_TREES)
def simulated_tree(request, tmp_path_factory):
    name = request.param
    root = oracle.tree_root(name, fetch=os.environ.get("KMODCOMPAT_FETCH_TREES") == "1")
    if root is None:
        pytest.skip(f"tree {name} not available")
    for v in KMOD_RELEASES:
        if not oracle.kmod_available(v):
            pytest.skip(f"{v} is not runnable here")
    symvers_path, symvers = _vmlinux_symvers(root)
    base = tmp_path_factory.mktemp(f"sim-{name}")
    moddir = base / "lib" / "modules" / KVER / "kernel"
    moddir.mkdir(parents=True)
    made = []  # (path, format, simulated record, truth)
    for src in _sample(root, symvers):
        rec = parse_module(src)
        data = read_module_bytes(src).data
        for fmt in FORMATS:
            try:
                out = simulate(rec, data, fmt)
            except BuildError:
                continue
            path = moddir / f"{rec.name}-{fmt.replace('+', '_')}.ko"
            path.write_bytes(out)
            made.append((str(path), fmt, parse_module(str(path)), own_crcs(rec)))
    assert made
    return name, base, symvers_path, symvers, made


@pytest.mark.realtree
@pytest.mark.parametrize("version", sorted(KMOD_RELEASES))
def test_simulated_dump_and_modinfo_equal_real_kmod(simulated_tree, version):
    _, _, _, _, made = simulated_tree
    kmod = KMOD_RELEASES[version]
    for path, fmt, rec, _ in made:
        real = oracle.run_kmod(version, "modprobe", ["--dump-modversions", path])
        assert tuple(tools.dump_modversions(kmod, path, rec)) == (real.stdout, real.stderr, real.status), (path, fmt)
        real = oracle.run_kmod(version, "modinfo", [path])
        assert tuple(tools.modinfo_file(kmod, path, opened=rec)) == (real.stdout, real.stderr, real.status), (path, fmt)


@pytest.mark.realtree
@pytest.mark.parametrize("version", sorted(KMOD_RELEASES))
def test_simulated_depmod_warnings_equal_real_depmod(simulated_tree, version, tmp_path):
    _, base, symvers_path, symvers, made = simulated_tree
    by_module = oracle.real_depmod_crc_warnings(version, base, symvers_path, KVER, tmp_path)
    kmod = KMOD_RELEASES[version]
    false_total = 0
    for path, fmt, rec, truth in made:
        view = CONSUMERS[kmod.id](rec, expected=symvers, truth=truth, path=path)
        ours = [m for m in view.messages if m.startswith("depmod: ")]
        assert ours == by_module.get(path, []), (path, fmt)
        false_total += len(view.false_messages)
        if fmt == "basic":
            assert view.false_messages == ()  # the format every kmod reads
    assert false_total > 0  # none/ext-only/varlen copies must trip depmod's zero-CRC compare


@pytest.mark.realtree
def test_busybox_depmod_sees_every_format_alike(tmp_path):
    if shutil.which("busybox") is None:
        pytest.skip("busybox-static not installed (tools/test.sh installs it)")
    results = {}
    for fmt in FORMATS:
        moddir = tmp_path / fmt / "lib" / "modules" / KVER / "kernel"
        moddir.mkdir(parents=True)
        exporter = parse_module(str(FIX / "x86_64" / "exports-rel.ko"))
        exporter_name = exporter.modinfo_values("name")[0]  # what importers' depends= names
        shutil.copy(FIX / "x86_64" / "exports-rel.ko", moddir / f"{exporter_name}.ko")
        src = FIX / "x86_64" / "basic+ext.ko"
        rec = parse_module(str(src))
        try:
            out = simulate(rec, read_module_bytes(str(src)).data, fmt)
        except BuildError:
            continue
        (moddir / "importer.ko").write_bytes(out)
        subprocess.run(["busybox", "depmod", "-b", str(tmp_path / fmt), KVER], check=True)
        mdir = moddir.parent
        dep = (mdir / "modules.dep").read_text()
        symbols = {line.split()[1].removeprefix("symbol:") for line in (mdir / "modules.symbols").read_text()
                   .splitlines() if line.startswith("alias symbol:")}
        results[fmt] = (dep, symbols)
        sim = parse_module(str(moddir / "importer.ko"))
        assert f"kernel/importer.ko: kernel/{exporter_name}.ko" in dep.splitlines()
        assert busybox.depends(sim) == [exporter_name]
        assert symbols == busybox.exported_symbols(exporter)
    assert len({(d, frozenset(s)) for d, s in results.values()}) == 1  # identical for every format


def _equivalence_sources() -> list[str]:
    srcs = [str(p) for k in ("basic+ext", "none", "varlen", "ext-only", "hashed", "imports-placeholder",
                             "bad-ext-count")
            for p in sorted(FIX.glob(f"*/{k}.ko"))]
    for name in ("trixie-s390x", "trixie-armmp", "bookworm-amd64", "sid-amd64"):
        root = oracle.tree_root(name)
        if root is not None:
            srcs += oracle.tree_modules(root)[::400][:6]
    return srcs


@pytest.mark.parametrize("src", _equivalence_sources(), ids=lambda p: p.split("/modules/", 1)[-1])
def test_record_simulation_equals_parsing_the_rewritten_file(src):
    """simulate_record (used tree-wide, no decompression) must give what parsing simulate()'s bytes gives."""
    rec = parse_module(src)
    data = read_module_bytes(src).data
    for fmt in FORMATS:
        try:
            from_bytes = parse_module_bytes(simulate(rec, data, fmt), rec.path, rec.compression)
        except BuildError:
            with pytest.raises(BuildError):
                simulate_record(rec, fmt)
            continue
        from_record = simulate_record(rec, fmt)
        # hashed without a long name is the basic table, byte for byte: recognised as basic
        want = written_format(import_versions(rec), fmt, rec.elf.elfclass)
        assert from_record.modversions_format == from_bytes.modversions_format == want
        assert from_record.hashed_versions == from_bytes.hashed_versions
        assert sorted(f.code for f in from_record.findings) == sorted(f.code for f in from_bytes.findings)
        for consumer, view in CONSUMERS.items():
            assert view(from_record).as_dict() == view(from_bytes).as_dict(), (fmt, consumer)


# -- hostile layouts (issue 15): each a clear per-module error, and the tree run goes on -------------

def _hostile_layouts() -> dict[str, bytes]:
    """The four malformed modules that crashed simulate (ElfError, struct.error, KeyError, OverflowError)."""
    import struct

    from .fuzzing import _Elf
    from kmodcompat.parse.signature import MARKER

    base = (FIXTURES / "basic.ko").read_bytes()
    elf = _Elf(bytearray(base))
    out = {}
    # A PGP-typed trailer (kmod accepts it) whose sig_len reaches back over the section header table.
    out["trailer-over-shdrs"] = base + struct.pack(">BBBBB3xI", 0, 0, 0, 0, 0, len(base) - elf.shoff) + MARKER
    buf = bytearray(base)
    edit = _Elf(buf)
    edit.set_shdr(edit.named(".symtab"), 4, len(buf) - 8)  # .symtab starting 8 bytes before the end
    out["symtab-past-end"] = bytes(buf)
    buf = bytearray(base)
    edit = _Elf(buf)
    edit.set_shdr(edit.ehdr("e_shstrndx"), 0, elf.sections[elf.named("__versions")][0])  # .shstrtab named __versions
    out["shstrtab-named-versions"] = bytes(buf)
    buf = bytearray(base)
    edit = _Elf(buf)
    edit.set_shdr(edit.named(".symtab"), 4, (1 << 64) - 64)  # sh_offset near 2^64
    out["offset-near-2^64"] = bytes(buf)
    return out


HOSTILE_REASONS = {
    "trailer-over-shdrs": "the image in front of the signature is no ELF file: section header table",
    "symtab-past-end": ".symtab runs past the end of the file",
    "shstrtab-named-versions": "the section name table (section 11) is itself a version section",
    "offset-near-2^64": ".symtab runs past the end of the file",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_REASONS))
def test_hostile_layouts_give_a_clear_error(name):
    from kmodcompat.simulate import LayoutError

    data = _hostile_layouts()[name]
    rec = parse_module_bytes(data)
    for fmt in FORMATS:
        with pytest.raises((LayoutError, BuildError)) as info:
            simulate(rec, data, fmt)
        if fmt == "none" or info.type is LayoutError:
            assert HOSTILE_REASONS[name] in str(info.value)


def test_simulate_tree_run_goes_on_past_hostile_layouts(tmp_path):
    from .hostile_trees import clean_failure_lines, run_bounded

    tree = tmp_path / "tree"
    tree.mkdir()
    for name, data in _hostile_layouts().items():
        (tree / f"{name}.ko").write_bytes(data)
    shutil.copy(FIXTURES / "basic.ko", tree / "basic.ko")
    run = run_bounded(["simulate", str(tree), "--format-as", "none", "--out", str(tmp_path / "out")])
    clean_failure_lines(run.stderr)
    assert run.status == 1, run.stderr
    lines = run.stderr.decode().splitlines()
    for name, reason in HOSTILE_REASONS.items():
        assert any(f"{name}.ko: cannot write as none: " in line and reason in line for line in lines), lines
    assert (tmp_path / "out" / "lib" / "modules" / "tree" / "basic.ko").is_file()  # a module directory: DIR is a root
    assert lines[-1].startswith("1 module(s) written as none")
