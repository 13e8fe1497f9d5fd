"""The cache under attack (issue 15): crafted rows, damaged and foreign databases, locks held by others,
files replaced mid-scan, unusable locations, transient failures, odd names. Each case: no traceback,
and results equal to a run without the cache."""

from __future__ import annotations

import ast
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import pytest

from kmodcompat.cache import RecordCache, parse_cached, record_cache
from kmodcompat.cache import keys as cache_keys
from kmodcompat.cache import store as cache_store
from kmodcompat.cli import main
from kmodcompat.errors import ModuleReadError
from kmodcompat.records import ModuleRecord
from kmodcompat.parse.scan import parse_many

from .cache_fuzzing import corrupt
from .paths import DEMO, REPO, X86_64 as FIX


@pytest.fixture(autouse=True)
def _trusted_stat(monkeypatch):
    """Files made here are seconds old (their ctime "racy"): trusted as if older, except where a test says."""
    monkeypatch.setattr(cache_keys, "RACY_SECONDS", 0.0)


def modules(tmp_path: Path, n: int = 12) -> list[str]:
    d = tmp_path / "mods"
    d.mkdir(exist_ok=True)
    out = []
    for src in sorted(FIX.iterdir())[:n]:
        if src.is_file() and ".ko" in src.name and not src.name.endswith(".txt"):
            shutil.copy(src, d / src.name)
            out.append(str(d / src.name))
    (d / "notelf.ko").write_bytes(b"not an ELF file")
    return out + [str(d / "notelf.ko")]


def same(a: list, b: list) -> bool:
    def key(v):
        if isinstance(v, ModuleRecord):
            return v
        return (v.path, v.reason, v.code, v.errno, v.detail, v.compression)
    return [key(v) for v in a] == [key(v) for v in b]


def fresh(paths: list[str]) -> list:
    return parse_many(paths, jobs=1)


def db_of(tmp_path: Path) -> str:
    return str(tmp_path / "c" / "cache.sqlite")


def filled(tmp_path: Path) -> tuple[str, list[str]]:
    paths = modules(tmp_path)
    db = db_of(tmp_path)
    with RecordCache(db) as c:
        parse_cached(paths, c, jobs=1)
        assert c.counts()[0] == len(paths)
    return db, paths


def run_cached(db: str, paths: list[str]) -> tuple[list, int]:
    with RecordCache(db) as c:
        out = parse_cached(paths, c, jobs=1)
        return out, c.hits


# --- data, never code ----------------------------------------------------------------------------------------

class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_no_code_path_deserialises_pickle_or_marshal():
    for path in (REPO / "kmodcompat" / "cache").glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not names & {"pickle", "marshal", "shelve", "dill", "cPickle"}, path


def test_a_pickle_row_with_a_valid_mac_does_not_run(tmp_path):
    """Even a row signed with the cache's own secret (the attacker read it) is only data: the payload
    (a file created by os.system) never runs, and the row is parsed again."""
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(marker))
    pickle.loads(payload)  # the payload works: it creates the file...
    assert marker.exists()
    marker.unlink()
    db, paths = filled(tmp_path)
    with RecordCache(db) as c:
        store = c.store
        for digest, version in store.db.execute("SELECT digest, version FROM records").fetchall():
            store.db.execute("UPDATE records SET blob=?, mac=? WHERE digest=? AND version=?",
                             (payload, store.mac(b"r", digest, version, payload), digest, version))
    out, hits = run_cached(db, paths)
    assert not marker.exists() and hits == 0 and same(out, fresh(paths))
    assert run_cached(db, paths)[1] == len(paths)  # the rows were overwritten


def test_the_old_pickle_cache_file_is_never_read(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    xdg = tmp_path / "xdg"
    (xdg / "kmodcompat").mkdir(parents=True)
    old = sqlite3.connect(xdg / "kmodcompat" / "records.sqlite")  # the format before this one
    old.execute("CREATE TABLE records (path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER, ino INTEGER, "
                "ctime INTEGER, hash TEXT, blob BLOB)")
    old.execute("CREATE TABLE reports (key TEXT PRIMARY KEY, used REAL, blob BLOB)")
    base, kver = demo(tmp_path)
    for p in (base / "lib" / "modules" / kver).rglob("*.ko*"):
        st = p.stat()
        old.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?, NULL, ?)",
                    (str(p), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, pickle.dumps(_Payload(marker))))
    old.commit()
    old.close()
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    assert main(["report", "-b", str(base), kver, "--out", str(tmp_path / "r"), "-j", "1"]) == 0
    assert not marker.exists()


# --- reports ---------------------------------------------------------------------------------------------

def demo(tmp_path: Path, broken: bool = False) -> tuple[Path, str]:
    base = tmp_path / "demo"
    if not base.exists():
        shutil.copytree(DEMO, base)
    kver = os.listdir(base / "lib" / "modules")[0]
    if broken:  # an unreadable module: the default policy fails (exit 1)
        (base / "lib" / "modules" / kver / "kernel" / "broken.ko").write_bytes(b"\x7fELF but not really")
    return base, kver


def report(base: Path, kver: str, out: Path, *extra: str) -> tuple[int, str]:
    rc = main(["report", "-b", str(base), kver, "--out", str(out), "-j", "1", *extra])
    return rc, (out / "report.json").read_text()


@pytest.mark.parametrize("forged", ["clean-report", "clean-report-plain-mac", "", "{}", "[1, 2]", "raw-garbage"])
def test_an_edited_report_row_never_changes_the_exit_status(tmp_path, monkeypatch, capsys, forged):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    base, kver = demo(tmp_path, broken=True)
    rc, first = report(base, kver, tmp_path / "r1")
    assert rc == 1
    import hashlib
    import json

    doc = json.loads(first)
    doc["unreadable"] = []  # what an attacker wants the gate to see
    text = {"clean-report": json.dumps(doc), "clean-report-plain-mac": json.dumps(doc)}.get(forged, forged)
    blob = b"\x00\xffgarbage" if forged == "raw-garbage" else zlib.compress(text.encode())
    with RecordCache() as c:
        # The report and its renderings (report.md, report.html: KEY:NAME), every row forged.
        keys = [k for (k,) in c.store.db.execute("SELECT key FROM reports")]
        assert len(keys) == 3 and len([k for k in keys if ":" not in k]) == 1
        for key in keys:
            mac = hashlib.blake2b(key.encode() + blob, digest_size=16).digest()  # a checksum an attacker can redo
            c.store.db.execute("UPDATE reports SET blob=?, mac=? WHERE key=?", (blob, mac, key))
    capsys.readouterr()
    rc, again = report(base, kver, tmp_path / "r2")
    assert rc == 1 and again == first
    for name in ("report.md", "report.html"):
        assert (tmp_path / "r2" / name).read_text() == (tmp_path / "r1" / name).read_text()
    assert "Traceback" not in capsys.readouterr().err


# --- damaged and foreign databases ------------------------------------------------------------------------

FOREIGN = {
    "column-added": ["ALTER TABLE records ADD COLUMN extra TEXT"],
    "table-replaced-by-a-view": ["DROP TABLE files", "CREATE VIEW files AS SELECT * FROM records"],
    "trigger-added": ["CREATE TRIGGER t AFTER INSERT ON records BEGIN DELETE FROM files; END"],
    "other-schema-version": ["UPDATE meta SET value='1' WHERE key='schema'"],
    "meta-dropped": ["DROP TABLE meta"],
    "index-dropped": ["DROP INDEX records_used"],
    "old-format": ["DROP TABLE records", "CREATE TABLE records (path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER, "
                   "ino INTEGER, ctime INTEGER, hash TEXT, blob BLOB)"],
}


@pytest.mark.parametrize("case", sorted(FOREIGN))
def test_a_foreign_schema_is_moved_aside_and_rebuilt(tmp_path, capsys, case):
    db, paths = filled(tmp_path)
    con = sqlite3.connect(db)
    for sql in FOREIGN[case]:
        con.execute(sql)
    con.commit()
    con.close()
    capsys.readouterr()
    out, hits = run_cached(db, paths)
    err = capsys.readouterr().err
    assert same(out, fresh(paths)) and hits == 0
    assert err.count("\n") == 1 and "moved aside" in err, err
    assert os.path.exists(db + ".damaged")
    assert run_cached(db, paths)[1] == len(paths)  # rebuilt and filled again


def test_random_pages_then_every_command_and_cache_clear_work(tmp_path):
    db, paths = filled(tmp_path)
    data = bytearray(Path(db).read_bytes())
    for off in range(4096, len(data), 4096):  # every page but the header, overwritten
        data[off:off + 4096] = os.urandom(min(4096, len(data) - off))
    Path(db).write_bytes(bytes(data))
    out, _ = run_cached(db, paths)
    assert same(out, fresh(paths))
    Path(db).write_bytes(os.urandom(len(data)))  # and the header too
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "c")}
    os.rename(tmp_path / "c", tmp_path / "c.tmp")
    (tmp_path / "c").mkdir()
    os.rename(tmp_path / "c.tmp", tmp_path / "c" / "kmodcompat")
    p = subprocess.run([sys.executable, "-m", "kmodcompat", "cache", "clear"], capture_output=True, text=True,
                       env=env, cwd=REPO)
    assert p.returncode == 0 and "Traceback" not in p.stderr and "removed" in p.stdout, p.stderr
    p = subprocess.run([sys.executable, "-m", "kmodcompat", "cache", "info"], capture_output=True, text=True,
                       env=env, cwd=REPO)
    assert p.returncode == 0 and "0 record(s)" in p.stdout, (p.stdout, p.stderr)


# --- other processes -------------------------------------------------------------------------------------

HOLD = textwrap.dedent("""
    import sqlite3, sys, time
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute("BEGIN IMMEDIATE")   # the write lock, held
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
""")

HOLD_OPEN = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[3])
    from kmodcompat.cache import RecordCache
    with RecordCache(sys.argv[1]) as c:
        print("open", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def hold(script: str, db: str, seconds: float) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", script, db, str(seconds), str(REPO)], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() in ("held", "open")
    return p


def test_a_held_write_lock_costs_a_bounded_wait_and_one_line(tmp_path, monkeypatch, capsys):
    db = db_of(tmp_path)
    paths = modules(tmp_path)
    with RecordCache(db):
        pass
    monkeypatch.setattr(cache_store, "BUSY_SECONDS", 0.5)
    holder = hold(HOLD, db, 30)
    try:
        start = time.monotonic()
        out, _ = run_cached(db, paths)
        assert time.monotonic() - start < 10
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert same(out, fresh(paths))
    assert err.count("\n") == 1 and "busy" in err and "going on without it" in err, err


def test_a_damaged_database_another_process_holds_is_left_alone(tmp_path, capsys, monkeypatch):
    db, paths = filled(tmp_path)
    holder = hold(HOLD_OPEN, db, 30)
    try:
        with open(db, "r+b") as f:
            f.write(b"definitely not SQLite" * 5)
        ino = os.stat(db).st_ino
        with pytest.raises(OSError, match="in use by another process"):
            RecordCache(db)
        assert os.stat(db).st_ino == ino and not os.path.exists(db + ".damaged")
        # What a command does with it: one line, and every file parsed.
        from kmodcompat.cli.inputs import open_cache

        class Args:
            no_cache = False

        monkeypatch.setattr(record_cache, "default_path", lambda: db)
        capsys.readouterr()
        assert open_cache(Args()) is None
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "record cache unavailable" in err and "parsing everything" in err, err
    finally:
        holder.kill()
        holder.wait()


def test_a_version_upgrade_keeps_the_other_writers_commits(tmp_path, monkeypatch):
    """An old and a new kmodcompat at once: the new one's rows go beside the old one's, nothing is deleted."""
    db, paths = filled(tmp_path)
    holder = hold(HOLD_OPEN, db, 30)
    try:
        monkeypatch.setattr(record_cache, "records_version", lambda: "a newer parser")
        out, hits = run_cached(db, paths)
        assert hits == 0 and same(out, fresh(paths))
    finally:
        holder.kill()
        holder.wait()
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM records GROUP BY version").fetchall() == [(len(paths),)] * 2


CONCURRENT = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, sys.argv[3])
    from kmodcompat.cache import RecordCache, parse_cached, keys
    keys.RACY_SECONDS = 0.0
    paths = sys.argv[4:]
    for _ in range(int(sys.argv[2])):
        with RecordCache(sys.argv[1]) as c:
            out = parse_cached(paths, c, jobs=1)
    print(sum(1 for x in out if hasattr(x, "sections")))
""")


def test_four_concurrent_writers_lose_nothing(tmp_path):
    paths = modules(tmp_path, 40)
    db = db_of(tmp_path)
    groups = [paths[i::4] + paths[:3] for i in range(4)]  # each its own files, and three in common
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, db, "3", str(REPO), *g], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for g in groups]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and "Traceback" not in err, err
    out, hits = run_cached(db, paths)
    assert hits == len(paths) and same(out, fresh(paths))


# --- what is cached -----------------------------------------------------------------------------------------

def test_a_module_replaced_mid_scan_is_never_cached_under_the_new_identity(tmp_path, monkeypatch):
    paths = modules(tmp_path)
    target = Path(paths[0])
    donor = (FIX / "none.ko").read_bytes()
    import kmodcompat.parse.scan as scan

    real = scan.parse_one

    def parse_then_replace(path, *a, **k):
        value = real(path, *a, **k)
        if path == str(target):  # after its parse, before the cache write: a new build lands
            tmp = target.with_name("new")
            tmp.write_bytes(donor)
            os.utime(tmp, (1_600_000_000, 1_600_000_000))
            tmp.replace(target)
        return value

    db = db_of(tmp_path)
    monkeypatch.setattr(scan, "parse_one", parse_then_replace)
    with RecordCache(db) as c:
        parse_cached(paths, c, jobs=1)
    monkeypatch.setattr(scan, "parse_one", real)
    out, _ = run_cached(db, paths)
    assert same(out, fresh(paths)) and out[0].modversions_format == "none"


@pytest.mark.parametrize("error", [
    ModuleReadError("x", "parsing took longer than 60 s", "timeout", 110),
    ModuleReadError("x", "Resource temporarily unavailable", "unreadable", 11),
    ModuleReadError("x", "Permission denied", "unreadable", 13),
    ModuleReadError("x", "internal error: MemoryError", "internal-error"),
])
def test_transient_failures_are_never_cached(tmp_path, monkeypatch, error):
    paths = modules(tmp_path)
    import kmodcompat.parse.scan as scan

    monkeypatch.setattr(scan, "parse_one", lambda path, *a, **k: ModuleReadError(path, error.reason, error.code,
                                                                                 error.errno))
    db = db_of(tmp_path)
    with RecordCache(db) as c:
        parse_cached(paths, c, jobs=1)
        assert c.counts() == (0, 0)
    monkeypatch.undo()
    monkeypatch.setattr(cache_keys, "RACY_SECONDS", 0.0)
    assert same(run_cached(db, paths)[0], fresh(paths))


def test_files_written_in_the_last_two_seconds_are_never_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_keys, "RACY_SECONDS", 2.0)
    paths = modules(tmp_path)
    dangling = tmp_path / "mods" / "dangling.ko"
    dangling.symlink_to(tmp_path / "nowhere.ko")
    fifo = tmp_path / "mods" / "fifo.ko"
    os.mkfifo(fifo)
    paths += [str(dangling), str(tmp_path / "mods"), str(fifo)]
    db = db_of(tmp_path)
    with RecordCache(db) as c:
        out = parse_cached(paths, c, jobs=1)
        assert c.counts() == (0, 0)
    assert same(out, fresh(paths))


def test_a_copied_tree_is_warm_and_names_that_are_not_utf8_work(tmp_path, capsys, monkeypatch):
    db, paths = filled(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "mods", copy)  # new inodes, new paths: found by content
    odd = os.fsdecode(bytes(copy) + b"/bad\xff\xfe.ko")
    os.rename(copy / Path(paths[0]).name, odd)
    copied = [odd] + [str(copy / Path(p).name) for p in paths[1:]]
    out, hits = run_cached(db, copied)
    assert hits == len(copied) and same(out, fresh(copied))
    with RecordCache(db) as c:
        n = c.store.db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        assert n == 2 * len(paths)  # the copy's identities, for the next run (no hashing then)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c" / "xdg"))
    os.makedirs(tmp_path / "c" / "xdg")
    os.symlink(tmp_path / "c", tmp_path / "c" / "xdg" / "kmodcompat")
    capsys.readouterr()
    assert main(["cache", "info"]) == 0
    shown = capsys.readouterr().out
    assert "MiB" in shown or "KiB" in shown
    assert str(copy) in shown and str(tmp_path / "mods") in shown


def test_least_recently_used_records_are_evicted_first(tmp_path):
    db, paths = filled(tmp_path)
    now = int(time.time())
    with RecordCache(db) as c:
        rows = c.store.db.execute("SELECT digest FROM records ORDER BY digest").fetchall()
        for age, (digest,) in enumerate(rows):  # used 0, 1000, 2000, ... seconds ago
            c.store.db.execute("UPDATE records SET used=? WHERE digest=?", (now - 1000 * age, digest))
        used = dict(c.store.db.execute("SELECT digest, used FROM records"))
        size = record_cache._used_bytes(c.store.db)
        blobs = c.store.db.execute("SELECT SUM(length(blob)) FROM records").fetchone()[0]
        n, freed = record_cache.prune(c.store, c.version, record_cache._overhead(c.store.db, size) + blobs // 2, 30)
        left = {d for (d,) in c.store.db.execute("SELECT digest FROM records")}
    assert 0 < n < len(paths) and freed > 0
    assert min(used[d] for d in left) > max(used[d] for d in used if d not in left)
    assert rows[0][0] in left  # the most recently used stays
    with RecordCache(db) as c:
        c.store.db.execute("UPDATE records SET used = 0 WHERE digest != ?", rows[0])
        n, _ = record_cache.prune(c.store, c.version, 1 << 30, 30)  # unused since 1970: too old
        assert c.counts()[0] == 1
    out, hits = run_cached(db, paths)
    assert hits == 1 and same(out, fresh(paths))


def test_cache_prune_and_info_speak_human_units(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    base, kver = demo(tmp_path)
    assert report(base, kver, tmp_path / "r")[0] == 0
    capsys.readouterr()
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert " KiB" in out and "10 record(s)" in out and str(base / "lib" / "modules" / kver) in out, out
    assert main(["cache", "prune", "--max-size", "1K"]) == 0
    out = capsys.readouterr().out
    assert "10 record(s) evicted" in out, out


# --- unusable locations ---------------------------------------------------------------------------------------

def _location(tmp_path: Path, kind: str) -> str:
    if kind == "proc":
        return "/proc/1"
    if kind == "sys":
        return "/sys"  # no directory can be made there, not even by root
    xdg = tmp_path / "xdg"
    if kind == "a-file":
        xdg.write_text("a file where the cache directory should be")
    elif kind == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only directories (/sys stands in for it)")
        xdg.mkdir()
        xdg.chmod(0o500)
    elif kind == "database-is-a-directory":
        (xdg / "kmodcompat" / "cache.sqlite").mkdir(parents=True)
    elif kind == "lock-is-a-fifo":
        (xdg / "kmodcompat").mkdir(parents=True)
        os.mkfifo(xdg / "kmodcompat" / "cache.lock")
    elif kind == "secret-is-a-directory":
        (xdg / "kmodcompat" / "secret").mkdir(parents=True)
    return str(xdg)


@pytest.mark.parametrize("kind", ["a-file", "proc", "sys", "read-only", "database-is-a-directory", "lock-is-a-fifo",
                                  "secret-is-a-directory"])
def test_an_unusable_location_is_one_line_in_every_command(tmp_path, monkeypatch, capsys, kind):
    base, kver = demo(tmp_path)
    tree = str(base / "lib" / "modules" / kver)
    commands = {
        "report": (["report", "-b", str(base), kver, "--out", str(tmp_path / "r"), "-j", "1"], True),
        "views": (["views", tree, "-j", "1"], True),
        "cache info": (["cache", "info"], False),
        "cache clear": (["cache", "clear"], False),
    }
    expected = {}
    for name, (argv, takes_no_cache) in commands.items():
        if takes_no_cache:
            expected[name] = (main(argv + ["--no-cache"]), capsys.readouterr().out)
    monkeypatch.setenv("XDG_CACHE_HOME", _location(tmp_path, kind))
    try:
        for name, (argv, takes_no_cache) in commands.items():
            rc = main(argv)
            out, err = capsys.readouterr()
            lines = [ln for ln in err.splitlines() if "record cache" in ln]
            assert lines and len(lines) == 1 and "record cache unavailable" in lines[0] and \
                lines[0].endswith("parsing everything"), (name, err)
            assert "Traceback" not in err
            if takes_no_cache:
                assert (rc, out) == expected[name], name
            else:
                assert rc == 0, name
    finally:
        if kind == "read-only":
            (tmp_path / "xdg").chmod(0o700)


# --- a bounded fuzz ------------------------------------------------------------------------------------------

def test_100_random_corruptions_of_a_cache_give_the_uncached_results(tmp_path, capsys, monkeypatch):
    """A cache of fixtures (records of every kind, a report), corrupted 100 ways: each run must give exactly
    the uncached results, with no traceback (a run that raises fails this test); `cache info` and `cache clear`
    on each corrupted copy exit 0."""
    import random

    paths = modules(tmp_path, 60)
    expected = fresh(paths)
    db = db_of(tmp_path)
    with RecordCache(db) as c:
        parse_cached(paths, c, jobs=1)
        c.put_report("k", '{"a": 1}')
    c.close()
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    pristine = Path(db).read_bytes()
    rng = random.Random(20)
    outcomes: dict[str, int] = {}
    monkeypatch.setattr(record_cache, "default_path", lambda: db)
    for n in range(100):
        for suffix in ("-wal", "-shm", ".damaged", ".damaged-wal", ".damaged-shm"):
            if os.path.exists(db + suffix):
                os.unlink(db + suffix)
        data = bytearray(pristine)
        corrupt(data, rng)
        Path(db).write_bytes(bytes(data))
        if n % 4 == 0:
            assert main(["cache", "info" if n % 8 else "clear"]) == 0
            Path(db).write_bytes(bytes(data))
            for suffix in ("-wal", "-shm"):
                if os.path.exists(db + suffix):
                    os.unlink(db + suffix)
        try:
            c = RecordCache(db)
        except OSError:
            outcomes["unavailable"] = outcomes.get("unavailable", 0) + 1
            continue
        with c:
            got = parse_cached(paths, c, jobs=1)
            assert same(got, expected)
            assert c.get_report("k") in (None, '{"a": 1}')
            kind = "moved aside" if c.store is not None and c.store.moved_aside else (
                "all hits" if c.hits == len(paths) else "some rows dropped" if c.usable else "given up")
        outcomes[kind] = outcomes.get(kind, 0) + 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    print("corruption outcomes:", outcomes)
    assert sum(outcomes.values()) == 100 and len(outcomes) >= 2, outcomes


def test_a_moved_tree_is_hashed_across_processes_and_served(tmp_path):
    paths = modules(tmp_path, 200)
    assert len(paths) >= 64  # enough for the parallel hashing path
    db = db_of(tmp_path)
    with RecordCache(db) as c:
        parse_cached(paths, c, jobs=2)
    os.rename(tmp_path / "mods", tmp_path / "moved")
    moved = [p.replace(str(tmp_path / "mods"), str(tmp_path / "moved")) for p in paths]
    with RecordCache(db) as c:
        got = parse_cached(moved, c, jobs=2)
        assert c.hits == len(moved)
    assert same(got, fresh(moved))


def test_cache_clear_repairs_a_damaged_database_even_while_it_is_held(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    db = record_cache.default_path()
    base, kver = demo(tmp_path)
    assert report(base, kver, tmp_path / "r")[0] == 0
    holder = hold(HOLD_OPEN, db, 30)
    try:
        for name in (db, db + "-wal"):  # the main file and the log (whose pages SQLite reads first)
            if os.path.exists(name):
                Path(name).write_bytes(os.urandom(os.path.getsize(name)))
        capsys.readouterr()
        assert main(["cache", "clear"]) == 0
        out, err = capsys.readouterr()
        assert "removed" in out and "moved aside" in err and "Traceback" not in err
        assert os.path.exists(db + ".damaged")  # renamed, not deleted: the holder keeps its file
    finally:
        holder.kill()
        holder.wait()
    assert main(["cache", "clear"]) == 0  # nobody holds the damaged copy now: it goes
    assert not os.path.exists(db + ".damaged") and "cache.sqlite.damaged deleted" in capsys.readouterr().out


def test_cache_clear_deletes_the_pickle_era_file_unless_another_process_has_it_open(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    legacy = tmp_path / "xdg" / "kmodcompat" / "records.sqlite"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"SQLite format 3\0" + bytes(100))
    assert main(["cache", "info"]) == 0
    assert "never read" in capsys.readouterr().out
    with open(legacy, "rb"):
        holder = subprocess.Popen([sys.executable, "-c", "import sys, time; f = open(sys.argv[1]); print('open', "
                                   "flush=True); time.sleep(30)", str(legacy)], stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "open"
        try:
            assert main(["cache", "clear"]) == 0
            assert legacy.exists()
        finally:
            holder.kill()
            holder.wait()
    assert main(["cache", "clear"]) == 0
    assert not legacy.exists()


def test_a_database_copied_without_its_secret_is_only_data(tmp_path):
    db, paths = filled(tmp_path)
    other = tmp_path / "other" / "cache.sqlite"
    other.parent.mkdir()
    shutil.copy(db, other)  # another machine's cache, or an artifact: its MACs are not ours
    out, hits = run_cached(str(other), paths)
    assert hits == 0 and same(out, fresh(paths))
    assert run_cached(str(other), paths)[1] == len(paths)


def test_a_hit_refreshes_last_use_at_most_daily(tmp_path):
    db, paths = filled(tmp_path)
    with RecordCache(db) as c:
        c.store.db.execute("UPDATE records SET used = 1000")
        c.store.db.execute("UPDATE records SET used = ? WHERE rowid = 1", (int(time.time()) - 3600,))
    run_cached(db, paths)
    with RecordCache(db) as c:
        used = [u for (u,) in c.store.db.execute("SELECT used FROM records ORDER BY rowid")]
    assert used[0] < time.time() - 3000  # used an hour ago: not rewritten
    assert all(u > time.time() - 600 for u in used[1:])  # unused since 1970: refreshed by the hit
