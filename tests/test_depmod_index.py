"""Tests for kmodcompat.depmod.index: the kmod binary index writer/reader.

Three layers:

* hand-made inputs with hand-computed bytes (trie shape, value order, layouts);
* synthetic files run through the *real* depmod (kmod 30 and 34.2) when those
  binaries are available -- they pin down the quirks of the text->entry rules;
* the oracle: real Debian module trees under ${REALTREES:-/tmp/realtrees}, run
  through real depmod, every .bin rebuilt from depmod's *text* outputs and
  compared byte for byte (marker ``realtree``; skipped without trees).
"""

from __future__ import annotations

import os
import random
import shlex
import struct
import subprocess
from pathlib import Path

import pytest

from . import oracle

from kmodcompat.depmod.index import (
    INDEX_MAGIC,
    INDEX_VERSION,
    LAYOUT_POSTORDER,
    LAYOUT_PREORDER,
    Index,
    alias_normalize,
    builtin_alias_index_from_modinfo,
    layout_for_kmod_version,
)
from kmodcompat.records import path_to_modname as modname_of

from .index_oracle import (
    IndexFormatError,
    alias_index_from_text,
    builtin_index_from_text,
    dep_index_from_text,
    detect_layout,
    module_priorities_from_dep_text,
    path_to_modname,
    read_index,
    symbols_index_from_text,
)

LAYOUTS = (LAYOUT_POSTORDER, LAYOUT_PREORDER)
HEADER = struct.pack(">II", INDEX_MAGIC, INDEX_VERSION)
P, V, C = 0x80000000, 0x40000000, 0x20000000


def u32(*xs: int) -> bytes:
    return struct.pack(f">{len(xs)}I", *xs)


def walk_nodes(data: bytes) -> dict[str, tuple[str, bool, int]]:
    """Raw node walk: path-to-node -> (prefix, has_values, file offset)."""
    out: dict[str, tuple[str, bool, int]] = {}
    (root,) = struct.unpack_from(">I", data, 8)
    stack = [(root, "")]
    while stack:
        ref, path = stack.pop()
        pos = ref & 0x0FFFFFFF
        here = pos
        prefix = ""
        if ref & P:
            end = data.index(b"\0", pos)
            prefix = data[pos:end].decode()
            pos = end + 1
        out[path] = (prefix, bool(ref & V), here)
        if ref & C:
            first, last = data[pos], data[pos + 1]
            offs = struct.unpack_from(f">{last - first + 1}I", data, pos + 2)
            for i, o in enumerate(offs):
                if o:
                    stack.append((o, path + prefix + chr(first + i)))
    return out


# -- writer: exact bytes --------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_empty_index_is_header_plus_empty_root(layout: str) -> None:
    # Same 12 bytes real depmod writes for an empty module tree (kmod 30 and 34.2).
    assert Index().to_bytes(layout) == HEADER + u32(12)


def test_one_key_postorder_bytes() -> None:
    idx = Index()
    assert idx.insert("abc", "v", 7) is False
    leaf = b"bc\0" + u32(1, 7) + b"v\0"  # 13 bytes at offset 12
    root = b"aa" + u32(P | V | 12)  # at 25, written last
    assert idx.to_bytes(LAYOUT_POSTORDER) == HEADER + u32(C | 25) + leaf + root


def test_one_key_preorder_bytes() -> None:
    idx = Index()
    idx.insert("abc", "v", 7)
    root = b"aa" + u32(P | V | 18)  # at 12, 6 bytes
    leaf = b"bc\0" + u32(1, 7) + b"v\0"
    assert idx.to_bytes(LAYOUT_PREORDER) == HEADER + u32(C | 12) + root + leaf


def test_empty_key_lives_in_root() -> None:
    idx = Index()
    idx.insert("", "x", 0)
    assert idx.to_bytes() == HEADER + u32(V | 12) + u32(1, 0) + b"x\0"
    assert read_index(idx.to_bytes()) == {"": [(0, "x")]}


def test_child_gaps_are_zero_offsets() -> None:
    idx = Index()
    idx.insert("a", "1", 0)
    idx.insert("c", "2", 0)
    data = idx.to_bytes(LAYOUT_PREORDER)
    # root: first 'a', last 'c', three slots, the 'b' slot is 0
    assert data[12:14] == b"ac"
    slots = struct.unpack_from(">3I", data, 14)
    assert slots[1] == 0 and slots[0] and slots[2]
    assert read_index(data) == {"a": [(0, "1")], "c": [(0, "2")]}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_shared_prefixes_make_the_patricia_trie_from_depmod_comment(layout: str) -> None:
    # The example in depmod.c: ask ate on once one ->
    #   +-a-+-sk-*   `-te-*   `-on-*-ce-*  `-e-*
    idx = Index()
    for i, k in enumerate(["once", "ask", "one", "on", "ate"]):
        idx.insert(k, k.upper(), i)
    data = idx.to_bytes(layout)
    nodes = walk_nodes(data)
    assert nodes == {
        "": ("", False, nodes[""][2]),
        "a": ("", False, nodes["a"][2]),
        "as": ("k", True, nodes["as"][2]),
        "at": ("e", True, nodes["at"][2]),
        "o": ("n", True, nodes["o"][2]),
        "onc": ("e", True, nodes["onc"][2]),
        "one": ("", True, nodes["one"][2]),
    }
    order = sorted(nodes, key=lambda n: nodes[n][2])
    if layout == LAYOUT_PREORDER:
        assert order == ["", "a", "as", "at", "o", "onc", "one"]
    else:
        assert order == ["as", "at", "a", "onc", "one", "o", ""]
    assert read_index(data) == {
        "ask": [(1, "ASK")],
        "ate": [(4, "ATE")],
        "on": [(3, "ON")],
        "once": [(0, "ONCE")],
        "one": [(2, "ONE")],
    }


def test_split_of_existing_leaf_and_key_ending_at_split() -> None:
    idx = Index()
    idx.insert("abcd", "1", 0)
    idx.insert("ab", "2", 0)  # key ends inside the leaf's prefix: split, value on parent
    idx.insert("abxy", "3", 0)  # mismatch inside: split again
    nodes = walk_nodes(idx.to_bytes())
    assert nodes["a"][:2] == ("b", True)
    assert nodes["abc"][:2] == ("d", True)
    assert nodes["abx"][:2] == ("y", True)


def test_trie_bytes_do_not_depend_on_insertion_order() -> None:
    keys = [f"pci:v{i % 7:04X}d{i:04X}sv*" for i in range(300)] + ["p", "pci", "pci:", "z"]
    rng = random.Random(5)
    seen: dict[str, set[bytes]] = {layout: set() for layout in LAYOUTS}
    for _ in range(5):
        rng.shuffle(keys)
        idx = Index()
        for k in keys:
            idx.insert(k, "m" + k[-3:], len(k))
        for layout in LAYOUTS:
            seen[layout].add(idx.to_bytes(layout))
    assert all(len(v) == 1 for v in seen.values())


# -- values: ordering, duplicates -------------------------------------------------


def test_values_sorted_by_priority_equal_priority_newest_first() -> None:
    idx = Index()
    assert idx.insert("k", "b", 5) is False
    assert idx.insert("k", "a", 3) is False
    assert idx.insert("k", "c", 5) is False
    assert idx.insert("k", "d", 1) is False
    # index_add_value(): insert before the first value with priority >= new one
    assert idx.get("k") == [(1, "d"), (3, "a"), (5, "c"), (5, "b")]
    assert read_index(idx.to_bytes())["k"] == [(1, "d"), (3, "a"), (5, "c"), (5, "b")]


def test_duplicates_are_kept_and_reported() -> None:
    idx = Index()
    assert idx.insert("alias", "mod", 4) is False
    assert idx.insert("alias", "mod", 4) is True
    assert idx.insert("alias", "mod", 9) is True  # same string, other priority: still a duplicate
    assert idx.insert("alias", "other", 0) is False
    assert idx.get("alias") == [(0, "other"), (4, "mod"), (4, "mod"), (9, "mod")]
    data = idx.to_bytes()
    assert read_index(data)["alias"] == idx.get("alias")


@pytest.mark.parametrize(
    "key,value,prio",
    [("ké", "v", 0), ("k", "vé", 0), ("a\0b", "v", 0), ("k", "v", -1), ("k", "v", 2**32)],
)
def test_insert_rejects_what_depmod_cannot_store(key: str, value: str, prio: int) -> None:
    with pytest.raises(ValueError):
        Index().insert(key, value, prio)


def test_unknown_layout_rejected() -> None:
    with pytest.raises(ValueError):
        Index().to_bytes("inorder")


def test_len_contains_as_dict() -> None:
    idx = Index()
    idx.insert("b", "1", 1)
    idx.insert("a", "2", 2)
    assert len(idx) == 2 and "a" in idx and "c" not in idx
    assert list(idx.as_dict()) == ["a", "b"]
    assert idx.get("c") is None


# -- reader -------------------------------------------------------------------


def random_index(rng: random.Random, n: int) -> Index:
    alphabet = "ab-_:*[]0z"
    idx = Index()
    for _ in range(n):
        k = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 8)))
        v = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 5)))
        idx.insert(k, v, rng.randrange(0, 4))
    return idx


@pytest.mark.parametrize("seed", range(20))
def test_round_trip_random(seed: int) -> None:
    rng = random.Random(seed)
    idx = random_index(rng, rng.randrange(0, 200))
    pre, post = idx.to_bytes(LAYOUT_PREORDER), idx.to_bytes(LAYOUT_POSTORDER)
    assert len(pre) == len(post)
    assert read_index(pre) == read_index(post) == idx.as_dict()


def test_detect_layout() -> None:
    idx = Index()
    for k in ("x", "y"):
        idx.insert(k, k, 0)
    assert detect_layout(idx.to_bytes(LAYOUT_PREORDER)) == LAYOUT_PREORDER
    assert detect_layout(idx.to_bytes(LAYOUT_POSTORDER)) == LAYOUT_POSTORDER
    assert detect_layout(Index().to_bytes()) is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        HEADER[:8],
        struct.pack(">III", 0xB007FA57, 12, 12),
        struct.pack(">III", 0xDEADBEEF, INDEX_VERSION, 12),
        struct.pack(">III", INDEX_MAGIC, 0x00030001, 12),
        HEADER + u32(P | 12) + b"abc",  # unterminated prefix
        HEADER + u32(C | 12) + b"ba" + u32(0, 0),  # first > last
        HEADER + u32(C | 12) + b"aa" + u32(C | 12),  # cycle
        HEADER + u32(V | 12) + u32(2, 0) + b"x\0",  # value count beyond the data
        HEADER + u32(C | 12) + b"aa" + u32(V | 999),  # child outside the file
    ],
)
def test_reader_rejects_malformed(data: bytes) -> None:
    with pytest.raises(IndexFormatError):
        read_index(data)


def test_roundtrip_30000_keys() -> None:
    rng = random.Random(1)
    idx = Index()
    for i in range(30000):
        idx.insert(
            f"pci:v{rng.randrange(1 << 16):08X}d{rng.randrange(1 << 16):08X}sv*sd*bc*sc*i*",
            f"mod{i % 3000}",
            i % 3000,
        )
    data = idx.to_bytes()
    assert read_index(data) == idx.as_dict()


def test_layout_for_kmod_version() -> None:
    assert layout_for_kmod_version(30) == LAYOUT_POSTORDER
    assert layout_for_kmod_version("33") == LAYOUT_POSTORDER
    assert layout_for_kmod_version("34.2") == LAYOUT_PREORDER
    assert layout_for_kmod_version("kmod version 35") == LAYOUT_PREORDER
    with pytest.raises(ValueError):
        layout_for_kmod_version("kmod")


# -- normalisation helpers ----------------------------------------------------------


def test_modname_and_path_helpers() -> None:
    assert modname_of("snd-hda-intel.ko.xz") == "snd_hda_intel"
    assert modname_of("kernel/dir/") == ""
    assert modname_of("x" * 5000 + ".ko") == "x" * 4095  # modname_normalize(): PATH_MAX - 1
    assert path_to_modname("kernel/sound/pci/snd-hda-intel.ko.zst") == "snd_hda_intel"
    assert path_to_modname("kernel/dir/") is None
    assert path_to_modname("noext\n") == "noext\n"  # kmod keeps fgets()'s newline here


@pytest.mark.parametrize(
    "alias,expected",
    [
        ("fs-virtiofs", "fs_virtiofs"),
        ("pci:v[0-9]*d-1", "pci:v[0-9]*d_1"),
        ("[ab-c]-d", "[ab-c]_d"),
        ("usb:v*p*d*dc*dsc*dp*ic*isc*ip*in*", "usb:v*p*d*dc*dsc*dp*ic*isc*ip*in*"),
        ("bad]", None),
        ("bad[", None),
        ("p[q", None),
        ("w" * 5000, "w" * 4095),
    ],
)
def test_alias_normalize(alias: str, expected: str | None) -> None:
    assert alias_normalize(alias) == expected


# -- text -> entries --------------------------------------------------------------

DEP = (
    "kernel/a/x-y.ko.xz: kernel/b/z.ko.xz\n"
    "kernel/b/z.ko.xz:\n"
    "kernel/c/w.ko.xz: kernel/a/x-y.ko.xz kernel/b/z.ko.xz\n"
)


def test_dep_index_from_text() -> None:
    idx = dep_index_from_text(DEP)
    assert idx.as_dict() == {
        "w": [(2, "kernel/c/w.ko.xz: kernel/a/x-y.ko.xz kernel/b/z.ko.xz")],
        "x_y": [(0, "kernel/a/x-y.ko.xz: kernel/b/z.ko.xz")],
        "z": [(1, "kernel/b/z.ko.xz:")],
    }
    assert module_priorities_from_dep_text(DEP) == {"x_y": 0, "z": 1, "w": 2}


def test_alias_index_from_text() -> None:
    text = (
        "# Aliases extracted from modules themselves.\n"
        "alias pci:v00001234d*sv*sd*bc*sc*i* w\n"
        "alias fs-foo x_y\n"
        "alias pci:v00001234d*sv*sd*bc*sc*i* x_y\n"
        "alias bad] z\n"
    )
    idx = alias_index_from_text(text, module_priorities_from_dep_text(DEP))
    assert idx.as_dict() == {
        "fs_foo": [(0, "x_y")],
        "pci:v00001234d*sv*sd*bc*sc*i*": [(0, "x_y"), (2, "w")],
    }
    with pytest.raises(ValueError):
        alias_index_from_text("alias foo nosuchmod\n", {})


def test_symbols_index_from_text() -> None:
    text = "# Aliases for symbols, used by symbol_request().\nalias symbol:do-it z\nalias symbol:b w\n"
    idx = symbols_index_from_text(text, module_priorities_from_dep_text(DEP))
    assert idx.as_dict() == {"symbol:b": [(2, "w")], "symbol:do-it": [(1, "z")]}


BUILTIN = (
    "kernel/drivers/a/foo-bar.ko\n"
    "kernel/drivers/a/foo-bar.ko\n"
    "_bad/underscore.ko\n"
    "\n"
    "1digit/x.ko\n"
    "kernel/noext\n"
    "kernel/z/zed.ko\n"
    "plain.ko\n"
    "kernel/a.b.c/dotdir.ko\n"
    "kernel/trailing/\n"
    "kernel/last.ko"
)
# What kmod 30 and 34.2 depmod wrote for BUILTIN (read back from their .bin).
BUILTIN_EXPECTED = {
    "\n": [(0, "")],
    "dotdir": [(0, "")],
    "foo_bar": [(0, ""), (0, "")],
    "last": [(0, "")],
    "noext\n": [(0, "")],
    "plain": [(0, "")],
    "zed": [(0, "")],
}


def test_builtin_index_from_text() -> None:
    assert builtin_index_from_text(BUILTIN).as_dict() == BUILTIN_EXPECTED


def _modinfo_edge_cases() -> bytes:
    recs = [
        b"m1.alias=a1", b"m1.noeq", b"m1.alias=a2", b"m1.alias=a3",
        b"m2.alias=b1", b"nodot", b"m2.alias=b2",
        b"m3.alias=c1", b"", b"m3.alias=c2",
        b"m4.alias=d1", b"m4.x=", b"m4.alias=d2",
        b"m5.=foo", b"m5.alias=e1",
        b".alias=f1", b"m6.alias=f2",
        b"m7.alias=", b"m7.alias=g1",
        b"m-8.alias=h=1-x", b"m9.alias.sub=i1", b"m9.ALIAS=i2", b"m10.alias =j1", b"m11.alias=k1",
        b"x" * 4095 + b".alias=long4095", b"y" * 4096 + b".alias=long4096", b"m12.alias=l1",
        b"m13.alias=" + b"v" * 4095, b"m14.alias=" + b"w" * 4096, b"m15.alias=n1",
        b"m16.alias=[ab-c]-d", b"m16.alias=p[q", b"m17.alias=dup", b"m18.alias=dup", b"m17.alias=dup",
    ]  # fmt: skip
    return b"\0".join(recs) + b"\0" + b"m19.alias=tail"  # last record unterminated


# What kmod 30 and 34.2 depmod wrote for _modinfo_edge_cases() (read back from the .bin).
MODINFO_EXPECTED = {
    "[ab-c]_d": [(0, "m16")],
    "a1": [(0, "m1")],
    "a3": [(0, "m1")],  # "m1.noeq" has no '=': the flush swallows "m1.alias=a2"
    "b1": [(0, "m2")],
    "b2": [(0, "m2")],  # "nodot" is dropped on its own
    "c1": [(0, "m3")],
    "c2": [(0, "m3")],
    "d1": [(0, "m4")],
    "d2": [(0, "m4")],
    "dup": [(0, "m17"), (0, "m18"), (0, "m17")],  # priority 0 everywhere: reverse file order
    "e1": [(0, "m5")],
    "f2": [(0, "m6")],
    "g1": [(0, "m7")],
    "h=1_x": [(0, "m-8")],  # modname is not normalised
    "k1": [(0, "m11")],
    "l1": [(0, "m12")],
    "long4095": [(0, "x" * 4095)],
    "long4096": [(0, "y" * 4095)],
    "n1": [(0, "m15")],
    "v" * 4095: [(0, "m13")],
    "w" * 4095: [(0, "m14")],
}


def test_builtin_alias_index_from_modinfo_edge_cases() -> None:
    assert builtin_alias_index_from_modinfo(_modinfo_edge_cases()).as_dict() == MODINFO_EXPECTED


def test_builtin_alias_index_plain() -> None:
    data = b"aes_generic.alias=crypto-aes\0aes_generic.license=GPL\0aes_generic.alias=aes\0"
    assert builtin_alias_index_from_modinfo(data).as_dict() == {
        "aes": [(0, "aes_generic")],
        "crypto_aes": [(0, "aes_generic")],
    }


# -- real depmod ------------------------------------------------------------------

def _depmod_cmd(version: int) -> list[str] | None:
    """argv prefix of a real depmod of that kmod version, or None if unavailable.

    Override with $KMOD30_DEPMOD / $KMOD34_DEPMOD (a shell-quoted command); else
    tests/oracle.py's (the host's kmod 30, or the release unpacked from Debian).
    """
    env = os.environ.get(f"KMOD{version}_DEPMOD")
    try:
        cmd = shlex.split(env) if env else oracle.kmod_argv(f"kmod{version}", "depmod")
        out = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=60)
    except (OSError, oracle.archive().ArchiveError):
        return None
    if f"kmod version {version}" not in out.stdout:
        return None
    return cmd


_CMDS: dict[int, list[str] | None] = {}


def depmod_cmd(version: int) -> list[str]:
    if version not in _CMDS:
        _CMDS[version] = _depmod_cmd(version)
    cmd = _CMDS[version]
    if cmd is None:
        pytest.skip(f"no kmod {version} depmod available (set KMOD{version}_DEPMOD)")
    return cmd


def run_depmod(version: int, root: Path, krel: str, confdir: Path) -> None:
    proc = subprocess.run(
        depmod_cmd(version) + ["-C", str(confdir), "-b", str(root), krel],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr


KMOD_VERSIONS = (30, 34)


@pytest.mark.parametrize("version", KMOD_VERSIONS)
def test_real_depmod_synthetic_builtin_files(version: int, tmp_path: Path) -> None:
    """Pin the modules.builtin / modules.builtin.modinfo rules on the real depmod."""
    krel = "9.9.9-test"
    d = tmp_path / "root" / "lib" / "modules" / krel
    d.mkdir(parents=True)
    (d / "modules.builtin").write_text(BUILTIN)
    (d / "modules.builtin.modinfo").write_bytes(_modinfo_edge_cases())
    (tmp_path / "conf").mkdir()
    run_depmod(version, tmp_path / "root", krel, tmp_path / "conf")
    layout = layout_for_kmod_version(version)
    real_builtin = (d / "modules.builtin.bin").read_bytes()
    real_alias = (d / "modules.builtin.alias.bin").read_bytes()
    assert read_index(real_builtin) == BUILTIN_EXPECTED
    assert read_index(real_alias) == MODINFO_EXPECTED
    assert builtin_index_from_text(BUILTIN).to_bytes(layout) == real_builtin
    assert builtin_alias_index_from_modinfo(_modinfo_edge_cases()).to_bytes(layout) == real_alias
    # no modules at all: the three module indexes are bare headers
    for name in ("modules.dep.bin", "modules.alias.bin", "modules.symbols.bin"):
        assert (d / name).read_bytes() == Index().to_bytes(layout)


# -- oracle on real trees ---------------------------------------------------------------


def _real_trees() -> list[tuple[str, Path, str]]:
    base = Path(os.environ.get("REALTREES", "/tmp/realtrees"))
    trees = []
    if base.is_dir():
        for info in sorted(base.glob("*/TREE-INFO")):
            krel = next(
                (ln.split("=", 1)[1].strip() for ln in info.read_text().splitlines() if ln.startswith("krel=")),
                None,
            )
            if krel and (info.parent / "lib" / "modules" / krel).is_dir():
                trees.append((info.parent.name, info.parent, krel))
    return trees


REAL_TREES = _real_trees()
BIN_FILES = ("dep", "alias", "symbols", "builtin", "builtin.alias")


_RUNS: dict[tuple[str, int], Path] = {}


@pytest.fixture(scope="session")
def depmod_outputs(tmp_path_factory: pytest.TempPathFactory):
    def get(tree: str, src: Path, krel: str, version: int) -> Path:
        key = (tree, version)
        if key not in _RUNS:
            base = tmp_path_factory.mktemp(f"{tree}-kmod{version}")
            moddir = oracle.depmod_scratch_root(src, base / "root")  # src's TREE-INFO names krel
            (base / "conf").mkdir()
            run_depmod(version, base / "root", krel, base / "conf")
            _RUNS[key] = moddir
        return _RUNS[key]

    return get


def _derive(moddir: Path, name: str) -> Index:
    def rd(f: str) -> bytes:
        return (moddir / f).read_bytes()

    if name == "builtin":
        return builtin_index_from_text(rd("modules.builtin"))
    if name == "builtin.alias":
        return builtin_alias_index_from_modinfo(rd("modules.builtin.modinfo"))
    dep = rd("modules.dep")
    if name == "dep":
        return dep_index_from_text(dep)
    prios = module_priorities_from_dep_text(dep)
    if name == "alias":
        return alias_index_from_text(rd("modules.alias"), prios)
    return symbols_index_from_text(rd("modules.symbols"), prios)


@pytest.mark.realtree
@pytest.mark.skipif(not REAL_TREES, reason="no real module tree (TREE-INFO with krel=) under ${REALTREES:-/tmp/realtrees}")
@pytest.mark.parametrize("name", BIN_FILES)
@pytest.mark.parametrize("version", KMOD_VERSIONS)
@pytest.mark.parametrize(
    "tree,src,krel",
    [pytest.param(t, s, k, id=t) for t, s, k in REAL_TREES] or [pytest.param("none", Path("/"), "", id="no-trees")],
)
def test_oracle_real_tree(tree: str, src: Path, krel: str, version: int, name: str, depmod_outputs) -> None:
    """Rebuild modules.<name>.bin from depmod's text outputs; compare with depmod's own .bin."""
    depmod_cmd(version)
    moddir = depmod_outputs(tree, src, krel, version)
    real = (moddir / f"modules.{name}.bin").read_bytes()
    idx = _derive(moddir, name)
    layout = layout_for_kmod_version(version)
    mine = idx.to_bytes(layout)
    if mine != real:
        same_content = read_index(real) == idx.as_dict()
        pytest.fail(
            f"{tree} kmod {version} modules.{name}.bin differs: {len(mine)} vs {len(real)} bytes, "
            f"decoded content {'identical (layout problem)' if same_content else 'differs'}; "
            f"real layout {detect_layout(real)}"
        )
    assert detect_layout(real) in (layout, None)
