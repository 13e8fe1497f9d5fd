"""The cache as commands use it: parse results by content, finished reports and diffs by input key.

:func:`parse_cached` serves each file's parse result from the cache when it
holds one for the file's bytes, and parses the rest. What it stores comes
from the bytes actually parsed: the worker takes the file's identity before
the parse and again after hashing it, and a result is cached only when both
agree and the file is not "racy" (modified in the last two seconds), so a
module replaced mid-scan is never cached under the replacement's identity.
Results that say something about the run rather than the file (a deadline
hit, a parser bug, a crashed worker, an OS error such as EACCES or EAGAIN)
are never cached.

Any trouble with the cache itself (unusable location, busy lock, damage)
costs this run its cache, with one line on stderr, never the run.
"""

from __future__ import annotations

import errno
import functools
import os
import sqlite3
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ModuleReadError
from ..records import ModuleRecord
from . import codec
from .keys import FileId, content_digest, file_id, identity_and_digest, racy, records_version, verdict_prefix
from .store import BUSY_SECONDS, DB_ERRORS, Store, _busy, warn

Parsed = ModuleRecord | ModuleReadError

#: Finished reports (with their two renderings) and diffs kept, most recently used first: a few trees, not
#: every one ever seen.
REPORTS_KEPT = 32
#: Limits applied after each run that wrote to the cache (``cache prune`` takes others).
DEFAULT_MAX_BYTES = 512 << 20
DEFAULT_MAX_AGE_DAYS = 30
#: A hit refreshes a record's last use at most this often (a warm run then writes nothing).
_TOUCH_SECONDS = 86400

#: How stale a report's last use may get before a hit refreshes it (LRU order among reports).
_TOUCH_REPORT_SECONDS = 600

#: Error codes that come from the run or the file system, not from the file's bytes: never cached.
_TRANSIENT_CODES = frozenset({"unreadable", "is-directory", "not-found", "timeout", "internal-error", "not-parsed"})
_TRANSIENT_ERRNOS = frozenset({errno.EAGAIN, errno.EINTR, errno.ENOMEM, errno.ETIMEDOUT, errno.EIO, errno.EACCES,
                               errno.EPERM, errno.ENOENT, errno.ESTALE})


def default_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kmodcompat", "cache.sqlite")


def cacheable(value: Any) -> bool:
    """A fact about the file's bytes (a record or a verdict, or an error the bytes alone cause)."""
    return not isinstance(value, ModuleReadError) or (not value.transient and value.code not in _TRANSIENT_CODES
                                                      and value.errno not in _TRANSIENT_ERRNOS)


@dataclass(frozen=True)
class Kind:
    """What is cached per file content: parse results (:data:`RECORDS`), or ``validate``'s verdicts for one
    target (:func:`verdicts`). Rows of each kind sit in the ``records`` table under their own version, so
    one eviction order (last use) covers them all."""

    version: str
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes, str], Any]


def records_kind() -> Kind:
    return Kind(records_version(), codec.encode, codec.decode)


def verdicts(target: object) -> Kind:
    """``validate``'s verdicts against ``target`` (a :class:`kmodcompat.validate.Target`): keyed by the
    package's whole code (any change retires them) and the target's every field."""
    import hashlib

    digest = hashlib.blake2b(repr(target).encode(), digest_size=8).hexdigest()
    return Kind(verdict_prefix() + digest, codec.encode_verdict, codec.decode_verdict)


class RecordCache:
    """The cache of one run. Use as a context manager; raises :class:`CacheUnavailable` (an OSError) on open."""

    def __init__(self, path: str | None = None, repair: bool = False):
        self.path = path or default_path()
        self.hits = 0
        self.misses = 0
        self.records = records_kind()
        self.version = self.records.version
        self._store: Store | None = Store(self.path, repair)
        self.removed: list[str] = []  # leftover files clear() deleted
        # Commands open the cache for the whole run: closed (and eviction run) when it is no longer
        # referenced, or at exit at the latest.
        self._finalizer = weakref.finalize(self, _finish, self._store, self.version)
        if self._store.moved_aside:
            warn(f"record cache {self.path}: damaged or of another schema: moved aside to "
                 f"{os.path.basename(self.path)}.damaged and rebuilt")

    # -- failing soft ----------------------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return self._store is not None

    def _give_up(self, e: BaseException) -> None:
        """Go on without the cache for the rest of the run (one line); move a damaged one aside if free."""
        store, self._store = self._store, None
        if store is None:
            return
        if _busy(e):
            warn(f"record cache busy (another process holds its lock past {BUSY_SECONDS:g} s); going on without it")
        else:
            moved = store.move_aside()
            warn(f"record cache damaged ({e}); parsing everything" + ("; moved aside, rebuilt next run" if moved
                                                                      else ""))
        store.close()

    def close(self) -> None:
        self._store = None
        self._finalizer()

    def __enter__(self) -> RecordCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- records ---------------------------------------------------------------------------------------------

    def get_many(self, paths: Sequence[str], tree: str | None = None, kind: Kind | None = None) -> list[Any]:
        """Cached results for ``paths`` (None where missing, stale or invalid), in order; ``kind``: what
        (default: parse results)."""
        from ..parse.scan import gc_paused  # a tree's records: a million objects, no cycles

        kind = kind or self.records
        with gc_paused():
            out: list[Any] = [None] * len(paths)
            if self._store is not None:
                try:
                    self._get_many(paths, out, tree, kind)
                except DB_ERRORS as e:
                    self._give_up(e)
                    out = [None] * len(paths)
        found = sum(1 for x in out if x is not None)
        self.hits += found
        self.misses += len(out) - found
        return out

    def _get_many(self, paths: Sequence[str], out: list[Any], tree: str | None, kind: Kind) -> None:
        store = self._store
        assert store is not None  # get_many() returns early without one
        now = time.time()
        digests: list[bytes | None] = [None] * len(paths)
        names = list(map(_name, paths))
        unproven = []
        for i, p in enumerate(paths):
            fid = file_id(p)
            if fid is None:
                continue
            known = store.file_row(names[i])
            if known is not None and known[0] == fid and not racy(fid, now):
                digests[i] = known[1]
            else:
                unproven.append(i)
        # The identity does not prove the content (a copied or moved tree, a touched file): its bytes do.
        new_files = []
        for i, (fid, digest) in zip(unproven, _hash_many([paths[i] for i in unproven])):
            digests[i] = digest
            if fid is not None and digest is not None and not racy(fid, now):
                new_files.append((i, fid, digest))
        rows = store.record_rows([d for d in dict.fromkeys(digests) if d is not None], kind.version)
        stale: set[bytes] = set()
        for i, (p, d) in enumerate(zip(paths, digests)):
            row = rows.get(d) if d is not None else None
            if d is not None and row is not None:
                try:
                    out[i] = kind.decode(row[0], p)
                except codec.DecodeError:
                    continue  # parsed again, and the row overwritten
                if now - row[1] > _TOUCH_SECONDS:
                    stale.add(d)
        if stale:  # last use, for eviction: refreshed at most daily, so a warm run seldom writes
            try:
                store.touch_records(stale, kind.version, int(now))
            except DB_ERRORS as e:
                if not _busy(e):
                    raise  # busy: the refresh waits for another run
        label = _name(tree) if tree is not None else _tree(paths)
        hit_files = [(names[i], fid, d, label) for i, fid, d in new_files if out[i] is not None]
        if hit_files:  # their identities, for the next run: no hashing then
            self._put(hit_files, [], kind)

    def put_parsed(self, items: Sequence[tuple[str, FileId | None, bytes | None, Any]],
                   tree: str | None = None, kind: Kind | None = None) -> None:
        """Store results: (path, identity, digest of the bytes read, result); ones without both skipped.
        ``tree``: the directory ``cache info`` counts them under (default: the one holding them all)."""
        if self._store is None:
            return
        kind = kind or self.records
        items = [(p, fid, d, v) for p, fid, d, v in items if fid is not None and d is not None and cacheable(v)]
        if not items:
            return
        label = _name(tree) if tree is not None else _tree([p for p, *_ in items])
        self._put([(_name(p), fid, d, label) for p, fid, d, _ in items],
                  [(d, kind.encode(v)) for _, _, d, v in items], kind)

    def _put(self, files, records, kind: Kind) -> None:
        if self._store is None:
            return
        try:
            self._store.put(files, records, kind.version, int(time.time()))
            self._store.wrote = True
        except DB_ERRORS as e:
            self._give_up(e)

    # -- reports ---------------------------------------------------------------------------------------------

    def get_report(self, key: str) -> str | None:
        """The report text stored under ``key`` by :meth:`put_report`, or None (also for any row that fails its MAC)."""
        if self._store is None:
            return None
        try:
            found = self._store.report(key)
            if found is None:
                return None
            text, used = found
            now = int(time.time())
            if now - used > _TOUCH_REPORT_SECONDS:  # a warm run writes nothing (no fsync) in the common case
                self._store.touch_report(key, now)
            return text
        except DB_ERRORS as e:
            self._give_up(e)
            return None

    def put_report(self, key: str, text: str) -> None:
        if self._store is None:
            return
        try:
            self._store.put_report(key, text, int(time.time()), REPORTS_KEPT)
            self._store.wrote = True
        except DB_ERRORS as e:
            self._give_up(e)

    # -- maintenance -----------------------------------------------------------------------------------------

    def counts(self) -> tuple[int, int]:
        """(records, reports) held (0, 0 when the cache went away)."""
        if self._store is None:
            return 0, 0
        db = self._store.conn
        return (db.execute("SELECT COUNT(*) FROM records").fetchone()[0],
                db.execute("SELECT COUNT(*) FROM reports").fetchone()[0])

    def clear(self) -> tuple[int, int]:
        """Empty the cache; (records, reports) removed. Moved-aside and pickle-era files nobody holds go too."""
        if self._store is None:
            return 0, 0
        store = self._store
        self.removed = store.remove_leftovers()
        db = store.conn
        try:
            n = self.counts()
            db.execute("BEGIN IMMEDIATE")
            for table in ("records", "files", "reports"):
                db.execute(f"DELETE FROM {table}")
            db.execute("COMMIT")
        except DB_ERRORS as e:  # damage the open did not see: moved aside all the same (clear always works)
            if _busy(e):
                self._give_up(e)
                return 0, 0
            self._store = None
            store.move_aside(force=True)
            store.close()
            warn(f"record cache damaged ({e}): moved aside to {os.path.basename(self.path)}.damaged")
            return 0, 0
        try:
            db.execute("VACUUM")  # gives the space back; needs no other reader, so best effort
        except sqlite3.OperationalError:
            pass
        return n

    @property
    def store(self) -> Store | None:
        return self._store


def _finish(store: Store, version: str) -> None:
    """Close ``store``, evicting first if this run wrote to it (at most once a day, or when over the limit)."""
    if store.db is None:
        return
    if store.wrote:
        try:
            prune(store, version, DEFAULT_MAX_BYTES, DEFAULT_MAX_AGE_DAYS, automatic=True)
        except DB_ERRORS:
            pass  # eviction is best effort; the next run tries again
    store.close()


def _name(path: str) -> bytes:
    """A path as the OS spells it (bytes): names that are not UTF-8 stored as they are."""
    return os.fsencode(os.path.abspath(path))


def _tree(paths: Sequence[str]) -> bytes:
    """What ``cache info`` counts files under: the directory holding all of ``paths``."""
    try:
        return os.fsencode(os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths]))
    except ValueError:
        return b"/"


def prune(store: Store, version: str, max_bytes: int, max_age_days: float, automatic: bool = False) -> tuple[int, int]:
    """Evict records of other versions, older than ``max_age_days``, then least recently used ones until the
    database holds at most ``max_bytes``; (records, bytes) evicted. ``automatic``: only when over the size
    limit or not pruned for a day (a warm run writes nothing)."""
    db = store.conn
    now = int(time.time())
    size = _used_bytes(db)
    row = db.execute("SELECT value FROM meta WHERE key='pruned'").fetchone()
    last = int(row[0]) if row is not None and str(row[0]).isdigit() else 0
    if automatic and size <= max_bytes and now - last < 86400:
        return 0, 0
    gone = _files_gone(db)
    db.execute("BEGIN IMMEDIATE")
    try:
        before = db.execute("SELECT COUNT(*), COALESCE(SUM(length(blob)), 0) FROM records").fetchone()
        prefix = verdict_prefix()
        db.execute("DELETE FROM records WHERE (version != ? AND substr(version, 1, ?) != ?) OR used < ?",
                   (version, len(prefix), prefix, now - int(max_age_days * 86400)))
        total = db.execute("SELECT COALESCE(SUM(length(blob)), 0) FROM records").fetchone()[0]
        over = total + _overhead(db, size) - max_bytes
        if over > 0:
            doomed, freed = [], 0
            for digest, v, length in db.execute("SELECT digest, version, length(blob) FROM records ORDER BY used"):
                if freed >= over + max_bytes // 10:  # down to 90%: not a prune every run
                    break
                doomed.append((digest, v))
                freed += length
            db.executemany("DELETE FROM records WHERE digest=? AND version=?", doomed)
        # Each row deleted only as it was seen (another run may have rewritten it since).
        db.executemany("DELETE FROM files WHERE path=? AND dev=? AND ino=? AND size=? AND mtime=? AND ctime=?", gone)
        db.execute("DELETE FROM files WHERE digest NOT IN (SELECT digest FROM records)")
        db.execute("DELETE FROM reports WHERE used < ?", (now - int(max_age_days * 86400),))
        db.execute("INSERT OR REPLACE INTO meta VALUES ('pruned', ?)", (str(now),))
        after = db.execute("SELECT COUNT(*), COALESCE(SUM(length(blob)), 0) FROM records").fetchone()
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    if _used_bytes(db) < size // 2:
        try:
            db.execute("VACUUM")
        except sqlite3.OperationalError:
            pass
    return before[0] - after[0], before[1] - after[1]


def _files_gone(db: sqlite3.Connection) -> list[tuple]:
    """The ``files`` rows whose file is gone or changed (a deleted copy, unpacked packages' temporary root, a
    rebuilt module): they can never prove a file unchanged again, and would keep counting in ``cache info``."""
    gone = []
    for row in db.execute("SELECT path, dev, ino, size, mtime, ctime FROM files"):
        path = row[0]
        if type(path) is not bytes:
            continue  # not a row this cache wrote: its MAC fails on every read
        fid = file_id(os.fsdecode(path))
        if fid is None or tuple(fid) != tuple(row[1:]):
            gone.append(row)
    return gone


def _used_bytes(db: sqlite3.Connection) -> int:
    pages = db.execute("PRAGMA page_count").fetchone()[0] - db.execute("PRAGMA freelist_count").fetchone()[0]
    return pages * db.execute("PRAGMA page_size").fetchone()[0]


def _overhead(db: sqlite3.Connection, size: int) -> int:
    """The database's bytes beyond the record blobs (files rows, reports, indexes), at least 0."""
    blobs = db.execute("SELECT COALESCE(SUM(length(blob)), 0) FROM records").fetchone()[0]
    return max(0, size - blobs)


def _hash_many(paths: Sequence[str]) -> list[tuple[FileId | None, bytes | None]]:
    """:func:`identity_and_digest` of each path; across processes when there are many (a moved tree)."""
    from ..parse.scan import map_files

    if len(paths) < 64:
        return list(map(identity_and_digest, paths))
    return [r if isinstance(r, tuple) else (None, None) for r in map_files(identity_and_digest, paths)]


def _keyed(worker: Callable[[str], Any], path: str) -> tuple[Any, FileId | None, bytes | None]:
    """``worker(path)`` in a scan worker; with the identity and digest to cache it under when they held."""
    before = file_id(path)
    value = worker(path)
    if before is None or not cacheable(value):
        return value, None, None
    digest = content_digest(path)
    if digest is None or file_id(path) != before or racy(before):
        return value, None, None
    return value, before, digest


def parse_cached(paths: Sequence[str], cache: RecordCache | None, jobs: int | None = None,
                 progress=None, tree: str | None = None) -> list[Parsed]:
    """:func:`kmodcompat.parse.scan.parse_many`, served from ``cache`` where it holds the file's bytes.

    ``tree``: the module directory ``paths`` come from, for ``cache info``'s per-tree counts."""
    from ..parse.scan import parse_one

    return map_cached(parse_one, paths, cache, None, jobs, progress, tree)


def map_cached(worker: Callable[[str], Any], paths: Sequence[str], cache: RecordCache | None, kind: Kind | None,
               jobs: int | None = None, progress=None, tree: str | None = None) -> list[Any]:
    """:func:`kmodcompat.parse.scan.map_files` of ``worker``, each file's result served from ``cache`` where it
    holds one of ``kind`` (default: parse results) for the file's bytes, the others computed and stored."""
    from ..parse.scan import map_files

    if cache is None or not cache.usable:
        return map_files(worker, paths, jobs, progress)
    kind = kind or cache.records
    found = cache.get_many(paths, tree, kind)
    missing = [p for p, v in zip(paths, found) if v is None]
    results = map_files(functools.partial(_keyed, worker), missing, jobs, progress) if missing else []
    # A worker that died comes back as a bare ModuleReadError: never cached.
    keyed: list[tuple[Any, FileId | None, bytes | None]] = [
        k if isinstance(k, tuple) else (k, None, None) for k in results]
    cache.put_parsed([(p, fid, d, v) for p, (v, fid, d) in zip(missing, keyed)], tree, kind)
    computed = iter(v for v, _, _ in keyed)
    return [v if v is not None else next(computed) for v in found]
