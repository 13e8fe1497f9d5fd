"""Issue 15, everything around the module files: each finding's input, the command, a clear result within bounds.

Every command runs in a child process under RLIMIT_AS 1 GiB and a 10 s timeout
(tests/hostile_trees.run_bounded): a hang, a MemoryError or a traceback fails
the test. Where real kmod is installed, depmod's own output is compared with
it byte for byte (real depmod blocks on a FIFO and reads /dev/zero forever, so
those cases are compared with what kmodcompat says instead).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import pytest

from kmodcompat.depmod.tree import load_tree
from kmodcompat.report import html as html_report
from kmodcompat.report import markdown as md_report

from . import oracle
from .hostile_trees import (FIXTURES, KVER, TIMEOUT, as_nobody, clean_failure_lines, deep_dirs, gzip_bomb,
                            module_dir, put_at_depth, remove_tree, run_bounded, shared_tmpdir, small_tree, special)

METADATA = ("modules.order", "modules.builtin", "modules.builtin.modinfo")


def _ok(run, statuses=(0,)):
    assert not run.timed_out, f"no answer within {TIMEOUT} s"
    clean_failure_lines(run.stderr)
    assert run.status in statuses, (run.status, run.stderr[-3000:].decode("utf-8", "replace"))
    return run


def _report(root: Path, out: Path, *extra: str, kver: str = KVER, statuses=(0,)):
    run = _ok(run_bounded(["report", "-b", str(root), kver, "--out", str(out), "--no-cache", "-j", "1", *extra]),
              statuses)
    return run, (json.loads((out / "report.json").read_text()) if run.status in (0, 1) else None)


def _depmod(root: Path, config: Path | None, kver: str = KVER, version: str = "kmod30", statuses=(0,)):
    args = ["depmod", "--as", version, "-b", str(root), "-n", kver] + (["-C", str(config)] if config else [])
    return _ok(run_bounded(args), statuses)


def _real_depmod(root: Path, config: Path | None, kver: str = KVER, version: str = "kmod30"):
    """Real depmod -n (None without kmod), with a timeout of its own: it may be what hangs."""
    if not oracle.kmod_available(version):
        return None
    args = oracle.kmod_argv(version, "depmod") + ["-b", str(root), "-n", kver] + (["-C", str(config)] if config else [])
    p = subprocess.run(args, capture_output=True, timeout=60, env=oracle.ENV)
    return p


def _same_as_real(root: Path, config: Path | None, kver: str = KVER) -> None:
    for version in ("kmod30", "kmod34"):
        real = _real_depmod(root, config, kver, version)
        if real is None:
            continue
        ours = _depmod(root, config, kver, version, statuses=(real.returncode,))
        assert ours.stderr == real.stderr, version
        assert ours.stdout == real.stdout, version


def _empty_config(tmp_path: Path) -> Path:
    d = tmp_path / "depmod.d"
    d.mkdir(exist_ok=True)
    return d


# -- tree metadata and configuration files (high) ------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_special_metadata_files_are_refused_not_waited_on(tmp_path, kind):
    moddir = small_tree(tmp_path)
    for meta in METADATA:
        special(moddir / meta, kind)
    run, doc = _report(tmp_path, tmp_path / "out")
    skipped = {x["path"]: x["reason"] for x in doc["unreadable"] if x["code"] == "skipped"}
    what = "FIFO" if kind == "fifo" else "symbolic link to a character device"
    assert [skipped[str(moddir / meta)] for meta in METADATA] == [f"not a regular file ({what})"] * 3
    assert doc["counts"]["modules"] == 4 and doc["counts"]["unreadable"] == 0
    dep = _depmod(tmp_path, _empty_config(tmp_path))  # -n writes no index: only modules.order is opened
    assert (f"depmod: WARNING: could not open modules.order at {moddir}: not a regular file ({what})".encode()
            in dep.stderr.splitlines())
    assert dep.stdout.count(b".ko:") == 4
    # Without -n depmod also reads modules.builtin and .modinfo, for the indexes it writes.
    dep = _ok(run_bounded(["depmod", "--as", "kmod34", "-b", str(tmp_path), KVER, "-C", str(_empty_config(tmp_path))]))
    for meta in ("modules.builtin", "modules.builtin.modinfo"):
        assert f"could not open {meta} at {moddir}: not a regular file ({what})".encode() in dep.stderr, meta
    assert (moddir / "modules.dep").read_bytes().count(b".ko:") == 4


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_special_depmod_d_file_is_refused_not_waited_on(tmp_path, kind):
    small_tree(tmp_path)
    conf = _empty_config(tmp_path)
    special(conf / "evil.conf", kind)
    (conf / "good.conf").write_text("search kernel\n")
    dep = _depmod(tmp_path, conf)
    assert f"depmod: ERROR: file parse {conf}/evil.conf: not a regular file (".encode() in dep.stderr
    assert dep.stdout.count(b".ko:") == 4


def test_depmod_d_quirks_of_each_release(tmp_path):
    """Found by bench/fuzz_trees.py: kmod 30 keeps a final backslash as the byte 0xff (freadline_wrapped()
    stores getc()'s EOF; fixed in 34 by 7805c95) and does not check fstatat() on a .conf entry (a55c094)."""
    moddir = small_tree(tmp_path)
    (moddir / "extra").mkdir()
    conf = _empty_config(tmp_path)
    (conf / "0-dir.conf").mkdir()
    (conf / "1-gone.conf").symlink_to("nowhere")  # v30: the stat buffer still says "directory"
    (conf / "2-x.conf").write_bytes(b"exclude kernel\\")  # v30: excludes "kernel\xff", v34: "kernel"
    (conf / "3-gone.conf").symlink_to("nowhere")  # v30, after a regular file: fails in cfg_file_parse()
    (conf / "4-y.conf").write_bytes(b"search extra\n\\")  # v30: a last line "\xff", a bad line
    v30 = [f"{conf}/4-y.conf:2: ignoring bad line starting with '\udcff'"]
    last_dir = False  # v30's stat buffer: the last entry stat()ed in readdir order
    for name in os.listdir(conf):
        if name.endswith("gone.conf"):
            v30.append(f"Directories inside directories are not supported: {conf}/{name}" if last_dir
                       else f"file parse {conf}/{name}: No such file or directory")
        else:
            last_dir = name == "0-dir.conf"
    for version, expect in (("kmod30", v30), ("kmod34", [f"Cannot stat directory entry: {conf}1-gone.conf",
                                                         f"Cannot stat directory entry: {conf}3-gone.conf"])):
        dep = _depmod(tmp_path, conf, version=version)
        lines = dep.stderr.decode("utf-8", "surrogateescape").splitlines()
        missing = [e for e in expect if f"depmod: ERROR: {e}" not in lines]
        assert not missing, (version, missing, lines)
        assert (b"kernel/basic.ko:" in dep.stdout) == (version == "kmod30")
    _same_as_real(tmp_path, conf)


def test_backtracking_kernel_pattern_is_linear(tmp_path):
    kver = "6.1-" + "a" * 40  # (a*)*b against it: 2**40 paths for a backtracking matcher (depmod wants "%u.%u")
    small_tree(tmp_path, kver)
    (module_dir(tmp_path, kver) / "updates").mkdir()
    shutil.copy(FIXTURES / "basic.ko", module_dir(tmp_path, kver) / "updates" / "basic.ko")
    conf = _empty_config(tmp_path)
    (conf / "a.conf").write_text("override basic (a*)*b kernel\noverride basic ((a|aa)*)*$ kernel\n"
                                 "external (a|a)*(a|a)*(a|a)*c /nowhere\n")
    dep = _depmod(tmp_path, conf, kver)
    assert b"kernel/basic.ko:" in dep.stdout  # the second pattern matches: the override applies
    _same_as_real(tmp_path, conf, kver)


def test_huge_search_lines(tmp_path):
    small_tree(tmp_path)
    conf = _empty_config(tmp_path)
    words = " ".join(f"w{i}" for i in range(120000))  # 0.9 MB: under the 1 MiB cap, parsed in full
    (conf / "big.conf").write_text(f"search {words} kernel built-in\n")
    dep = _depmod(tmp_path, conf)
    assert dep.stdout.count(b".ko:") == 4
    _same_as_real(tmp_path, conf)
    (conf / "big.conf").write_text("search " + "a " * 600000 + "\n")  # 1.2 MB (28 s before): refused at once
    dep = _depmod(tmp_path, conf)
    assert f"depmod: ERROR: file parse {conf}/big.conf: larger than the 1 MiB limit".encode() in dep.stderr


def test_gzip_bomb_as_boot_symvers(tmp_path):
    small_tree(tmp_path)
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot" / f"symvers-{KVER}.gz").write_bytes(gzip_bomb(3 << 30))  # 3 GiB of zeros in 3 MB
    run, doc = _report(tmp_path, tmp_path / "out")
    notes = doc["tree"]["kernel_exports"]["notes"]
    assert len(notes) == 1 and "gzip stream inflates past the 32 MiB limit for a Module.symvers" in notes[0]


def test_deep_tree(tmp_path):
    moddir = small_tree(tmp_path)
    deep = moddir / "kernel" / "deep"
    try:
        deep_dirs(deep, 1100)
        put_at_depth(deep, 1100, "deepest.ko", (FIXTURES / "basic+ext.ko.xz").read_bytes())
        put_at_depth(deep, 550, "middle.ko", (FIXTURES / "exports-nocrc.ko").read_bytes())
        run, doc = _report(tmp_path, tmp_path / "out")
        assert doc["counts"]["modules"] == 6
        dep = _depmod(tmp_path, _empty_config(tmp_path))
        assert dep.stdout.count(b".ko:") == 6
        _same_as_real(tmp_path, _empty_config(tmp_path))
    finally:
        remove_tree(deep)


def test_tree_structures_cost_little_per_module(tmp_path):
    """20,000 modules: what the tree itself keeps per module (the records are parse/'s business)."""
    kernel = module_dir(tmp_path) / "kernel"
    src = tmp_path / "basic.ko"  # links to a copy: the fixture's own link count stays 1
    shutil.copy(FIXTURES / "basic.ko", src)
    for d in range(100):
        (kernel / f"d{d:02d}").mkdir(parents=True)
        for i in range(200):
            os.link(src, kernel / f"d{d:02d}" / f"m{d:02d}_{i:03d}.ko")
    tracemalloc.start()
    try:
        tree = load_tree(str(tmp_path), KVER, config=[], parse=False)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(tree.modules) == 20000
    assert kept < 600 * 20000 and peak < 1500 * 20000, (kept // 20000, peak // 20000)  # 343 and 680 measured


# -- names and paths (medium) --------------------------------------------------------------------

HOSTILE_NAMES = {
    "bad\udcff\udcfe.ko.xz": "basic+ext.ko.xz",
    "evil\nkmodcompat: report for 6.1 (0 modules) in fake.ko": "basic.ko",
    "esc\x1b[2J\x1b]0;title\x07.ko": "ext-only.ko",
}


def _hostile_named_tree(root: Path) -> Path:
    moddir = small_tree(root, modules=("exports-rel.ko",))
    for name, src in HOSTILE_NAMES.items():
        shutil.copy(FIXTURES / src, os.fsencode(moddir / "kernel") + b"/" + os.fsencode(name))
    (moddir / "kernel" / "junk\n.ko").write_bytes(b"junk")
    return moddir


def test_hostile_names_in_every_text_output(tmp_path):
    moddir = _hostile_named_tree(tmp_path)
    run, doc = _report(tmp_path, tmp_path / "out", statuses=(1,))  # junk\n.ko is unreadable: the default policy
    lines = run.stderr.splitlines()
    assert all(line.startswith(b"kmodcompat: ") for line in lines)
    assert sum(b"report for" in line for line in lines) == 1  # no forged summary line
    assert b"junk\\x0a.ko: " in run.stderr
    for f in ("report.md", "report.html"):
        text = (tmp_path / "out" / f).read_bytes()
        assert b"\x1b" not in text and b"\xff" not in text, f
    # the modules table's rows (JSON inside the page, drawn by its script): the name as shown, JSON-escaped
    assert b'"kernel/bad\\\\xff\\\\xfe.ko.xz"' in (tmp_path / "out" / "report.html").read_bytes()
    for argv, statuses in ((["views", "--no-cache", str(moddir)], (0, 1)), (["validate", str(moddir)], (1,)),
                           (["validate", "--format", "json", str(moddir)], (1,)),
                           (["diff", str(moddir), str(moddir)], (0,))):
        out = _ok(run_bounded(argv), statuses)
        assert b"\x1b" not in out.stdout + out.stderr, argv
    out = run_bounded(["validate", "-v", str(moddir)])
    assert b"bad\\xff\\xfe.ko.xz: ok" in out.stdout and b"\x1b" not in out.stdout


def test_json_keeps_non_utf8_names_recoverable(tmp_path):
    """JSON holds a name's non-UTF-8 byte 0xNN as the code point U+DCNN (Python's surrogateescape, written
    ``\\udcNN`` as json.dumps escapes it): json.loads() then os.fsencode() give the file's bytes back."""
    moddir = _hostile_named_tree(tmp_path)
    _, doc = _report(tmp_path, tmp_path / "out", statuses=(1,))
    text = (tmp_path / "out" / "report.json").read_bytes()
    assert text.isascii() and b"\\udcff\\udcfe" in text
    paths = {os.fsencode(m["path"]) for m in doc["consumers"]["per_module"]}
    assert b"kernel/bad\xff\xfe.ko.xz" in paths
    out = _ok(run_bounded(["validate", "--format", "json", str(moddir)]), (1,))
    assert os.fsencode(moddir / "kernel") + b"/bad\xff\xfe.ko.xz" in {
        os.fsencode(m["path"]) for m in json.loads(out.stdout)["modules"]}


def test_kmod_commands_keep_raw_names(tmp_path):
    moddir = _hostile_named_tree(tmp_path)
    bad = os.fsencode(moddir / "kernel") + b"/bad\xff\xfe.ko.xz"
    dep = _depmod(tmp_path, _empty_config(tmp_path), version="kmod34")
    assert b"kernel/bad\xff\xfe.ko.xz:" in dep.stdout  # depmod prints the bytes, as the real one
    mi = _ok(run_bounded(["modinfo", "--as", "kmod34", "-F", "filename", os.fsdecode(bad)]))
    assert mi.stdout == bad + b"\n"


def test_report_out_replaces_a_planted_link_instead_of_writing_through_it(tmp_path):
    small_tree(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (out / "report.html").symlink_to(victim)
    (out / "report.md").symlink_to(tmp_path / "nowhere" / "x")
    _report(tmp_path, out)
    assert victim.read_text() == "precious\n"
    assert not (out / "report.html").is_symlink() and (out / "report.html").read_text().startswith("<!DOCTYPE")
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


@pytest.mark.skipif(os.geteuid() != 0, reason="needs chown to plant a link owned by someone else")
def test_report_out_refuses_a_directory_link_planted_by_another_user(tmp_path):
    small_tree(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, 1000, 1000)  # someone's directory, like /tmp is root's
    target = tmp_path / "target"
    target.mkdir()
    (shared / "reports").symlink_to(target)
    os.lchown(shared / "reports", 4242, 4242)  # planted by yet another user
    run, _ = _report(tmp_path, shared / "reports", statuses=(2,))
    assert run.stderr.count(b"\n") == 1
    assert b"is a symbolic link owned by uid 4242" in run.stderr and not any(target.iterdir())
    os.lchown(shared / "reports", 1000, 1000)  # the directory's owner's own link: followed
    _report(tmp_path, shared / "reports")
    assert (target / "report.json").exists()


def test_report_out_unwritable_is_one_line(tmp_path):
    small_tree(tmp_path)
    (tmp_path / "file").write_text("x")
    for out in (tmp_path / "file" / "sub", Path("/proc/version/out")):
        run, _ = _report(tmp_path, out, statuses=(2,))
        assert run.stderr.count(b"\n") == 1 and run.stderr.startswith(b"kmodcompat: --out "), run.stderr
        assert b"Not a directory" in run.stderr


@pytest.mark.parametrize("case,expect", [("dotdot", "__"), ("dot", "_"), ("slashes", "a_.._.._b"),
                                         ("control", "x_y")])
def test_default_output_directory_stays_in_reports(tmp_path, case, expect):
    """The release is the last component of the directory, or -b's KVER: whatever it is, one component."""
    if case == "dotdot":
        moddir = small_tree(tmp_path, "v")
        args = [str(moddir / "kernel" / "..")]
    elif case == "dot":
        moddir = small_tree(tmp_path, "v")
        args = [f"{moddir}/."]
    elif case == "slashes":
        (tmp_path / "lib" / "modules" / "a").mkdir(parents=True)
        small_tree(tmp_path, "../b")  # BASEDIR/lib/modules/a/../../b is BASEDIR/lib/b
        args = ["-b", str(tmp_path), "a/../../b"]
    else:
        small_tree(tmp_path, "x\x1by")
        args = ["-b", str(tmp_path), "x\x1by"]
    work = tmp_path / "work"
    work.mkdir()
    _ok(run_bounded(["report", *args, "--no-cache", "-j", "1"], cwd=work))
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("report.json")] == [
        Path("work", "reports", expect, "report.json")]


def _module_files(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*.ko*") if p.is_file())


def test_simulate_keeps_relative_paths_and_names(tmp_path):
    moddir = small_tree(tmp_path, modules=("basic.ko",))
    (moddir / "kernel" / "dir.ko").mkdir()
    shutil.copy(FIXTURES / "basic+ext.ko", moddir / "kernel" / "dir.ko" / "inner.ko")
    (moddir / "kernel" / "fs").mkdir()
    shutil.copy(FIXTURES / "basic+ext.ko.xz", moddir / "kernel" / "fs" / "packed.ko.xz")
    shutil.copy(FIXTURES / "ext-only.ko", moddir / "kernel" / "fs" / "other.ko")
    shutil.copy(FIXTURES / "basic.ko", moddir / "kernel" / "fs" / "dup.ko")
    shutil.copy(FIXTURES / "basic.ko", moddir / "kernel" / "fs" / "dup2.ko")
    out = tmp_path / "sim"
    _ok(run_bounded(["simulate", "--no-cache", str(moddir), "--format-as", "basic+ext", "--out", str(out)]))
    # A module directory named directly still gives a root: DIR/lib/modules/KVER, the release kept.
    assert _module_files(out / "lib" / "modules" / KVER) == [
        "kernel/basic.ko", "kernel/dir.ko/inner.ko", "kernel/fs/dup.ko", "kernel/fs/dup2.ko", "kernel/fs/other.ko",
        "kernel/fs/packed.ko.xz"]
    # Same basenames in two directories, one operand relative and one absolute.
    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    shutil.copy(FIXTURES / "basic+ext.ko.xz", tmp_path / "d1" / "foo.ko.xz")
    shutil.copy(FIXTURES / "basic+ext.ko.xz", tmp_path / "d2" / "foo.ko.xz")
    out2 = tmp_path / "sim2"
    _ok(run_bounded(["simulate", "--no-cache", "d1/foo.ko.xz", str(tmp_path / "d2" / "foo.ko.xz"), "--format-as",
                     "ext-only", "--out", str(out2)], cwd=tmp_path))
    assert _module_files(out2) == ["d1/foo.ko.xz", "d2/foo.ko.xz"]
    # foo.ko and foo.ko.xz side by side: names are kept whole, so they stay two files.
    shutil.copy(FIXTURES / "basic+ext.ko", tmp_path / "d1" / "foo.ko")
    out3 = tmp_path / "sim3"
    _ok(run_bounded(["simulate", "--no-cache", "d1/foo.ko", "d1/foo.ko.xz", "--format-as", "ext-only",
                     "--out", str(out3)], cwd=tmp_path))
    assert _module_files(out3) == ["foo.ko", "foo.ko.xz"]


def test_special_files_in_a_tree_are_reported_with_their_reason(tmp_path):
    moddir = small_tree(tmp_path)
    kernel = moddir / "kernel"
    special(kernel / "fifo.ko", "fifo")
    special(kernel / "zero.ko", "zero")
    special(kernel / "gone.ko", "dangling")
    special(kernel / "sock.ko", "socket")
    (kernel / "sub").mkdir()
    run, doc = _report(tmp_path, tmp_path / "out")  # nothing here fails the default policy: no module is unreadable
    reasons = {x["path"].rsplit("/", 1)[-1]: x["reason"] for x in doc["unreadable"] if x["code"] == "skipped"}
    assert reasons == {"fifo.ko": "not a regular file (FIFO)",
                       "zero.ko": "not a regular file (symbolic link to a character device)",
                       "gone.ko": "broken symbolic link (its target does not exist)",
                       "sock.ko": "not a regular file (socket)"}
    assert doc["counts"]["unreadable"] == 0 and doc["counts"]["modules"] == 4
    _same_as_real(tmp_path, _empty_config(tmp_path))
    special(kernel / "sub" / "loop", "loop")  # real depmod descends into it until EMFILE: not compared
    run, doc = _report(tmp_path, tmp_path / "out")
    reasons = {x["path"]: x["reason"] for x in doc["unreadable"]}
    assert reasons[str(kernel / "sub" / "loop")] == "directory already walked (symbolic link loop)"
    assert doc["counts"]["unreadable"] == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="drops to uid 65534 (as root); a plain user has no mode-0 test")
def test_unreadable_directories_as_another_user():
    top = shared_tmpdir()
    try:
        moddir = small_tree(top)
        (moddir / "kernel" / "locked").mkdir()
        shutil.copy(FIXTURES / "basic.ko", moddir / "kernel" / "locked" / "hidden.ko")
        (moddir / "kernel" / "locked").chmod(0)
        (moddir / "kernel" / "noexec").mkdir()
        shutil.copy(FIXTURES / "ext-only.ko", moddir / "kernel" / "noexec" / "seen.ko")
        (moddir / "kernel" / "noexec").chmod(0o644)  # listable, not searchable
        for version in ("kmod30", "kmod34"):
            ours = as_nobody(["depmod", "--as", version, "-b", str(top), "-n", KVER])
            assert b"openat(4, locked, O_RDONLY): Permission denied" in ours.stderr
            assert b"could not create module " + os.fsencode(moddir) + b"/kernel/noexec/seen.ko: Permission denied" \
                in ours.stderr
            if oracle.kmod_available(version):
                real = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                       *oracle.kmod_argv(version, "depmod"), "-b", str(top), "-n", KVER],
                                      capture_output=True, timeout=60, env=oracle.ENV, cwd="/")
                assert (ours.status, ours.stdout, ours.stderr) == (real.returncode, real.stdout, real.stderr)
        (moddir / "kernel").chmod(0)  # now nothing can be found: say why, not only "no modules found"
        (top / "out").mkdir(mode=0o777)
        (top / "out").chmod(0o777)
        run = as_nobody(["report", str(moddir), "--no-cache", "--out", str(top / "out"), "-j", "1"])
        assert run.status == 2
        assert run.stderr.splitlines() == [
            f"kmodcompat: {moddir}/kernel: cannot open directory: Permission denied".encode(),
            f"kmodcompat: {moddir}: no modules found".encode()]
    finally:
        for d in (moddir / "kernel", moddir / "kernel" / "locked", moddir / "kernel" / "noexec"):
            if d.exists():
                d.chmod(0o755)
        shutil.rmtree(top)


def test_module_directory_that_cannot_be_searched(tmp_path):
    dep = _depmod(tmp_path, None, statuses=(1,))
    assert dep.stdout == b""
    assert dep.stderr.splitlines()[-1] == b"depmod: FATAL: could not search modules: No such file or directory"
    _same_as_real(tmp_path, None)


# -- the Markdown and HTML renderings ------------------------------------------------------------

EVIL = "<img src=x onerror=alert(1)>"


def _evil_doc(tmp_path: Path) -> dict:
    small_tree(tmp_path)
    _, doc = _report(tmp_path, tmp_path / "out")
    names = [EVIL, "a|b|c", "x`y", "[link](javascript:alert(1))", "&lt;script&gt;", "# heading", "line\nbreak"]
    doc["tree"]["path"] = doc["tree"]["kernel_release"] = EVIL
    doc["tree"]["kernel_exports"]["symvers"] = "/boot/" + EVIL
    doc["name_lengths"]["longest"] = [{"length": 99, "name": n, "demangled": "<T as " + n + ">", "module": n}
                                      for n in names]
    ln = doc["long_names"]  # the Symbol name lengths section lists these
    ln["exports"].update(total=len(names), c=0, rust=len(names), names=[
        {"length": 99, "name": n, "rust": True, "demangled": "<T as " + n + ">", "exporter": n, "path": n}
        for n in names])
    ln["imports"].update(total=len(names), c=0, rust=len(names), modules=1, names=[
        {"length": 99, "name": n, "rust": True, "demangled": "<T as " + n + ">", "importers": 1, "modules": [n]}
        for n in names])
    doc["graph"]["most_depended_on"] = [{"module": n, "dependents": 3} for n in names]
    doc["graph"]["cycles"] = [names[:3]]
    doc["exports"]["top_exporters"] = [{"module": n, "importers": 2} for n in names]
    doc["unreadable"] = [{"path": "/lib/" + n, "reason": n, "code": "unreadable"} for n in names]
    return doc


def _unescaped(text: str, ch: str) -> list[int]:
    """Positions of ``ch`` outside code spans that no backslash escapes (a CommonMark reading, simplified)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "`":
            j = i
            while j < n and text[j] == "`":
                j += 1
            fence = text[i:j]
            end = text.find(fence, j)
            if end >= 0 and (end + len(fence) >= n or text[end + len(fence)] != "`"):
                i = end + len(fence)
                continue
            i = j
            continue
        if c == ch:
            out.append(i)
        i += 1
    return out


def _cells(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_markdown_shows_hostile_names_as_text(tmp_path):
    md = md_report.render(_evil_doc(tmp_path))
    assert "\x1b" not in md
    table: list[str] = []
    for line in md.splitlines() + [""]:
        assert not _unescaped(line, "<"), line  # no raw HTML: '<' escaped or inside a code span
        assert not _unescaped(line, "&"), line
        assert not _unescaped(line, "["), line
        if line.startswith("|"):
            table.append(line)
            continue
        if table:  # every row of a table has its header's number of cell separators
            assert len({_cells(row) for row in table}) == 1, table
            table = []
    longest = [line for line in md.splitlines() if re.match(r"^\|\s*99\s*\|", line)]
    assert len(longest) == 14  # each name exported and imported
    assert "line\\\\x0abreak" in md  # the newline shown, escaped, on the same line
    assert "`` x`y ``" not in md and "``x`y``" in md  # a name holding a backtick gets a longer fence


def test_html_escapes_every_value(tmp_path):
    page = html_report.render(_evil_doc(tmp_path))
    assert "<img" not in page and "javascript:alert" not in page.replace("[link](javascript:alert(1))", "")
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "\x1b" not in page and "line\\x0abreak" in page


def test_plain_names_render_as_before(tmp_path):
    """Escaping touches only what needs it: ordinary names (underscores, dots, dashes) come out as they are."""
    small_tree(tmp_path)
    _, doc = _report(tmp_path, tmp_path / "out")
    names = [m["path"] for m in doc["consumers"]["per_module"]] + [x["name"] for x in doc["name_lengths"]["longest"]]
    assert names and all(md_report.text(n) == n and md_report.code(n, True) == f"`{n}`" for n in names)
    assert md_report.text(KVER) == KVER and md_report.text("6.1.0-57-amd64") == "6.1.0-57-amd64"
    rust = next(x["demangled"] for x in doc["name_lengths"]["longest"] if x["demangled"].startswith("<"))
    assert md_report.text(rust) == rust.replace("<", "\\<").replace(">", "\\>")  # shown as text, not a tag
