"""The record cache: never stale, never trusted when damaged, invisible in results."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kmodcompat import cache as cache_mod
from kmodcompat.cache import keys as cache_keys
from kmodcompat.cache import RecordCache, parse_cached
from kmodcompat.errors import ModuleReadError
from kmodcompat.records import ModuleRecord
from kmodcompat.parse.scan import parse_many

from . import oracle
from .paths import DEMO, REPO, X86_64 as FIX


@pytest.fixture(autouse=True)
def _trusted_stat(monkeypatch):
    """Files made by a test are seconds old, their ctime "racy": trusted here as if older (one test checks
    the racy case itself). Fork-started scan workers inherit the setting."""
    monkeypatch.setattr(cache_keys, "RACY_SECONDS", 0.0)


def _copy_fixtures(tmp_path: Path) -> list[str]:
    out = []
    for name in ("basic.ko", "basic+ext.ko.xz", "ext-only.ko", "notelf.ko", "exports-rel.ko"):
        dst = tmp_path / name
        shutil.copy(FIX / name, dst)
        os.utime(dst, (1_600_000_000, 1_600_000_000))  # old enough not to be "racy"
        out.append(str(dst))
    return out


def test_hits_equal_fresh_parses(tmp_path):
    paths = _copy_fixtures(tmp_path)
    with RecordCache(str(tmp_path / "c.sqlite")) as c:
        first = parse_cached(paths, c, jobs=1)
        assert c.misses == len(paths) and c.hits == 0
        second = parse_cached(paths, c, jobs=1)
        assert c.hits == len(paths)
    fresh = parse_many(paths, jobs=1)
    for a, b, f in zip(first, second, fresh):
        if isinstance(f, ModuleRecord):
            assert a == b == f
        else:
            assert str(a) == str(b) == str(f) and a.errno == b.errno == f.errno


def test_changed_file_is_never_served(tmp_path):
    paths = _copy_fixtures(tmp_path)
    with RecordCache(str(tmp_path / "c.sqlite")) as c:
        parse_cached(paths, c, jobs=1)
        # same size, same mtime, other content: only inode/ctime (or the hash) can tell
        target = Path(paths[0])
        st = target.stat()
        data = (FIX / "none.ko").read_bytes()
        target.unlink()
        target.write_bytes(data)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        got = parse_cached([paths[0]], c, jobs=1)[0]
        assert got.modversions_format == "none"


def test_racy_files_are_checked_by_content_and_never_cached_from_a_parse(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_keys, "RACY_SECONDS", 2.0)
    p = tmp_path / "m.ko"
    shutil.copy(FIX / "basic.ko", p)  # written now: its identity cannot be trusted for two seconds
    with RecordCache(str(tmp_path / "c.sqlite")) as c:
        assert parse_cached([str(p)], c, jobs=1)[0].modversions_format == "basic"
        assert c.counts() == (0, 0)  # its parse is not cached: the file could still change unseen
        monkeypatch.setattr(cache_keys, "RACY_SECONDS", 0.0)
        parse_cached([str(p)], c, jobs=1)
        assert c.counts() == (1, 0)
        monkeypatch.setattr(cache_keys, "RACY_SECONDS", 2.0)
        # A racy file is found by its content digest, not by its identity.
        p.write_bytes((FIX / "none.ko").read_bytes())
        os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns))
        assert parse_cached([str(p)], c, jobs=1)[0].modversions_format == "none"


def test_corrupt_cache_file_is_rebuilt(tmp_path, capsys):
    db = tmp_path / "c.sqlite"
    db.write_bytes(b"this is not a database" * 100)
    paths = _copy_fixtures(tmp_path)
    with RecordCache(str(db)) as c:
        assert [type(x) for x in parse_cached(paths, c, jobs=1)] == [type(x) for x in parse_many(paths, jobs=1)]
    assert "moved aside" in capsys.readouterr().err
    assert (tmp_path / "c.sqlite.damaged").read_bytes() == b"this is not a database" * 100
    with RecordCache(str(db)) as c:
        parse_cached(paths, c, jobs=1)
        assert c.hits == len(paths)


def test_damaged_entry_is_a_miss(tmp_path):
    paths = _copy_fixtures(tmp_path)[:1]
    with RecordCache(str(tmp_path / "c.sqlite")) as c:
        parse_cached(paths, c, jobs=1)
        c.store.db.execute("UPDATE records SET blob = x'00'")
        assert isinstance(parse_cached(paths, c, jobs=1)[0], ModuleRecord) and c.hits == 0
        parse_cached(paths, c, jobs=1)
        assert c.hits == 1  # overwritten by the parse


def test_other_version_is_never_read(tmp_path, monkeypatch):
    db = str(tmp_path / "c.sqlite")
    paths = _copy_fixtures(tmp_path)
    with RecordCache(db) as c:
        parse_cached(paths, c, jobs=1)
    monkeypatch.setattr(cache_mod.record_cache, "records_version", lambda: "other")
    with RecordCache(db) as c:
        parse_cached(paths, c, jobs=1)
        assert c.hits == 0
        assert c.store.db.execute("SELECT COUNT(DISTINCT version) FROM records").fetchone()[0] == 2


def test_relative_and_absolute_paths_share_entries(tmp_path, monkeypatch):
    paths = _copy_fixtures(tmp_path)
    with RecordCache(str(tmp_path / "c.sqlite")) as c:
        parse_cached(paths, c, jobs=1)
        monkeypatch.chdir(tmp_path)
        rel = parse_cached(["basic.ko"], c, jobs=1)[0]
        assert c.hits == 1 and rel.path == "basic.ko"


def test_cli_results_identical_with_and_without_cache(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    base = DEMO
    kver = os.listdir(base / "lib" / "modules")[0]
    outs = []
    for extra in ([], [], ["--no-cache"]):
        out = tmp_path / f"r{len(outs)}"
        p = subprocess.run([sys.executable, "-m", "kmodcompat", "report", "-b", str(base), kver, "--out", str(out),
                            "-j", "1", *extra], capture_output=True, text=True, env=env, cwd=REPO)
        assert p.returncode == 0, p.stderr
        outs.append((out / "report.json").read_text())
    assert outs[0] == outs[1] == outs[2]
    p = subprocess.run([sys.executable, "-m", "kmodcompat", "cache", "info"], capture_output=True, text=True, env=env)
    assert "record(s)" in p.stdout and str(tmp_path / "xdg") in p.stdout
    p = subprocess.run([sys.executable, "-m", "kmodcompat", "cache", "clear"], capture_output=True, text=True, env=env)
    assert "removed" in p.stdout


def test_read_errors_survive_processes_and_pickling(tmp_path):
    """A tree scan sends read errors between processes; they must arrive whole."""
    import pickle

    bad = []
    for i in range(40):  # above scan's threshold for a process pool
        p = tmp_path / f"bad{i}.ko"
        p.write_bytes(b"not an elf file at all")
        bad.append(str(p))
    out = parse_many(bad, jobs=2)
    assert all(isinstance(e, ModuleReadError) and e.code == "not-elf" and e.errno == 8 for e in out)
    e = pickle.loads(pickle.dumps(out[0]))
    assert (e.path, e.reason, e.code, e.errno) == (out[0].path, out[0].reason, out[0].code, out[0].errno)


def _old_demo_tree(tmp_path: Path) -> tuple[Path, str]:
    """A copy of the demo tree whose files are old enough to be trusted by stat."""
    src = DEMO
    base = tmp_path / "demo"
    shutil.copytree(src, base)
    for top, _, files in os.walk(base):
        for f in files:
            os.utime(os.path.join(top, f), (1_600_000_000, 1_600_000_000))
    return base, os.listdir(base / "lib" / "modules")[0]


def _report(base: Path, kver: str, out: Path, *extra: str) -> dict[str, str]:
    from kmodcompat.cli import main

    assert main(["report", "-b", str(base), kver, "--out", str(out), "-j", "1", "--fail-on", "none", *extra]) == 0
    return {f: (out / f).read_text() for f in ("report.json", "report.md", "report.html")}


def test_unchanged_tree_is_answered_from_the_report_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    base, kver = _old_demo_tree(tmp_path)
    first = _report(base, kver, tmp_path / "r1")
    import kmodcompat.cli.report as cli_report

    def no_parse(*a, **k):
        raise AssertionError("an unchanged tree was parsed again")

    def no_render(*a, **k):
        raise AssertionError("an unchanged tree's report was rendered again")

    monkeypatch.setattr(cli_report, "parse_tree", no_parse)
    monkeypatch.setattr(cli_report, "render", no_render)
    assert _report(base, kver, tmp_path / "r2") == first
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _report(base, kver, tmp_path / "r3", "--no-cache") == first
    with RecordCache() as c:
        assert c.counts()[1] == 3  # report.json, and report.md and report.html rendered from it


def test_any_changed_input_misses_the_report_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    base, kver = _old_demo_tree(tmp_path)
    first = _report(base, kver, tmp_path / "r1")
    mods = sorted(p for p in (base / "lib" / "modules" / kver).rglob("*.ko*"))
    # Same size and mtime, other bytes: only the inode and ctime tell (and the report must follow).
    target, donor = mods[0], mods[1]
    st = target.stat()
    data = donor.read_bytes()
    target.unlink()
    target.write_bytes(data)
    os.utime(target, ns=(st.st_atime_ns, 1_600_000_000 * 10**9))
    changed = _report(base, kver, tmp_path / "r2")
    assert changed["report.json"] != first["report.json"]
    assert changed == _report(base, kver, tmp_path / "r3", "--no-cache")
    # modules.order is read afresh by the survey: editing it changes the key too.
    order = base / "lib" / "modules" / kver / "modules.order"
    order.write_text("".join(reversed(order.read_text().splitlines(keepends=True))))
    os.utime(order, (1_600_000_000, 1_600_000_000))
    assert _report(base, kver, tmp_path / "r4") == _report(base, kver, tmp_path / "r5", "--no-cache")
    with RecordCache() as c:
        assert c.counts()[1] >= 2


def _diff(old: Path, new: Path, capsys, *extra: str) -> tuple[int, str, str]:
    from kmodcompat.cli import main

    status = main(["diff", "--format", "json", str(old), str(new), "-j", "1", *extra])
    out, err = capsys.readouterr()
    return status, out, err


def test_unchanged_trees_are_diffed_from_the_cache_and_any_change_misses(tmp_path, monkeypatch, capsys):
    """A diff of two unchanged trees is its finished result, stderr included (an unreadable module's line,
    where the kernel's exports came from); a changed module, modules.order or kABI list is a miss, and
    what a miss prints is what --no-cache prints."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    old, kver = _old_demo_tree(tmp_path)
    new = tmp_path / "new"
    shutil.copytree(old, new, symlinks=True)
    mods = sorted((new / "lib" / "modules" / kver).rglob("*.ko*"))
    mods[0].write_bytes(mods[1].read_bytes())  # another module's bytes under its name
    mods[2].write_bytes(b"not an ELF file")  # an unreadable module: its line on stderr
    for p in (mods[0], mods[2]):
        os.utime(p, (1_600_000_000, 1_600_000_000))
    cold = _diff(old, new, capsys)
    assert f"{mods[2].name}: not an ELF file" in cold[2] and "new: kernel exports from" in cold[2], cold[2]
    import kmodcompat.cli.diff as cli_diff

    def no_parse(*a, **k):
        raise AssertionError("unchanged trees were parsed again")

    monkeypatch.setattr(cli_diff, "parse_tree", no_parse)
    assert _diff(old, new, capsys) == cold
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _diff(old, new, capsys, "--no-cache") == cold
    # Same size and dates, other bytes (the inode and ctime tell), then a kABI list: each is a miss.
    st = mods[3].stat()
    data = mods[4].read_bytes()
    mods[3].unlink()
    mods[3].write_bytes(data)
    os.utime(mods[3], ns=(st.st_atime_ns, 1_600_000_000 * 10**9))
    changed = _diff(old, new, capsys)
    assert changed != cold and changed == _diff(old, new, capsys, "--no-cache")
    names = tmp_path / "symbols"
    names.write_text("".join(f"{n}\n" for n in ("printk", "kfree")))
    os.utime(names, (1_600_000_000, 1_600_000_000))
    listed = _diff(old, new, capsys, "--symbol-list", str(names))
    assert listed == _diff(old, new, capsys, "--symbol-list", str(names), "--no-cache")
    names.write_text("".join(f"{n}\n" for n in ("printk", "kfree", "kmalloc")))
    os.utime(names, (1_600_000_000, 1_600_000_000))
    assert _diff(old, new, capsys, "--symbol-list", str(names)) == \
        _diff(old, new, capsys, "--symbol-list", str(names), "--no-cache")


def test_input_key_follows_every_input(tmp_path, monkeypatch):
    paths = _copy_fixtures(tmp_path)
    key = cache_mod.input_key(("tree", 1), paths)
    assert key == cache_mod.input_key(("tree", 1), paths)
    assert key != cache_mod.input_key(("tree", 2), paths)
    assert cache_mod.input_key(("tree", 1), paths + [str(tmp_path / "missing.ko")]) is None
    monkeypatch.setattr(cache_keys, "RACY_SECONDS", 2.0)
    Path(paths[0]).write_bytes(Path(paths[0]).read_bytes())  # just written: mtime cannot be trusted yet
    assert cache_mod.input_key(("tree", 1), paths) is None


@pytest.mark.realtree
def test_real_tree_report_identical_cached_uncached_serial_parallel(tmp_path, monkeypatch):
    """One real tree (s390x, big-endian): the report is the same byte for byte whether
    computed on one process or all, served from the report cache, or recomputed
    from cached records."""
    root = oracle.tree_root("trixie-s390x", fetch=os.environ.get("KMODCOMPAT_FETCH_TREES") == "1")
    if root is None:
        pytest.skip("tree trixie-s390x not available")
    krel = oracle.tree_info(root)["krel"]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    from kmodcompat.cli import main

    def report(name: str, *extra: str) -> dict[str, bytes]:
        out = tmp_path / name
        assert main(["report", "-b", str(root), krel, "--out", str(out), "--fail-on", "none", *extra]) == 0
        return {f: (out / f).read_bytes() for f in ("report.json", "report.md", "report.html")}

    serial = report("serial", "--no-cache", "-j", "1")
    assert report("parallel", "-j", "2") == serial  # fills both caches
    with RecordCache() as c:
        records, reports = c.counts()  # by content: modules of identical bytes share one
        assert reports == 1 and 0.9 * len(oracle.tree_modules(root)) < records <= len(oracle.tree_modules(root))
    assert report("memo", "-j", "2") == serial
    monkeypatch.setattr(RecordCache, "get_report", lambda self, key: None)
    assert report("records", "-j", "2") == serial


def test_racy_follows_each_timestamps_granularity(monkeypatch):
    monkeypatch.setattr(cache_keys, "RACY_SECONDS", 2.0)
    now = 1_800_000_000.5
    old = 1_600_000_000 * 10**9

    def fid(mtime_ns: int, ctime_ns: int):
        return cache_keys.FileId(1, 2, 3, mtime_ns, ctime_ns)

    ns = lambda t: int(t * 10**9)  # noqa: E731
    assert cache_keys.racy(fid(ns(now - 1), ns(now - 1)), now)          # written a second ago
    assert cache_keys.racy(fid(old, ns(now - 0.05) + 7), now)           # re-dated, ctime still in its tick
    assert not cache_keys.racy(fid(old, ns(now - 0.5) + 7), now)        # ctime's tick (<= 10 ms) long past
    assert cache_keys.racy(fid(old, ns(int(now) - 1)), now)             # whole-second ctime: two seconds
    assert not cache_keys.racy(fid(old, ns(int(now) - 3)), now)


# --- every command that reads module files goes through the one cache (issue 20 item 3) --------------------

def _commands(base: Path, kver: str) -> dict[str, list[str]]:
    """Each command that reads module files, over the tree at ``base`` (a root holding lib/modules/KVER)."""
    moddir = base / "lib" / "modules" / kver
    mods = sorted(str(p) for p in moddir.rglob("*.ko*"))
    return {
        "depmod": ["depmod", "-n", "-b", str(base), kver],
        "depmod-e": ["depmod", "-n", "-e", "--format", "json", "-b", str(base), kver],
        "exports": ["exports", "--format", "json", str(base)],
        "graph": ["graph", "--format", "json", str(base)],
        "symvers": ["symvers", "--modules-only", str(base)],
        "views": ["views", "--format", "json", str(base)],
        "simulate": ["simulate", "--format-as", "none", str(base)],
        "diff": ["diff", "--format", "json", str(base), str(base)],
        "validate": ["validate", "--format", "json", str(base)],
        "loadable": ["loadable", "--format", "json", *mods, "--kernel", str(moddir)],
        "modinfo": ["modinfo", *mods],
    }


def _run_counted(argv: list[str], capsys, counts: list[tuple[int, int]]) -> tuple[int, str]:
    """``kmodcompat ARGV -j 1`` in a fresh working directory (simulate writes ./simulated): status, stdout."""
    import tempfile

    from kmodcompat.cli import main

    counts.clear()
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as cwd:
        os.chdir(cwd)
        try:
            status = main([*argv, "-j", "1"])
        finally:
            os.chdir(here)
    return status, capsys.readouterr().out


#: Commands whose warm run is answered by their finished result (the report's rule), not by records.
FINISHED = {"diff"}


@pytest.mark.parametrize("command", list(_commands(Path("/"), "k")))
def test_every_command_is_served_from_the_cache_and_says_the_same(tmp_path, monkeypatch, capsys, command):
    """Cold, warm and --no-cache give the same output; the warm run reads every module from the cache
    (hits counted, not time); a tree copied elsewhere (cp -a) is warm too, by content."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    base, kver = _old_demo_tree(tmp_path)
    counts: list[tuple[int, int]] = []
    real_get_many = RecordCache.get_many

    def counted(self, paths, tree=None, kind=None):
        before = self.hits
        out = real_get_many(self, paths, tree, kind)
        counts.append((self.hits - before, len(paths)))
        return out

    monkeypatch.setattr(RecordCache, "get_many", counted)
    argv = _commands(base, kver)[command]
    cold = _run_counted(argv, capsys, counts)
    assert counts and counts[0][0] == 0, counts  # it asked the cache (diff's second tree, the same, hits)
    warm = _run_counted(argv, capsys, counts)
    if command in FINISHED:
        assert not counts, counts  # served whole: no module asked for
    else:
        assert counts and all(hits == n > 0 for hits, n in counts), counts
    assert warm == cold
    assert _run_counted([*argv, "--no-cache"], capsys, counts) == cold and not counts
    copy = tmp_path / "copy"
    shutil.copytree(base, copy, symlinks=True)  # cp -a: new inodes and path, the same bytes and dates
    copied = _run_counted(_commands(copy, kver)[command], capsys, counts)
    assert counts and all(hits == n > 0 for hits, n in counts), counts
    assert copied[0] == cold[0] and copied[1] == cold[1].replace(str(base), str(copy))


def test_validate_verdicts_are_checked_data_of_their_target(tmp_path):
    """A verdict is kept per target (another --machine is another verdict), decoded with every check, and a
    damaged one is a miss."""
    from kmodcompat.cache import map_cached
    from kmodcompat.cache.record_cache import verdicts
    from kmodcompat.cli.validate import check_one
    import functools
    from kmodcompat.validate import Target

    paths = _copy_fixtures(tmp_path)
    with RecordCache(str(tmp_path / "c.sqlite")) as c:
        results = {}
        for machine in (None, 183):  # what the module claims; EM_AARCH64 (an x86_64 module fails elf_check_arch)
            target = Target(machine=machine)
            worker = functools.partial(check_one, target=target, timeout=None)
            first = map_cached(worker, paths, c, verdicts(target), jobs=1)
            hits = c.hits
            assert map_cached(worker, paths, c, verdicts(target), jobs=1) == first
            assert c.hits - hits == len(paths)
            fresh = [worker(p) for p in paths]
            assert [repr(v) for v in first] == [repr(v) for v in fresh]
            results[machine] = first
        assert results[None] != results[183]
        c.store.db.execute("UPDATE records SET blob = CAST('[3,\"v\",1,1,\"no-such-check\",8,\"\",\"\",true]' "
                           "AS BLOB)")
        target = Target()
        worker = functools.partial(check_one, target=target, timeout=None)
        hits = c.hits
        assert [repr(v) for v in map_cached(worker, paths, c, verdicts(target), jobs=1)] == \
            [repr(v) for v in results[None]]
        assert c.hits == hits  # every row fails its MAC (or its checks): parsed again
    from kmodcompat.cache import codec

    for bad in (b'[3,"v",1,1,"no-such-check",8,"","",true]', b'[3,"v",1,1,"elf-header-magic",8,"",""]',
                b'[3,"v",-1,1]', b'[3,"v",1,1,"strtab-empty",8,"","",1]', b'[3,"r",1,1]'):
        with pytest.raises(codec.DecodeError):
            codec.decode_verdict(bad, "m.ko")
    for v in results[183]:
        assert repr(codec.decode_verdict(codec.encode_verdict(v), v.path)) == repr(v)


def test_eviction_is_automatic_after_a_run_that_wrote(tmp_path, monkeypatch):
    """Over the size limit, the run that wrote evicts on closing (least recently used first), with no
    `cache prune`; a run that only read writes nothing and evicts nothing."""
    db = str(tmp_path / "c.sqlite")
    paths = _copy_fixtures(tmp_path)
    with RecordCache(db) as c:
        parse_cached(paths, c, jobs=1)
        assert c.counts()[0] == len(paths)
    monkeypatch.setattr(cache_mod.record_cache, "DEFAULT_MAX_BYTES", 1)
    with RecordCache(db) as c:
        parse_cached(paths, c, jobs=1)  # all hits: nothing written, nothing evicted
        assert c.hits == len(paths)
    with RecordCache(db) as c:
        assert c.counts()[0] == len(paths)
    extra = tmp_path / "more.ko"
    shutil.copy(FIX / "none.ko", extra)
    os.utime(extra, (1_600_000_000, 1_600_000_000))
    with RecordCache(db) as c:
        parse_cached([str(extra)], c, jobs=1)  # writes: over the 1-byte limit, so evicted on close
    with RecordCache(db) as c:
        assert c.counts()[0] == 0


def test_prune_keeps_this_versions_verdicts_and_evicts_others(tmp_path):
    import functools

    from kmodcompat.cache import map_cached
    from kmodcompat.cache.record_cache import prune, verdicts
    from kmodcompat.cli.validate import check_one
    from kmodcompat.validate import Target

    paths = _copy_fixtures(tmp_path)
    with RecordCache(str(tmp_path / "c.sqlite")) as c:
        parse_cached(paths, c, jobs=1)
        worker = functools.partial(check_one, target=Target(), timeout=None)
        map_cached(worker, paths, c, verdicts(Target()), jobs=1)
        assert c.counts()[0] == 2 * len(paths)
        c.store.db.execute("UPDATE records SET version = 'verdict:0:old:' || version "
                           "WHERE rowid IN (SELECT rowid FROM records WHERE version LIKE 'verdict:%' LIMIT 1)")
        n, _ = prune(c.store, c.version, 1 << 30, 30)
        assert n == 1 and c.counts()[0] == 2 * len(paths) - 1


def test_prune_forgets_files_that_are_gone_or_changed(tmp_path, monkeypatch, capsys):
    """A deleted copy (or unpacked packages' temporary root) leaves no row behind after a prune, so
    `cache info` stops counting it; the records stay, found by content."""
    from kmodcompat.cache.record_cache import prune
    from kmodcompat.cli import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    mods = tmp_path / "mods"
    mods.mkdir()
    paths = _copy_fixtures(mods)
    copy = tmp_path / "copy"
    shutil.copytree(mods, copy)
    with RecordCache() as c:
        parse_cached(paths, c, jobs=1)
        parse_cached([str(copy / Path(p).name) for p in paths], c, jobs=1)
        assert c.store.db.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 2 * len(paths)
    shutil.rmtree(copy)
    write_old = Path(paths[0])
    write_old.write_bytes(write_old.read_bytes())  # rewritten: its row no longer proves anything
    os.utime(write_old, (1_600_000_000, 1_600_000_000))
    with RecordCache() as c:
        prune(c.store, c.version, 1 << 30, 30)
        assert c.store.db.execute("SELECT COUNT(*) FROM files").fetchone()[0] == len(paths) - 1
        assert c.counts()[0] == len(paths)  # the records stay (by content), evicted by age and size alone
    capsys.readouterr()
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert str(mods) in out and str(copy) not in out, out
    with RecordCache() as c:
        parse_cached(paths, c, jobs=1)
        assert c.hits == len(paths)  # the rewritten file found by its content


def test_records_version_follows_the_compiled_parser(tmp_path, monkeypatch):
    """Records made by the compiled parser are kept under a version of its own bytes: a rebuilt extension
    never reads what the old one made, nor the pure-Python path what the compiled one made."""
    import types

    from kmodcompat.parse import accel

    def fingerprint(ext) -> str:
        monkeypatch.setattr(accel, "ext", ext)
        cache_keys.parser_fingerprint.cache_clear()
        return cache_keys.parser_fingerprint()

    built = tmp_path / "_accel.so"
    built.write_bytes(b"\x7fELF one build")
    pure = fingerprint(None)
    one = fingerprint(types.SimpleNamespace(__file__=str(built)))
    built.write_bytes(b"\x7fELF another build")
    other = fingerprint(types.SimpleNamespace(__file__=str(built)))
    assert len({pure, one, other}) == 3
    monkeypatch.undo()
    cache_keys.parser_fingerprint.cache_clear()
