"""The record cache: never stale, never trusted when damaged, invisible in results."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from kmodcompat import cache as cache_mod
from kmodcompat.cache import RecordCache, parse_cached
from kmodcompat.errors import ModuleReadError
from kmodcompat.records import ModuleRecord
from kmodcompat.scan import parse_many

REPO = Path(__file__).resolve().parent.parent
FIX = REPO / "fixtures" / "modules" / "x86_64"


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


def test_racy_entries_are_checked_by_content(tmp_path):
    p = tmp_path / "m.ko"
    shutil.copy(FIX / "basic.ko", p)  # mtime: now, so mtime alone cannot be trusted
    with RecordCache(str(tmp_path / "c.sqlite")) as c:
        parse_cached([str(p)], c, jobs=1)
        row = c._db.execute("SELECT hash FROM records").fetchone()
        assert row[0] is not None
        assert parse_cached([str(p)], c, jobs=1)[0].modversions_format == "basic"


def test_corrupt_cache_file_is_rebuilt(tmp_path):
    db = tmp_path / "c.sqlite"
    db.write_bytes(b"this is not a database" * 100)
    paths = _copy_fixtures(tmp_path)
    with RecordCache(str(db)) as c:
        assert [type(x) for x in parse_cached(paths, c, jobs=1)] == [type(x) for x in parse_many(paths, jobs=1)]
    with RecordCache(str(db)) as c:
        parse_cached(paths, c, jobs=1)
        assert c.hits == len(paths)


def test_damaged_entry_is_a_miss(tmp_path):
    paths = _copy_fixtures(tmp_path)[:1]
    with RecordCache(str(tmp_path / "c.sqlite")) as c:
        parse_cached(paths, c, jobs=1)
        c._db.execute("UPDATE records SET blob = x'00'")
        c._db.commit()
        assert isinstance(parse_cached(paths, c, jobs=1)[0], ModuleRecord) and c.hits == 0


def test_other_version_is_discarded(tmp_path, monkeypatch):
    db = str(tmp_path / "c.sqlite")
    paths = _copy_fixtures(tmp_path)
    with RecordCache(db) as c:
        parse_cached(paths, c, jobs=1)
    monkeypatch.setattr(cache_mod, "CACHE_VERSION", "other")
    with RecordCache(db) as c:
        assert c._db.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 0
    assert sqlite3.connect(db).execute("SELECT value FROM meta WHERE key='version'").fetchone()[0] == "other"


def test_relative_and_absolute_paths_share_entries(tmp_path, monkeypatch):
    paths = _copy_fixtures(tmp_path)
    with RecordCache(str(tmp_path / "c.sqlite")) as c:
        parse_cached(paths, c, jobs=1)
        monkeypatch.chdir(tmp_path)
        rel = parse_cached(["basic.ko"], c, jobs=1)[0]
        assert c.hits == 1 and rel.path == "basic.ko"


def test_cli_results_identical_with_and_without_cache(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    base = REPO / "kmodcompat" / "demo"
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
