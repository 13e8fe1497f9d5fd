"""The cache's SQLite file: data only, checked on every read, shared safely between processes.

Tables (:data:`SCHEMA`, compared exactly with ``sqlite_master`` on open):

* ``files``: path (bytes, as the OS gives it) → file identity and content digest;
* ``records``: content digest → an encoded parse result (:mod:`.codec`);
* ``reports``: input key → a finished report or diff (zlib JSON text);
* ``meta``: the schema and records versions.

Every row of ``files``, ``records`` and ``reports`` carries a MAC (keyed
BLAKE2b-128) over all its other columns, keyed by a secret kept beside the
database in a file of its own (mode 0600, the user's): a row that was not
written by this cache as it stands (a flipped bit, a page of random bytes, an
edited report, a row from another machine's database) fails it, is treated
as missing and is overwritten. A database copied alone is data to re-check,
not a source of answers; a cache directory restored whole (its secret
included) is trusted as far as whoever supplied it, and even then only as data:
nothing read back runs (no pickle), and every record is schema-checked again.

A database that cannot be read (corrupt pages, not SQLite, another schema:
a column added, a table replaced by a view, triggers) is moved aside to
``cache.sqlite.damaged`` and rebuilt, but only while no other kmodcompat
process holds it: every process holds a shared ``flock`` on ``cache.lock`` for
as long as it has the database open, and moving aside takes it exclusively
(never deleting a file another process is using: its commits would be lost).
A records-version change (a new release or parser) needs no new file: the
rows carry their version, and rows of another version are never read.

Writers wait for SQLite's lock at most :data:`BUSY_SECONDS`; then the run goes
on without the cache (one line on stderr), as it does when the location is
unusable (read-only, a file, ``/proc/1``).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import hmac
import os
import sqlite3
import stat
import sys
import time
import zlib
from collections.abc import Iterable, Sequence

from .keys import FileId

#: Bump when the tables change; a database with any other schema is moved aside and rebuilt.
SCHEMA_VERSION = "2"
SCHEMA = {
    ("table", "meta"): "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ("table", "files"): "CREATE TABLE files (path BLOB PRIMARY KEY, dev INTEGER NOT NULL, ino INTEGER NOT NULL, "
                        "size INTEGER NOT NULL, mtime INTEGER NOT NULL, ctime INTEGER NOT NULL, "
                        "digest BLOB NOT NULL, tree BLOB NOT NULL, mac BLOB NOT NULL)",
    ("table", "records"): "CREATE TABLE records (digest BLOB NOT NULL, version TEXT NOT NULL, used INTEGER NOT NULL, "
                          "mac BLOB NOT NULL, blob BLOB NOT NULL, PRIMARY KEY (digest, version))",
    ("table", "reports"): "CREATE TABLE reports (key TEXT PRIMARY KEY, used INTEGER NOT NULL, mac BLOB NOT NULL, "
                          "blob BLOB NOT NULL)",
    ("index", "records_used"): "CREATE INDEX records_used ON records (used)",
}
#: What SQLite adds to sqlite_master for the PRIMARY KEYs (no SQL of their own).
_AUTOINDEXES = {("index", "sqlite_autoindex_meta_1"), ("index", "sqlite_autoindex_files_1"),
                ("index", "sqlite_autoindex_records_1"), ("index", "sqlite_autoindex_reports_1")}

#: Seconds a writer waits for another process' write lock before going on without the cache.
BUSY_SECONDS = 5.0
#: Seconds to wait for the shared lock while another process moves a damaged database aside.
LOCK_SECONDS = 2.0
SECRET_BYTES = 32


class CacheUnavailable(OSError):
    """The cache cannot be used in this run; ``str()`` says why, in a few words."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unavailable"


#: What a damaged database can raise: SQLite's errors, and a UnicodeDecodeError when SQLite's own message
#: quotes bytes of a damaged schema that are not UTF-8 (the sqlite3 module decodes messages strictly).
DB_ERRORS = (sqlite3.Error, UnicodeDecodeError)


def _code(e: BaseException) -> int:
    return getattr(e, "sqlite_errorcode", 0) & 0xFF


def _busy(e: BaseException) -> bool:
    # SQLITE_BUSY (5), SQLITE_LOCKED (6); older builds only say it in the text.
    return _code(e) in (5, 6) or "locked" in str(e) or "busy" in str(e)


def _damaged(e: BaseException) -> bool:
    if isinstance(e, UnicodeDecodeError):
        return True
    # SQLITE_CORRUPT (11), SQLITE_NOTADB (26), SQLITE_SCHEMA (17), SQLITE_MISMATCH (20), SQLITE_CONSTRAINT (19);
    # an OperationalError "no such table/column" means another schema too.
    return _code(e) in (11, 17, 19, 20, 26) or (isinstance(e, sqlite3.DatabaseError) and not _busy(e)
                                                 and _code(e) not in (8, 10, 13, 14))


class Store:
    """One open cache database. Methods raise :class:`sqlite3.Error` (the caller decides what it means)."""

    def __init__(self, path: str, repair: bool = False):
        self.path = path
        self.repair = repair  # `cache clear`: a damaged database is moved aside even while others hold it
        self.dir = os.path.dirname(path)
        self._lock_fd: int | None = None
        self.db: sqlite3.Connection | None = None
        self.secret = b""
        self.moved_aside = False
        self.wrote = False  # this run wrote rows (eviction runs when it closes)
        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            if not os.path.isdir(self.dir):
                raise CacheUnavailable(f"{self.dir}: not a directory")
            if not os.access(self.dir, os.W_OK | os.X_OK):
                raise CacheUnavailable(f"{self.dir}: not writable")
            self._lock_fd = self._take_lock()
            self.secret = self._secret()
            self.db = self._connect()
        except OSError as e:
            self.close()
            raise CacheUnavailable(f"{self.dir}: {e.strerror or e}") from None
        except BaseException:
            self.close()
            raise

    # -- locking and opening ---------------------------------------------------------------------------------

    def _take_lock(self) -> int:
        fd = os.open(os.path.join(self.dir, "cache.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                     0o600)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise CacheUnavailable("cache.lock: not a regular file")
            if not _flock(fd, fcntl.LOCK_SH, LOCK_SECONDS):
                raise CacheUnavailable("another process is repairing it")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _secret(self) -> bytes:
        """The MAC key: ``secret`` beside the database, 0600 and ours; else a new one (old rows then fail)."""
        path = os.path.join(self.dir, "secret")
        for _ in range(2):
            data = _read_secret(path)
            if data is not None:
                return data
            tmp = f"{path}.{os.getpid()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, os.urandom(SECRET_BYTES))
            finally:
                os.close(fd)
            os.replace(tmp, path)  # atomic: racing processes end up reading the same (last) one
        raise CacheUnavailable("secret: cannot be kept")

    def _connect(self) -> sqlite3.Connection:
        """The database, checked; a damaged or foreign one moved aside (when nobody holds it) and rebuilt."""
        for attempt in range(2):
            try:
                db = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None,
                                     check_same_thread=False)
            except DB_ERRORS as e:
                raise CacheUnavailable(str(e)) from None
            # TEXT that is not UTF-8 (a damaged page) must not raise UnicodeDecodeError mid-query: decoded
            # with surrogates, it simply matches nothing we look for.
            db.text_factory = _text
            try:
                self._prepare(db)
                return db
            except DB_ERRORS as e:
                db.close()
                if _busy(e):
                    raise CacheUnavailable("busy: another process holds its lock") from None
                if not _damaged(e) or attempt:
                    raise CacheUnavailable(str(e)) from None
            except _Foreign:
                db.close()
                if attempt:
                    raise CacheUnavailable("its schema cannot be rebuilt") from None
            if not self.move_aside(force=self.repair):
                raise CacheUnavailable("damaged, and in use by another process")
        raise AssertionError("unreachable")

    def _prepare(self, db: sqlite3.Connection) -> None:
        db.execute("PRAGMA trusted_schema=OFF")  # no SQL functions run from a schema's views or triggers
        db.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")
        found = self._schema(db)
        if found == self._expected():
            version = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if version is not None and version[0] == SCHEMA_VERSION:
                return
            raise _Foreign()
        if found:
            raise _Foreign()
        # An empty database: create it, unless another process just did (then check that one).
        db.execute("BEGIN IMMEDIATE")
        try:
            if not self._schema(db):
                for sql in SCHEMA.values():
                    db.execute(sql)
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("PRAGMA journal_mode=WAL")
        if self._schema(db) != self._expected():
            raise _Foreign()

    @staticmethod
    def _schema(db: sqlite3.Connection) -> dict[tuple[str, str], str | None]:
        return {(t, n): sql for t, n, sql in db.execute("SELECT type, name, sql FROM sqlite_master")}

    @staticmethod
    def _expected() -> dict[tuple[str, str], str | None]:
        return {**SCHEMA, **dict.fromkeys(_AUTOINDEXES)}

    def move_aside(self, force: bool = False) -> bool:
        """Rename the database (and its -wal, -shm) to ``*.damaged``, if no other process holds it.

        ``force`` (an explicit ``cache clear``): even then. A rename deletes nothing: a process
        that has the file open goes on with it (and loses nothing it could still have read)."""
        if self._lock_fd is None:
            return False
        exclusive = _flock(self._lock_fd, fcntl.LOCK_EX, LOCK_SECONDS)
        if not exclusive and not force:
            return False
        try:
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.replace(self.path + suffix, self.path + ".damaged" + suffix)
                except FileNotFoundError:
                    pass
            self.moved_aside = True
            return True
        finally:
            if exclusive:
                _flock(self._lock_fd, fcntl.LOCK_SH, LOCK_SECONDS)

    def remove_leftovers(self) -> list[str]:
        """Delete the moved-aside copies and the pickle-era ``records.sqlite`` beside the database, each only
        when no process has it open (checked in /proc) and no other kmodcompat holds the cache; the names removed."""
        if self._lock_fd is None or not _flock(self._lock_fd, fcntl.LOCK_EX, 0):
            return []
        removed = []
        try:
            for base in (self.path + ".damaged", os.path.join(self.dir, "records.sqlite")):
                names = [base + s for s in ("", "-wal", "-shm", "-journal") if os.path.lexists(base + s)]
                if names and not _open_elsewhere(names):
                    for name in names:
                        os.unlink(name)
                    removed.append(base)
        finally:
            _flock(self._lock_fd, fcntl.LOCK_SH, LOCK_SECONDS)
        return removed

    def close(self) -> None:
        if self.db is not None:
            try:
                self.db.close()
            except sqlite3.Error:
                pass
            self.db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- rows ------------------------------------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        """The open connection: every row method runs between opening and :meth:`close`."""
        if self.db is None:
            raise sqlite3.ProgrammingError("the cache store is closed")
        return self.db

    def mac(self, *parts: bytes | str | int) -> bytes:
        h = hashlib.blake2b(key=self.secret, digest_size=16)
        for p in parts:
            b = p if isinstance(p, bytes) else str(p).encode("utf-8", "surrogateescape")
            h.update(len(b).to_bytes(8, "little") + b)
        return h.digest()

    def file_row(self, path: bytes) -> tuple[FileId, bytes] | None:
        row = self.conn.execute("SELECT dev, ino, size, mtime, ctime, digest, tree, mac FROM files WHERE path=?",
                              (path,)).fetchone()
        if row is None or not all(type(v) is int for v in row[:5]) or not all(type(v) is bytes for v in row[5:]):
            return None
        fid = FileId(*row[:5])
        if not hmac.compare_digest(row[7], self.mac(b"f", path, *fid, row[5], row[6])):
            return None
        return fid, row[5]

    def record_rows(self, digests: Sequence[bytes], version: str) -> dict[bytes, tuple[bytes, int]]:
        """digest → (blob, last used) for the rows of ``version`` whose MAC holds."""
        out = {}
        for i in range(0, len(digests), 500):
            part = digests[i:i + 500]
            q = (f"SELECT digest, mac, blob, used FROM records WHERE version=? AND digest IN "
                 f"({','.join('?' * len(part))})")
            for digest, mac, blob, used in self.conn.execute(q, (version, *part)):
                if (type(digest) is bytes and type(mac) is bytes and type(blob) is bytes
                        and hmac.compare_digest(mac, self.mac(b"r", digest, version, blob))):
                    out[digest] = blob, used if type(used) is int else 0
        return out

    def touch_records(self, digests: Iterable[bytes], version: str, now: int) -> None:
        db = self.conn
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("UPDATE records SET used=? WHERE digest=? AND version=?", ((now, d, version) for d in digests))
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    def put(self, files: Iterable[tuple[bytes, FileId, bytes, bytes]], records: Iterable[tuple[bytes, bytes]],
            version: str, now: int) -> None:
        """In one transaction: ``files`` (path, id, digest, tree) and ``records`` (digest, blob)."""
        db = self.conn
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?)",
                           ((d, version, now, self.mac(b"r", d, version, blob), blob) for d, blob in records))
            db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           ((p, *fid, d, tree, self.mac(b"f", p, *fid, d, tree)) for p, fid, d, tree in files))
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    def report(self, key: str) -> tuple[str, int] | None:
        """(text, last used) of the report stored under ``key``, if its MAC holds."""
        row = self.conn.execute("SELECT mac, blob, used FROM reports WHERE key=?", (key,)).fetchone()
        if row is None or type(row[0]) is not bytes or type(row[1]) is not bytes:
            return None
        if not hmac.compare_digest(row[0], self.mac(b"R", key, row[1])):
            return None
        try:
            return zlib.decompress(row[1]).decode("utf-8"), row[2] if type(row[2]) is int else 0
        except (zlib.error, UnicodeDecodeError):
            return None

    def put_report(self, key: str, text: str, now: int, kept: int) -> None:
        blob = zlib.compress(text.encode("utf-8"), 1)
        db = self.conn
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT OR REPLACE INTO reports VALUES (?, ?, ?, ?)", (key, now, self.mac(b"R", key, blob), blob))
            db.execute("DELETE FROM reports WHERE key NOT IN (SELECT key FROM reports ORDER BY used DESC LIMIT ?)",
                       (kept,))
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    def touch_report(self, key: str, now: int) -> None:
        self.conn.execute("UPDATE reports SET used=? WHERE key=?", (now, key))


class _Foreign(Exception):
    """The database holds another schema."""


def _rollback(db: sqlite3.Connection) -> None:
    try:
        db.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _read_secret(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ELOOP):
            return None
        raise
    try:
        st = os.fstat(fd)
        if not (stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077
                and st.st_size == SECRET_BYTES):
            return None
        data = os.read(fd, SECRET_BYTES + 1)
        return data if len(data) == SECRET_BYTES else None
    finally:
        os.close(fd)


def _open_elsewhere(paths: list[str]) -> bool:
    """Whether any process has one of ``paths`` open (as far as /proc shows; unreadable entries count as no)."""
    wanted = {os.path.realpath(p) for p in paths}
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]
    except OSError:
        return True  # cannot tell: keep the files
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    return True
            except OSError:
                continue
    return False


def _flock(fd: int, op: int, seconds: float) -> bool:
    """``flock(fd, op)``, retried for at most ``seconds``."""
    end = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= end:
                return False
            time.sleep(0.02)
        except OSError:
            return False


def warn(message: str) -> None:
    print(f"kmodcompat: {message}", file=sys.stderr)
