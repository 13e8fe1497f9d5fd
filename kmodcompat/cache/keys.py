"""What the cache keys entries by: a file's identity, its content digest, the code's fingerprint.

A record is stored under the digest of the file's bytes (so a copied or
moved tree finds its records: issue 20), and found through the file's
identity (device, inode, size, mtime, ctime) when that proves the file
unchanged since it was hashed, which saves reading it. An identity proves
nothing when the file was modified just now (:func:`racy`: mtime in the last
two seconds, or ctime within its clock tick): a further write within the
timestamp's granularity could leave it as it is (the "racy" case git's index
also guards against); such files are hashed every time, and never cached
from a parse.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Iterable
from functools import cache
from typing import NamedTuple

from .. import __version__

RACY_SECONDS = 2.0
#: Ten times the longest coarse-clock tick (HZ=100).
CTIME_TICK_SECONDS = 0.1
_HASH_CHUNK = 1 << 20
_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the package


class FileId(NamedTuple):
    """What ``stat`` says about a file's content, and nothing else (atime excluded)."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int


def file_id(path: str) -> FileId | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # ValueError: a NUL in the name
        return None
    return FileId(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def racy(fid: FileId, now: float | None = None) -> bool:
    """Changed so recently that a further change could leave ``fid`` as it is.

    A write sets mtime and ctime to the kernel's coarse clock (``current_time()``: one jiffy, at most
    10 ms, on file systems with nanosecond timestamps; whole seconds on others, two on FAT). mtime can be
    set back by anyone (``touch -d``, ``tar``, ``cp -p``), ctime cannot: a file rewritten and re-dated
    keeps its identity only while its ctime tick lasts. So: mtime within :data:`RACY_SECONDS` (as git's
    racy-index rule), or ctime within its tick (:data:`CTIME_TICK_SECONDS`, or RACY_SECONDS where the
    file system keeps whole seconds).
    """
    now = time.time() if now is None else now
    ctime_window = RACY_SECONDS if fid.ctime_ns % 1_000_000_000 == 0 else min(RACY_SECONDS, CTIME_TICK_SECONDS)
    return now - fid.mtime_ns / 1e9 < RACY_SECONDS or now - fid.ctime_ns / 1e9 < ctime_window


def content_digest(path: str) -> bytes | None:
    """SHA-256 of the file's bytes, or None when it cannot be read (or is not a regular file).

    SHA-256 rather than BLAKE2b: with the SHA extensions of current x86 and arm64 CPUs, OpenSSL's
    is 2-3 times faster here (420 against 180 MB/s on this loaded machine), and a moved tree is hashed whole."""
    h = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except (OSError, ValueError):
        return None
    try:
        if not _regular(fd):
            return None
        while chunk := os.read(fd, _HASH_CHUNK):
            h.update(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return h.digest()


def _regular(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode)


def identity_and_digest(path: str) -> tuple[FileId | None, bytes | None]:
    """The file's identity and digest, the identity only when it held while the bytes were read."""
    before = file_id(path)
    digest = content_digest(path) if before is not None else None
    return (before if digest is not None and file_id(path) == before else None), digest


def _sources(names: Iterable[str] | None) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    if names is None:
        paths = []
        for top, dirs, files in os.walk(_HERE):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            paths += [os.path.join(top, n) for n in sorted(files) if n.endswith((".py", ".json"))]
    else:
        paths = [os.path.join(_HERE, n) for n in names]
    for path in paths:
        h.update(os.path.relpath(path, _HERE).encode() + b"\0")
        with open(path, "rb") as f:
            h.update(f.read())
    return h.digest()


#: The sources a parsed record depends on: any change retires every cached record.
PARSER_SOURCES = ("records.py", "errors.py", "files/opener.py", "files/bounded.py", "elf/image.py",
                  "parse/ksymtab.py", "parse/modinfo.py", "parse/signature.py", "parse/module.py",
                  "modversions/basic.py", "modversions/extended.py", "modversions/varlen.py", "modversions/hashed.py",
                  "parse/accel.py", "cache/codec.py")


@cache
def parser_fingerprint() -> str:
    """The parser sources', and the compiled parser's bytes when it is the one that runs (parse/accel.py):
    a rebuilt extension retires every record it made, and the two paths never share records."""
    from ..parse import accel

    h = hashlib.blake2b(_sources(PARSER_SOURCES), digest_size=16)
    built = getattr(accel.ext, "__file__", None)
    if built is not None:
        with open(built, "rb") as f:
            h.update(b"compiled\0" + f.read())
    return h.hexdigest()[:16]


@cache
def package_fingerprint() -> bytes:
    """A hash of every source and data file of the package: a report depends on all of it."""
    return _sources(None)


def records_version() -> str:
    """Records written under another value (release, parser source, codec) are never read."""
    from .codec import CODEC

    return f"{CODEC}:{__version__}:{parser_fingerprint()}"


def verdict_prefix() -> str:
    """What every ``validate`` verdict row's version starts with (the target's digest follows): a verdict
    depends on all of validate.py and what it calls (the parser, the kmod model), so on the whole package."""
    from .codec import CODEC

    return f"verdict:{CODEC}:{__version__}:{package_fingerprint().hex()[:16]}:"


def input_key(parts: Iterable[object], files: Iterable[str]) -> str | None:
    """A digest of the package's code, ``parts`` (by ``repr``) and each of ``files``' identity.

    None, meaning "do not memoize", when a file is missing or was modified in
    the last two seconds (its identity could still change without showing it).
    """
    h = hashlib.blake2b(package_fingerprint(), digest_size=20)
    for part in parts:
        h.update(repr(part).encode("utf-8", "surrogateescape") + b"\0")
    now = time.time()
    for path in files:
        fid = file_id(path)
        if fid is None or racy(fid, now):
            return None
        h.update(os.fsencode(os.path.abspath(path)) + b"\0" + repr(tuple(fid)).encode())
    return h.hexdigest()
