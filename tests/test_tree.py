"""kmodcompat.depmod.tree and the depmod.d configuration: search, priorities, ordering.

The whole-tree behaviour is checked against real depmod in test_depmod.py and
test_depmod_realtrees.py; these tests pin the individual rules (each one
observed on kmod 30 and 34.2, see docs/depmod-behaviour.md).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from kmodcompat.kmod.profile import KMOD30, KMOD34
from kmodcompat.depmod.config import SEARCH_BUILTIN, SearchEntry, config_paths, load_config, read_wrapped_lines
from kmodcompat.depmod.libkmod_hash import align_power2, hash_order, hash_superfast
from kmodcompat.files.stdio import fgets_lines
from kmodcompat.depmod.tree import _uncrelpath, load_tree, make_absolute, path_to_modname

from . import oracle
from .paths import X86_64

KVER = "6.12.0-test"


def test_hash_order_matches_real_depmod_module_order():
    # modules.dep order real depmod (30 and 34.2) printed for a tree without modules.order
    # (the fixture probe of docs/depmod-behaviour.md): the 512-bucket modules_by_name order.
    seen = [b"notelf", b"basic", b"none", b"corrupt", b"bad_versions_nonul", b"exports_nocrc", b"no_modinfo",
            b"basic+ext", b"xzc", b"truncated", b"exports_rel", b"ext_only"]
    assert hash_order(reversed(seen), 512) == seen
    # modules.symbols order of the same run (2048 buckets)
    syms = [b"_RNvCs7Fz3hV9gT2k_12kmc_exporter29kmc_rust_exported_long_symbol", b"ns_sym", b"short_sym", b"MY_NS",
            b"gpl_sym"]
    assert hash_order(sorted(syms), 2048) == syms


def test_hash_superfast_tail_cases_and_signed_char():
    values = {hash_superfast(k) for k in (b"", b"a", b"ab", b"abc", b"abcd", b"abcde", b"\xe9", b"a\xe9b")}
    assert len(values) == 8 and all(0 <= v < 2**32 for v in values)
    assert hash_superfast(b"\xe9") != hash_superfast(b"\x69")  # the byte is read as a signed char
    assert align_power2(512) == 512 and align_power2(513) == 1024 and align_power2(2048) == 2048


def test_path_helpers():
    assert path_to_modname("/a/kernel/snd-hda-intel.ko.xz") == "snd_hda_intel"
    assert path_to_modname("x/basic+ext.ko") == "basic+ext"
    assert _uncrelpath("kernel/fs/foo-bar.ko.zst", "foo_bar") == "kernel/fs/foo-bar.ko"
    assert _uncrelpath("foo.ko.xz", "foo") == "foo.ko"
    assert _uncrelpath("d/a.b.ko", "a") == "d/a.b."  # strlen(modname) + 3 bytes of the basename
    assert make_absolute("/x//y") == "/x//y"
    assert fgets_lines(b"ab\ncd", 4096) == [b"ab\n", b"cd"]
    assert fgets_lines(b"x" * 5000 + b"\n", 4096) == [b"x" * 4095, b"x" * 905 + b"\n"]


def test_wrapped_lines():
    assert read_wrapped_lines(b"search a \\\n b\nx\\y\n\\") == [(b"search a  b", 2), (b"xy", 3)]


def _conf(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


def test_config_lists_are_last_written_first_and_files_sorted_by_name(tmp_path):
    base = _conf(tmp_path, {
        "a/20-b.conf": "search updates extra\nexclude foo bar\n",
        "a/10-a.conf": "search built-in\nexternal * /opt/ext\nexternal ^7 /never\n",
        "b/20-b.conf": "search hidden\n",  # same name as a/20-b.conf: the earlier directory wins
        "b/30-c.conf": "override mod 6\\.12.* extra\noverride other 5.* x\n  # not a comment\nbogus\noverride x\n",
        "b/skip.txt": "search never\n",
        "b/.hidden.conf": "search never\n",
    })
    cfg = load_config([str(base / "a"), str(base / "b"), str(base / "missing")], KVER)
    assert [s.path or s.kind for s in cfg.searches] == ["extra", "updates", SEARCH_BUILTIN]
    assert cfg.overrides == (("mod", "extra"),)
    assert cfg.externals == ("/opt/ext",)
    assert cfg.excludes == ("bar", "foo")
    assert [Path(f).name for f in cfg.files] == ["10-a.conf", "20-b.conf", "30-c.conf"]
    assert [d.text for d in cfg.diagnostics] == [
        f"{base}/b/30-c.conf:3: ignoring bad line starting with '#'",
        f"{base}/b/30-c.conf:4: ignoring bad line starting with 'bogus'",
        f"{base}/b/30-c.conf:5: ignoring bad line starting with 'override'",
    ]


def test_config_defaults(tmp_path):
    cfg = load_config([str(tmp_path / "none")], KVER)
    assert cfg.searches == (SearchEntry("path", "updates"),)
    assert config_paths(KMOD34, "/root/") == ["/root/etc/depmod.d", "/root/run/depmod.d",
                                               "/root/usr/local/lib/depmod.d", "/root/usr/lib/depmod.d",
                                               "/root/lib/depmod.d"]
    assert "/usr/lib/depmod.d" not in config_paths(KMOD30)


def _tree(tmp_path: Path, files: list[str], order: str | None = None) -> Path:
    moddir = tmp_path / "root" / "lib" / "modules" / KVER
    for rel in files:
        (moddir / rel).parent.mkdir(parents=True, exist_ok=True)
        (moddir / rel).write_bytes(b"not a module")
    if order is not None:
        (moddir / "modules.order").write_text(order)
    return tmp_path / "root"


def _winners(root: Path, conf: str, kmod=KMOD34) -> dict[str, str]:
    cfgdir = root.parent / "conf"
    cfgdir.mkdir(exist_ok=True)
    (cfgdir / "t.conf").write_text(conf)
    tree = load_tree(str(root), KVER, config=[str(cfgdir)], kmod=kmod, parse=False)
    return {m.name: m.output_path for m in tree.modules}


@pytest.mark.parametrize("conf,winner", [
    ("", "updates/m.ko"),  # default: search updates; everything else has no priority (-1)
    ("search built-in updates\n", None),  # kernel/ and extra/ tie: the first one readdir() returns stays
    ("search extra updates built-in\n", "extra/m.ko"),
    ("search updates extra\n", "updates/m.ko"),
    ("override m * extra\n", "extra/m.ko"),
    ("override m * kernel\nsearch updates\n", "kernel/m.ko.xz"),
    ("exclude updates extra\n", "kernel/m.ko.xz"),
])
def test_priority_between_same_named_modules(tmp_path, conf, winner):
    root = _tree(tmp_path, ["kernel/m.ko.xz", "updates/m.ko", "extra/m.ko", "kernel/other.ko.gz", "build/x.ko"])
    got = _winners(root, conf)
    if winner is not None:
        assert got == {"m": winner}  # .ko.gz is not a suffix of Debian's kmod builds; build/ is skipped
    for version in ("kmod30", "kmod34"):
        if not oracle.kmod_available(version):
            continue
        real = oracle.run_kmod(version, "depmod", ["-C", str(root.parent / "conf"), "-b", str(root), "-n", KVER])
        assert real.stdout.split(b":")[0].decode() == got["m"], version


def test_modules_order_sorting_and_messages(tmp_path):
    names = ["kernel/a.ko", "kernel/b-x.ko.zst", "kernel/c.ko", "kernel/d.ko"]
    root = _tree(tmp_path, names, "kernel/c.ko\nkernel/b-x.ko\nkernel/c.ko\nkernel/nothere.ko\n")
    moddir = root / "lib" / "modules" / KVER
    for kmod, expect in ((KMOD34, ["c", "b_x"]), (KMOD30, ["b_x", "c"])):
        tree = load_tree(str(root), KVER, config=[], kmod=kmod, parse=False)
        assert [m.name for m in tree.modules[:2]] == expect
        assert sorted(m.name for m in tree.modules[2:]) == ["a", "d"]
        assert [m.name for m in tree.modules[2:]] == [n.decode() for n in hash_order([b"a", b"d"], 512)]
    (moddir / "modules.order").write_text("kernel/c.ko\nkernel/a.ko")
    tree = load_tree(str(root), KVER, config=[], parse=False)
    assert [d.text for d in tree.diagnostics] == [f"{moddir}/modules.order:2 corrupted line misses '\\n'"]
    assert [m.name for m in tree.modules] == [n.decode() for n in hash_order([b"a", b"b_x", b"c", b"d"], 512)]
    (moddir / "modules.order").unlink()
    tree = load_tree(str(root), KVER, config=[], parse=False)
    assert [d.text for d in tree.diagnostics] == [
        f"could not open modules.order at {moddir}: No such file or directory"]


def test_bare_module_directory_and_failures_kept(tmp_path):
    root = _tree(tmp_path, ["kernel/bad.ko"], "kernel/bad.ko\n")
    moddir = root / "lib" / "modules" / KVER
    tree = load_tree(str(moddir), config=[])
    assert tree.kver == KVER and tree.dirname == str(moddir)
    assert [m.output_path for m in tree.modules] == ["kernel/bad.ko"]
    assert [m.name for m in tree.failures] == ["bad"] and tree.failures[0].error.errno == 8  # ENOEXEC
    assert tree.builtin is None and tree.builtin_names == ()


def test_link_loops_dangling_links_and_unreadable_dirs_are_reported_not_hung(tmp_path):
    """A hostile tree: links back to the root, a dangling module link, a directory we cannot read."""
    fix = X86_64
    moddir = tmp_path / "lib" / "modules" / "1.2.3"
    (moddir / "kernel").mkdir(parents=True)
    shutil.copy(fix / "basic.ko", moddir / "kernel" / "a.ko")
    (moddir / "kernel" / "loop1").symlink_to(moddir)
    (moddir / "kernel" / "loop2").symlink_to(moddir / "kernel")
    (moddir / "kernel" / "gone.ko").symlink_to(tmp_path / "nowhere.ko")
    locked = moddir / "kernel" / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        tree = load_tree(str(tmp_path), "1.2.3", config=[])
    finally:
        locked.chmod(0o755)
    assert [m.name for m in tree.modules] == ["a"]
    reasons = dict(tree.skipped)
    assert "symbolic link loop" in reasons[str(moddir / "kernel" / "loop1")]
    assert "broken" in reasons[str(moddir / "kernel" / "gone.ko")]
    if os.geteuid() != 0:  # root reads a mode-0 directory anyway
        assert "cannot read" in reasons[str(locked)]


def _c_loop_existing_wins(dirname, config, oldpath, newpath, modname):
    """depmod_module_is_higher_priority() transcribed loop for loop from tools/depmod.c (the reference for
    kmodcompat.depmod.tree._Priorities, which indexes the configuration instead of walking it per pair)."""
    def starts(key, prefix):
        return len(key) > len(prefix) and key[len(prefix)] == "/" and key.startswith(prefix)

    cut = len(modname)
    new_key = newpath[:newpath.rfind("/") + 1 + cut]
    old_key = oldpath[:oldpath.rfind("/") + 1 + cut]
    new_rel = new_key[len(dirname) + 1:] if newpath.startswith(dirname) else None
    old_rel = old_key[len(dirname) + 1:] if oldpath.startswith(dirname) else None
    for mod, subdir in config.overrides:
        if new_rel == f"{subdir}/{mod}":
            return False
        if old_rel == f"{subdir}/{mod}":
            return True
    bprio = oldprio = newprio = -1
    i = 0
    for se in config.searches:
        if se.kind == SEARCH_BUILTIN:
            bprio = i
        elif se.kind == "external":
            for ext in config.externals:
                if starts(new_key, ext):
                    newprio = i
                if starts(old_key, ext):
                    oldprio = i
                i += 1
        elif new_rel is not None and starts(new_rel, se.path):
            newprio = i
        elif old_rel is not None and starts(old_rel, se.path):
            oldprio = i
        i += 1
    newprio = bprio if newprio < 0 else newprio
    oldprio = bprio if oldprio < 0 else oldprio
    return newprio <= oldprio


def test_indexed_priorities_agree_with_the_c_loop():
    import random

    from kmodcompat.depmod.config import DepmodConfig
    from kmodcompat.depmod.tree import _Found, _Priorities

    rng = random.Random(3)
    dn = "/r/lib/modules/6.1"
    dirs = ["kernel", "updates", "extra", "kernel/sub", "updates/x", "extra/a/b", "weird"]
    exts = ["/opt/ext", "/opt/ext/sub", dn + "/extra", "/other", "/opt/ext/"]
    for _ in range(2000):
        searches = [SearchEntry("built-in") if r < 0.15 else SearchEntry("external") if r < 0.3
                    else SearchEntry("path", rng.choice(dirs)) for r in (rng.random() for _ in range(rng.randint(1, 6)))]
        cfg = DepmodConfig(tuple(searches), tuple((rng.choice(["m", "x"]), rng.choice(dirs))
                                                  for _ in range(rng.randint(0, 3))),
                           tuple(rng.choices(exts, k=rng.randint(0, 3))), ())
        prio = _Priorities(dn, cfg)
        for _ in range(5):
            a, b = (f"{dn}/{rng.choice(dirs)}/m{rng.choice(['.ko', '.ko.xz'])}" if rng.random() < 0.7
                    else f"{rng.choice(exts)}/m.ko" for _ in range(2))
            found = _Found("m", a, None, a[len(dn) + 1:] if a.startswith(dn) else None)
            assert prio.existing_wins(found, b, "m") == _c_loop_existing_wins(dn, cfg, a, b, "m"), (cfg, a, b)
