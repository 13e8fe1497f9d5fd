"""`kmodcompat modversions`: the complete listing, against real kmod's --dump-modversions and the raw sections.

* Restricted to ``__versions`` (``--table basic``), the text equals what real
  ``modprobe --dump-modversions`` printed (kmod 30 and 34.2): on the fixtures
  (their recorded real outputs, fixtures/expected) and on every module of the
  real trees (realtree; one kmodcompat run per tree, kmod's outputs from the
  oracle cache tests/test_realtrees.py fills).
* On real EXTENDED_MODVERSIONS modules (tests/data/qemu-kernel-7.2/kmc_test.ko,
  built by modpost with CONFIG_EXTENDED_MODVERSIONS) and the generated basic+ext
  and ext-only fixtures, ``--format json`` lists every entry of both tables, read
  here independently with pyelftools, and validates against the committed schema.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from elftools.elf.elffile import ELFFile

from . import oracle
from .paths import FIXTURES, KMC_TEST, REPO

SCHEMA = json.loads((REPO / "kmodcompat" / "modversions-schema.json").read_text())


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kmodcompat", "modversions", *args], capture_output=True, cwd=REPO)


def split_by_module(stdout: bytes, paths: list[str]) -> dict[str, bytes]:
    """Each module's lines of a several-module text listing (``PATH<TAB>`` prefix removed), in order."""
    out = {p: b"" for p in paths}
    for line in stdout.splitlines(keepends=True):
        path, tab, rest = line.partition(b"\t")
        assert tab and path.decode() in out, line
        out[path.decode()] += rest
    return out


def _expected_dumps() -> list[tuple[str, str, dict]]:
    out = []
    for f in sorted((FIXTURES / "expected").rglob("*.dump-modversions.kmod*")):
        want = json.loads(f.read_text())
        path = want["argv"][-1].replace("@REPO@", str(REPO))
        out.append((path, f.name.rsplit(".", 1)[1], want))
    return out


def test_fixtures_basic_table_equals_real_dump_modversions():
    dumps = _expected_dumps()
    paths = sorted({p for p, _, _ in dumps if Path(p).is_file()})
    p = cli("--table", "basic", *paths)
    ours = split_by_module(p.stdout, paths)
    problems = {line.split(b": ", 2)[1].decode() for line in p.stderr.splitlines()}
    compared = 0
    for path, version, want in dumps:
        if path not in ours:
            continue
        if want["status"] == 0 and path not in problems:
            assert ours[path] == want["stdout"].encode("utf-8", "surrogateescape"), (path, version)
            compared += 1
        elif want["status"] != 0 and path.endswith(".ko"):
            # (a compressed file kmod's build cannot decompress is no table problem: the listing reads it)
            # kmod refused the table (missing, size, kmod 34's unterminated names): nothing listed, or said why.
            assert not ours[path] or path in problems, (path, version)
    assert compared > 50


@pytest.mark.parametrize("module", [KMC_TEST, *(FIXTURES / "modules" / arch / f"{kind}.ko"
                                               for arch in ("x86_64", "arm", "s390x", "ppc64")
                                               for kind in ("basic+ext", "ext-only", "basic"))],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_json_lists_every_entry_of_both_tables(module):
    basic, ext = _raw_tables(module)
    p = cli("--format", "json", str(module))
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    jsonschema.validate(doc, SCHEMA)
    [mod] = doc["modules"]
    rows = [(v["crc"], v["name"]) for v in mod["versions"]]
    assert len(rows) == len(set(rows))
    assert {r for r, v in zip(rows, mod["versions"]) if "basic" in v["tables"]} == set(basic)
    assert {r for r, v in zip(rows, mod["versions"]) if "extended" in v["tables"]} == set(ext)
    assert [r for r, v in zip(rows, mod["versions"]) if "basic" in v["tables"]] == basic  # __versions order first
    if ext and module != KMC_TEST:  # the generated extended fixtures hold a Rust name of 56+ characters
        assert set(ext) - set(basic)


def _raw_tables(path: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """__versions and the extended pairs read with pyelftools, independently of kmodcompat's parsers."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        little = elf.little_endian
        word = elf.elfclass // 8
        order = "little" if little else "big"
        basic, ext = [], []
        sec = elf.get_section_by_name("__versions")
        if sec is not None:
            data = sec.data()
            for i in range(0, len(data), 64):
                crc = int.from_bytes(data[i:i + word], order)
                basic.append((crc, _dedot(data[i + word:i + 64].split(b"\0")[0].decode())))
        crcs, names = elf.get_section_by_name("__version_ext_crcs"), elf.get_section_by_name("__version_ext_names")
        if crcs is not None and names is not None:
            c = crcs.data()
            n = names.data().split(b"\0")
            ext = [(int.from_bytes(c[i:i + 4], order), _dedot(n[i // 4].decode())) for i in range(0, len(c), 4)]
    return basic, ext


def _dedot(name: str) -> str:
    """One leading '.' off, as libkmod's readers (and the listing) take ppc64 ELFv1 function names."""
    return name.removeprefix(".")


def test_several_modules_unreadable_one_named_and_exit_2(tmp_path):
    bad = tmp_path / "bad.ko"
    bad.write_bytes(b"\x7fELF")
    good = FIXTURES / "modules" / "x86_64" / "basic+ext.ko"
    p = cli(str(good), str(bad))
    assert p.returncode == 2
    assert p.stderr.decode().startswith(f"kmodcompat: {bad}: ") and len(p.stderr.splitlines()) == 1
    assert len(split_by_module(p.stdout, [str(good), str(bad)])[str(good)].splitlines()) == 8
    doc = json.loads(cli("--format", "json", str(good), str(bad)).stdout)
    jsonschema.validate(doc, SCHEMA)
    assert [e["path"] for e in doc["errors"]] == [str(bad)]


def test_malformed_table_named_its_entries_still_listed():
    path = str(FIXTURES / "modules" / "x86_64" / "bad-ext-count.ko")
    p = cli(path)
    assert p.returncode == 2
    assert b"more extended version crcs than names" in p.stderr
    assert all(line.endswith((b"\tbasic", b"\textended", b"\tbasic,extended")) for line in p.stdout.splitlines())


@pytest.mark.realtree
@pytest.mark.parametrize("name", sorted(oracle.TREES))
@pytest.mark.parametrize("version", ["kmod30", "kmod34"])
def test_real_tree_basic_table_equals_dump_modversions(name, version):
    root = oracle.tree_root(name)
    if root is None:
        pytest.skip(f"tree {name} not under {oracle.REALTREES}")
    if not oracle.kmod_available(version):
        pytest.skip(f"{version} is not runnable here")
    mods = oracle.tree_modules(root)
    real = oracle.tree_oracle(root, version, "dump-modversions")
    p = cli("--table", "basic", *mods)
    ours = split_by_module(p.stdout, mods)
    differ = [m for m in mods if ours[m] != real[m].stdout]
    assert not differ, f"{len(differ)}/{len(mods)} differ, first {differ[0]}: {real[differ[0]].stdout[:200]!r} " \
                       f"vs {ours[differ[0]][:200]!r}"
    # The default listing adds a table column and the extended-only rows; its basic rows are the same lines.
    full = split_by_module(cli(*mods).stdout, mods)
    for m in mods:
        basic = b"".join(line.rsplit(b"\t", 1)[0] + b"\n" for line in full[m].splitlines()
                         if b"basic" in line.rsplit(b"\t", 1)[1])
        assert basic == ours[m], m
