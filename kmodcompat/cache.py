"""A persistent cache of parsed module records and finished reports (SQLite, standard library).

Parsing a compressed tree is mostly decompression; a second run over the
same files should not pay it again. Entries are keyed so that a changed file
is never served stale: absolute path, size, mtime (ns), inode and ctime
must all match, and a file modified within the last two seconds (when mtime
cannot be trusted to have moved) is also checked by a content hash.

Beside the records it keeps the last few finished reports (:meth:`RecordCache.get_report`),
each under a digest of everything the report was computed from (:func:`input_key`):
the package's own code, the tree's survey and every input file's identity. An
unchanged tree is then answered without reading a module; any change anywhere
misses, and the records of the files that did not change still serve.

The cache lives in ``$XDG_CACHE_HOME/kmodcompat`` (else ``~/.cache/kmodcompat``).
Its schema is versioned together with the parser (:data:`CACHE_VERSION`); a
mismatched or corrupt file is discarded and rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sqlite3
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import replace
from functools import lru_cache

from . import __version__
from .errors import ModuleReadError
from .records import ModuleRecord

_PARSER_SOURCES = ("records.py", "files/opener.py", "elf/image.py", "parse/ksymtab.py", "parse/modinfo.py",
                   "parse/signature.py", "parse/module.py", "modversions/basic.py", "modversions/extended.py",
                   "modversions/varlen.py")


def _parser_fingerprint() -> str:
    """A hash of the parser's own source: any change to it retires every cached record."""
    h = hashlib.blake2b(digest_size=8)
    here = os.path.dirname(os.path.abspath(__file__))
    for name in _PARSER_SOURCES:
        with open(os.path.join(here, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()


#: Records cached under another version (format, release or parser source) are discarded.
CACHE_VERSION = f"1:{__version__}:{_parser_fingerprint()}"
_RACY_SECONDS = 2.0
_HASH_CHUNK = 1 << 20
#: Finished reports kept (most recently used first): a few trees, not every one ever seen.
_REPORTS_KEPT = 8

Parsed = ModuleRecord | ModuleReadError


@lru_cache(maxsize=None)
def package_fingerprint() -> bytes:
    """A hash of every source and data file of the package: a report depends on all of it."""
    h = hashlib.blake2b(digest_size=16)
    here = os.path.dirname(os.path.abspath(__file__))
    for top, dirs, files in os.walk(here):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".py", ".json")):
                path = os.path.join(top, name)
                h.update(os.path.relpath(path, here).encode() + b"\0")
                with open(path, "rb") as f:
                    h.update(f.read())
    return h.digest()


def input_key(parts: Iterable[object], files: Iterable[str]) -> str | None:
    """A digest of the package's code, ``parts`` (by ``repr``) and each of ``files``' identity.

    None, meaning "do not memoize", when a file is missing or was modified in
    the last two seconds (its mtime could still move without changing).
    """
    h = hashlib.blake2b(package_fingerprint(), digest_size=20)
    for part in parts:
        h.update(repr(part).encode("utf-8", "surrogateescape") + b"\0")
    now = time.time()
    for path in files:
        key = _stat_key(path)
        if key is None or _racy(key, now):
            return None
        h.update(repr(key).encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def default_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kmodcompat", "records.sqlite")


def _stat_key(path: str) -> tuple[str, int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns


def _racy(key: tuple[str, int, int, int, int], now: float) -> bool:
    """Modified so recently that a further change could leave the mtime as it is."""
    return now - key[2] / 1e9 < _RACY_SECONDS


def _content_hash(path: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class RecordCache:
    """Parsed records by file identity. Use as a context manager."""

    def __init__(self, path: str | None = None):
        self.path = path or default_path()
        self.hits = 0
        self.misses = 0
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        for attempt in range(2):
            try:
                db = sqlite3.connect(self.path)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
                row = db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
                if row is None or row[0] != CACHE_VERSION:
                    db.execute("DROP TABLE IF EXISTS records")
                    db.execute("DROP TABLE IF EXISTS reports")
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (CACHE_VERSION,))
                db.execute("CREATE TABLE IF NOT EXISTS records (path TEXT PRIMARY KEY, size INTEGER, "
                           "mtime INTEGER, ino INTEGER, ctime INTEGER, hash TEXT, blob BLOB)")
                db.execute("CREATE TABLE IF NOT EXISTS reports (key TEXT PRIMARY KEY, used REAL, blob BLOB)")
                db.commit()
                return db
            except sqlite3.DatabaseError:
                # A corrupt cache is rebuilt, never trusted.
                if attempt:
                    raise
                for suffix in ("", "-wal", "-shm"):
                    try:
                        os.unlink(self.path + suffix)
                    except FileNotFoundError:
                        pass
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "RecordCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get_many(self, paths: Sequence[str]) -> list[Parsed | None]:
        """Cached results for ``paths`` (None where missing or stale), in order."""
        from .parse.scan import gc_paused  # a tree's records: a million objects, no cycles

        with gc_paused():
            return self._get_many(paths)

    def _get_many(self, paths: Sequence[str]) -> list[Parsed | None]:
        out: list[Parsed | None] = []
        now = time.time()
        for p in paths:
            key = _stat_key(p)
            if key is None:
                out.append(None)
                continue
            try:
                row = self._db.execute("SELECT size, mtime, ino, ctime, hash, blob FROM records WHERE path=?",
                                       (key[0],)).fetchone()
            except sqlite3.DatabaseError:
                row = None
            if row is None or tuple(row[:4]) != key[1:]:
                out.append(None)
                continue
            if row[4] is not None or _racy(key, now):
                if row[4] != _content_hash(p):
                    out.append(None)
                    continue
            try:
                value = pickle.loads(row[5])
            except Exception:  # a damaged entry is a miss, and is overwritten below
                out.append(None)
                continue
            out.append(_at_path(value, p))
        found = sum(1 for x in out if x is not None)
        self.hits += found
        self.misses += len(out) - found
        return out

    def put_many(self, items: Iterable[tuple[str, Parsed]]) -> None:
        now = time.time()
        rows = []
        for p, value in items:
            key = _stat_key(p)
            if key is None:
                continue
            rows.append((*key, _content_hash(p) if _racy(key, now) else None,
                         pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)))
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def get_report(self, key: str) -> str | None:
        """The report text stored under ``key`` by :meth:`put_report`, or None."""
        try:
            row = self._db.execute("SELECT blob FROM reports WHERE key=?", (key,)).fetchone()
            if row is None:
                return None
            text = zlib.decompress(row[0]).decode("utf-8")
            with self._db:
                self._db.execute("UPDATE reports SET used=? WHERE key=?", (time.time(), key))
            return text
        except (sqlite3.DatabaseError, zlib.error, UnicodeDecodeError):
            return None  # a damaged entry is a miss; put_report overwrites it

    def put_report(self, key: str, text: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO reports VALUES (?, ?, ?)",
                             (key, time.time(), zlib.compress(text.encode("utf-8"), 1)))
            self._db.execute("DELETE FROM reports WHERE key NOT IN (SELECT key FROM reports ORDER BY used DESC "
                             "LIMIT ?)", (_REPORTS_KEPT,))

    def counts(self) -> tuple[int, int]:
        """(records, reports) held."""
        return (self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0],
                self._db.execute("SELECT COUNT(*) FROM reports").fetchone()[0])

    def clear(self) -> tuple[int, int]:
        """Empty the cache; (records, reports) removed."""
        with self._db:
            n = self.counts()
            self._db.execute("DELETE FROM records")
            self._db.execute("DELETE FROM reports")
        self._db.execute("VACUUM")
        return n


def _at_path(value: Parsed, path: str) -> Parsed:
    """The cached result under the name it is asked for now (a relative path, say)."""
    if isinstance(value, ModuleRecord):
        return value if value.path == path else replace(value, path=path)
    if value.path != path:
        return ModuleReadError(path, value.reason, value.code, value.errno, value.detail, value.compression)
    return value


def parse_cached(paths: Sequence[str], cache: RecordCache | None, jobs: int | None = None,
                 progress=None) -> list[Parsed]:
    """:func:`kmodcompat.parse.scan.parse_many`, served from ``cache`` where it holds the file unchanged."""
    from .parse.scan import parse_many

    if cache is None:
        return parse_many(paths, jobs=jobs, progress=progress)
    found = cache.get_many(paths)
    missing = [p for p, v in zip(paths, found) if v is None]
    parsed = iter(parse_many(missing, jobs=jobs, progress=progress)) if missing else iter(())
    out = [v if v is not None else next(parsed) for v in found]
    # Internal errors are parser bugs, not facts about the file: never cache them.
    cache.put_many((p, v) for p, v, old in zip(paths, out, found)
                   if old is None and not (isinstance(v, ModuleReadError) and v.code == "internal-error"))
    return out
