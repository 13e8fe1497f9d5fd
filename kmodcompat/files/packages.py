"""Kernel packages as input: ``.deb``, ``.rpm`` and ``.tar*`` of a root, combined into one root.

Distributions split a kernel over several packages (Debian: ``linux-image-KVER``, a meta package, over
``linux-modules-KVER``, ``linux-base-KVER`` with ``modules.order``/``modules.builtin``, ``linux-binary-KVER``;
Fedora/RHEL: ``kernel`` over ``kernel-core``, ``kernel-modules``, ``kernel-modules-extra``). :func:`unpack`
extracts any number of them into one temporary root, as installing them together would, and remembers
which package each file came from, so that what kmodcompat prints names packages, not the temporary
directory (:meth:`PackageSet.display`).

Every package is hostile input, extracted by :class:`_Root` alone (never by ``tarfile.extract`` or an
external tool writing to disk):

* names are normalised inside the root: an absolute name is taken relative to the root (as dpkg and rpm
  install it), a ``..`` component refuses the member; nothing is written through a symbolic link (every
  directory on the way is ``lstat()``ed and must be a real directory) and files are created with
  ``O_EXCL | O_NOFOLLOW``;
* a symbolic link is kept only when its target, taken lexically from where the link is, stays in the root;
  it is then written as an absolute link into the root (``/usr/src/...`` of the package becomes
  ``ROOT/usr/src/...``), so resolving it never climbs out whatever other links lie on the way;
* hard links only to a regular file already extracted; devices, FIFOs and sockets are not created;
  set-id bits and write permission for others are dropped;
* sizes are bounded: :data:`MAX_FILE` per file, :data:`MAX_TOTAL` for a whole set, :data:`MAX_ENTRIES`
  members, and the decompressed stream itself (a bomb stops at the cap).

Each member left out is named with its reason (:attr:`PackageSet.notes`), never dropped silently.

Formats: ``.deb`` is an ar(5) archive holding ``control.tar*`` and ``data.tar*`` (deb(5); gzip, xz, zstd,
bzip2 or none). An ``.rpm``'s header is read with the ``rpmfile`` library (name, requirements, payload
compressor); its payload is a cpio "newc" archive (cpio(5), "New ASCII Format"; rpm's own writer:
``lib/cpio.c`` rpmcpioHeaderWrite()) in gzip, xz or zstd, read here as a stream.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import io
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zlib
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_ENTRIES", "MAX_FILE", "MAX_TOTAL", "Package", "PackageError", "PackageSet", "is_package",
           "is_package_name", "unpack"]

#: Largest real sizes seen: a linux-modules .deb of Debian sid amd64 unpacks to ~120 MB (its modules
#: xz-compressed), a Fedora kernel-modules RPM to ~60 MB, the biggest module ~20 MB, ~6,000 files.
MAX_FILE = 1 << 30
MAX_TOTAL = 8 << 30
MAX_ENTRIES = 500_000

_DEB_MAGIC = b"!<arch>\ndebian-binary"
_RPM_MAGIC = b"\xed\xab\xee\xdb"
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.zst", ".tar.bz2", ".tbz2")
_CHUNK = 1 << 20


try:
    from zstandard import ZstdError as _ZstdError
except ImportError:  # pragma: no cover - zstandard is a dependency of the module reader too
    class _ZstdError(Exception):  # type: ignore[no-redef]
        pass

#: What a corrupt archive or stream raises from the standard library and zstandard.
_STREAM_ERRORS = (OSError, EOFError, ValueError, tarfile.TarError, lzma.LZMAError, zlib.error, _ZstdError)


class PackageError(Exception):
    """A package that cannot be used; ``str()`` is one line, ``<file>: <reason>``."""


@dataclass(frozen=True)
class Package:
    path: str  # the file as named
    name: str  # the package's name (Package: of a .deb, Name of an .rpm; a tar's file name)
    kind: str  # "deb" | "rpm" | "tar"
    depends: tuple[str, ...]  # names of the packages it depends on (first alternative of each)
    files: int  # regular files it put in the root


@dataclass
class PackageSet:
    """Packages unpacked into one root."""

    root: str
    packages: tuple[Package, ...]
    owners: dict[str, int]  # path in the root ("usr/lib/...") -> index in packages of the last one writing it
    notes: tuple[str, ...]  # members left out or replaced, one line each

    @property
    def label(self) -> str:
        return " + ".join(p.name for p in self.packages)

    def display(self, text: str) -> str:
        """``text`` with each path in the temporary root written ``PACKAGE:/path`` (the package holding it;
        the whole set's label for a path no single package holds)."""
        if self.root not in text:
            return text

        def repl(m: re.Match) -> str:
            rel = m.group(1).lstrip("/")
            owner = self.owners.get(rel)
            who = self.packages[owner].name if owner is not None else self.label
            return f"{who}:/{rel}"

        return re.sub(re.escape(self.root) + r"(/[^\s'\"]*)?", repl, text)

    def missing_hint(self, name: str) -> str:
        """What to say when the set lacks ``name`` (modules.order...): the dependencies not given, if any."""
        given = {p.name for p in self.packages}
        deps = [d for p in self.packages for d in p.depends if d not in given and not d.startswith(
            ("kmod", "dracut", "initramfs", "linux-initramfs", "gcc", "linux-kbuild", "coreutils"))]
        deps = list(dict.fromkeys(deps))
        return f"; it may be in {', '.join(deps)} (a dependency not given)" if deps else ""

    def no_modules_message(self) -> str:
        """Why there is no module directory in the set, naming the packages that hold the modules."""
        given = {p.name for p in self.packages}
        hints = []
        for p in self.packages:
            deps = [d for d in p.depends if d not in given]
            pick = [d for d in deps if "modules" in d] or [d for d in deps if d.startswith(("linux-image", "kernel"))]
            if pick:
                hints.append(f"{p.name} is a meta package: its modules are in {' or '.join(pick)}")
        why = "; ".join(hints) if hints else "none of these packages holds [usr/]lib/modules/KVER"
        return f"{self.label}: no modules found ({why})"


def is_package_name(path: str) -> bool:
    """Named like a package (.deb, .rpm, .tar...): such an operand is never a kernel release."""
    return path.endswith((".deb", ".rpm", ".udeb") + _TAR_SUFFIXES)


def is_package(path: str) -> bool:
    """A regular file that is a package: by its magic (.deb, .rpm) or its name (.tar*)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as f:
            head = f.read(len(_DEB_MAGIC))
    except OSError:
        return is_package_name(path)  # unreadable: unpack() says why
    return head.startswith((_DEB_MAGIC, _RPM_MAGIC)) or is_package_name(path)


def unpack(paths: list[str], stack: ExitStack) -> PackageSet:
    """Extract ``paths`` in order into one temporary root (removed when ``stack`` closes); a file a later
    package also holds is the later one's. Raises :class:`PackageError`."""
    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="kmodcompat-packages-"))
    root = _Root(os.path.join(tmp, "root"))
    pkgs = []
    for index, path in enumerate(paths):
        root.begin(index, os.path.basename(path))
        try:
            with open(path, "rb") as f:
                head = f.read(len(_DEB_MAGIC))
                f.seek(0)
                if head.startswith(_DEB_MAGIC):
                    name, depends = _deb(f, root)
                    kind = "deb"
                elif head.startswith(_RPM_MAGIC):
                    name, depends = _rpm(path, f, root)
                    kind = "rpm"
                elif path.endswith((".deb", ".udeb", ".rpm")):
                    raise PackageError(f"not {'an RPM' if path.endswith('.rpm') else 'a Debian'} package "
                                       "(bad magic)")
                else:
                    _tar(_decompressed(f, head, path), root)
                    name, depends, kind = os.path.basename(path), (), "tar"
        except PackageError as e:
            raise PackageError(f"{path}: {e}") from None
        except tarfile.ReadError as e:
            raise PackageError(f"{path}: not a tar archive ({e})") from None
        except _STREAM_ERRORS as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
            raise PackageError(f"{path}: {reason}") from None
        pkgs.append(Package(path, name or os.path.basename(path), kind, depends, root.files_of(index)))
        root.rename(index, pkgs[-1].name)
    return PackageSet(root.path, tuple(pkgs), root.owners, tuple(root.notes))


# --- .deb -------------------------------------------------------------------------------------

def _ar_members(f):
    """(name, size) of each ar(5) member, ``f`` left at its data (common format: 60-byte headers)."""
    if f.read(8) != b"!<arch>\n":
        raise PackageError("not an ar archive")
    while True:
        head = f.read(60)
        if not head:
            return
        if len(head) != 60 or head[58:60] != b"`\n":
            raise PackageError("truncated or corrupt ar member header")
        name = head[:16].rstrip(b" ").rstrip(b"/").decode("ascii", "replace")
        try:
            size = int(head[48:58])
        except ValueError:
            raise PackageError("corrupt ar member size") from None
        start = f.tell()
        yield name, size
        f.seek(start + size + (size & 1))


def _deb(f, root: _Root) -> tuple[str, tuple[str, ...]]:
    control = None
    data = False
    for name, size in _ar_members(f):
        if name.startswith("control.tar"):
            control = _control(_decompressed(_Slice(f, size), None, name))
        elif name.startswith("data.tar"):
            _tar(_decompressed(_Slice(f, size), None, name), root)
            data = True
    if not data:
        raise PackageError("no data.tar member: not a binary package")
    fields = control or {}
    depends = []
    for rel in ("Pre-Depends", "Depends"):
        for dep in fields.get(rel, "").split(","):
            first = dep.split("|")[0].strip()
            if first:
                depends.append(re.split(r"[\s(:]", first, maxsplit=1)[0])
    return fields.get("Package", ""), tuple(depends)


def _control(stream) -> dict[str, str]:
    """The fields of the ``control`` file (deb-control(5)), continuation lines joined."""
    with tarfile.open(fileobj=stream, mode="r|") as t:
        for m in t:
            if m.isreg() and m.name.lstrip("./") == "control" and m.size <= 1 << 20:
                member = t.extractfile(m)
                if member is None:  # isreg() above: tarfile gives a reader for every regular member
                    continue
                text = member.read().decode("utf-8", "replace")
                fields: dict[str, str] = {}
                key = None
                for line in text.splitlines():
                    if line[:1] in (" ", "\t") and key:
                        fields[key] += " " + line.strip()
                    elif ":" in line:
                        key, _, value = line.partition(":")
                        fields[key] = value.strip()
                return fields
    return {}


# --- .rpm -------------------------------------------------------------------------------------

def _rpm(path: str, f, root: _Root) -> tuple[str, tuple[str, ...]]:
    try:
        import rpmfile
    except ImportError:
        raise PackageError("reading RPMs needs the rpmfile module (pip install 'kmodcompat[rpm]')") from None
    try:
        with rpmfile.open(fileobj=f) as r:
            headers = r.headers
            offset = r.data_offset
    except Exception as e:  # rpmfile raises bare exceptions for corrupt headers
        raise PackageError(f"corrupt RPM header: {e}") from None
    comp = headers.get("archive_compression", b"gzip") or b"gzip"
    fmt = headers.get("archive_format", b"cpio") or b"cpio"
    if fmt != b"cpio":
        raise PackageError(f"payload format {fmt.decode(errors='replace')!r} not supported")
    f.seek(offset)
    streams = {b"gzip": "gzip", b"xz": "xz", b"lzma": "xz", b"zstd": "zstd", b"bzip2": "bzip2"}
    if comp not in streams:
        raise PackageError(f"payload compressor {comp.decode(errors='replace')!r} not supported")
    _cpio(_open_stream(_Slice(f, None), streams[comp]), root)
    name = headers.get("name", b"")
    requires = headers.get("requirename", [])
    if isinstance(requires, bytes):
        requires = [requires]
    deps = tuple(r.decode("utf-8", "replace") for r in requires
                 if not r.startswith((b"rpmlib(", b"/")) and b"(" not in r)
    return (name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)), deps


def _cpio(stream, root: _Root) -> None:
    """A cpio "newc" stream (magic 070701, or 070702 with checksums): 110-byte ASCII headers, name and data
    each padded to 4 bytes, ended by ``TRAILER!!!``. Hard links (same inode, nlink > 1) carry the data on
    their last entry, as rpm writes them."""
    pending: dict[int, list[str]] = {}
    while True:
        head = _read_exact(stream, 110)
        if head[:6] not in (b"070701", b"070702"):
            raise PackageError("payload is not a cpio newc archive")
        try:
            ino, mode, _uid, _gid, nlink, _mtime, size, _a, _b, _c, _d, namesize, _chk = (
                int(head[6 + 8 * i: 14 + 8 * i], 16) for i in range(13))
        except ValueError:
            raise PackageError("corrupt cpio header") from None
        if namesize > 4096 + 1:
            raise PackageError("cpio member name too long")
        name = _read_exact(stream, namesize)[:-1].decode("utf-8", "surrogateescape")
        _skip(stream, -(110 + namesize) % 4)
        if name == "TRAILER!!!":
            break
        if stat.S_ISREG(mode) and nlink > 1 and size == 0:
            pending.setdefault(ino, []).append(name)
        elif stat.S_ISREG(mode):
            root.file(name, mode, stream, size)
            for other in pending.pop(ino, []):
                root.hardlink(other, name)
        elif stat.S_ISLNK(mode):
            if size > 4096:
                raise PackageError(f"{name}: link target too long")
            root.symlink(name, _read_exact(stream, size).decode("utf-8", "surrogateescape"))
        elif stat.S_ISDIR(mode):
            root.directory(name)
        else:
            root.skip(name, f"not extracted ({_type(mode)})")
            _skip(stream, size)
        _skip(stream, -size % 4)
    for names in pending.values():
        for name in names:
            root.skip(name, "hard link whose data never came")


# --- tar --------------------------------------------------------------------------------------

def _tar(stream, root: _Root) -> None:
    with tarfile.open(fileobj=stream, mode="r|") as t:
        for m in t:
            if m.isreg():
                root.file(m.name, m.mode | stat.S_IFREG, t.extractfile(m), m.size)
            elif m.isdir():
                root.directory(m.name)
            elif m.issym():
                root.symlink(m.name, m.linkname)
            elif m.islnk():
                root.hardlink(m.name, m.linkname)
            else:
                root.skip(m.name, "not extracted (device, FIFO or other special file)")


# --- streams ----------------------------------------------------------------------------------

class _Slice(io.RawIOBase):
    """``size`` bytes (None: to the end) of ``f`` from its current position, read-only, never past them."""

    def __init__(self, f, size: int | None):
        self._f, self._left = f, size

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = len(b) if self._left is None else min(len(b), self._left)
        data = self._f.read(n)
        b[:len(data)] = data
        if self._left is not None:
            self._left -= len(data)
        return len(data)


class _Capped(io.RawIOBase):
    """A decompressed stream that refuses to give more than :data:`MAX_TOTAL` plus headers' room."""

    def __init__(self, raw, limit: int):
        self._raw, self._left = raw, limit

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._raw.read(min(len(b), _CHUNK))
        if len(data) > self._left:
            raise PackageError(f"decompresses past the {MAX_TOTAL >> 30} GiB limit")
        self._left -= len(data)
        b[:len(data)] = data
        return len(data)


def _decompressed(f, head: bytes | None, name: str):
    """``f`` decompressed by its magic (or, for ar members, by the member name's suffix)."""
    if head is None:
        head = f.read(6)
        f = io.BufferedReader(_Prefixed(head, f))
    if head.startswith(b"\x1f\x8b"):
        kind = "gzip"
    elif head.startswith(b"\xfd7zXZ"):
        kind = "xz"
    elif head.startswith(b"\x28\xb5\x2f\xfd"):
        kind = "zstd"
    elif head.startswith(b"BZh"):
        kind = "bzip2"
    else:
        kind = None
    return _open_stream(f, kind)


class _Prefixed(io.RawIOBase):
    """Bytes already read, then the rest of ``f``."""

    def __init__(self, head: bytes, f):
        self._head, self._f = head, f

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._f.read(len(b))
        b[:len(data)] = data
        return len(data)


def _open_stream(f, kind: str | None):
    raw: Any
    if kind == "gzip":
        raw = gzip.GzipFile(fileobj=f)
    elif kind == "xz":
        raw = lzma.LZMAFile(f)
    elif kind == "zstd":
        import zstandard

        raw = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
    elif kind == "bzip2":
        raw = bz2.BZ2File(f)
    else:
        raw = f
    return io.BufferedReader(_Capped(raw, MAX_TOTAL + (256 << 20)), _CHUNK)


def _read_exact(stream, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise PackageError("payload is truncated")
    return data


def _skip(stream, n: int) -> None:
    while n > 0:
        part = stream.read(min(n, _CHUNK))
        if not part:
            raise PackageError("payload is truncated")
        n -= len(part)


def _type(mode: int) -> str:
    from .bounded import file_type

    return file_type(mode)


# --- writing the root -------------------------------------------------------------------------

@dataclass
class _Root:
    """The one place members are written (see the module docstring for the rules)."""

    path: str
    owners: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    total: int = 0
    entries: int = 0
    _index: int = 0
    _who: str = ""
    _names: dict[int, str] = field(default_factory=dict)

    def __post_init__(self):
        os.mkdir(self.path, 0o755)

    def begin(self, index: int, who: str) -> None:
        self._index, self._who = index, who
        self._names[index] = who

    def rename(self, index: int, name: str) -> None:
        """The package's own name, known after its control data, in the notes written meanwhile."""
        old = self._names[index]
        self.notes = [n.replace(f"{old}: ", f"{name}: ", 1) if n.startswith(f"{old}: ") else n for n in self.notes]
        self._names[index] = name

    def files_of(self, index: int) -> int:
        return sum(1 for i in self.owners.values() if i == index)

    def skip(self, name: str, why: str) -> None:
        self.notes.append(f"{self._who}: {name}: {why}")

    def _rel(self, name: str) -> str | None:
        """The normalised path in the root, or None (noted) for a name with ``..``."""
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            self.skip(name, "not extracted (a '..' component)")
            return None
        self.entries += 1
        if self.entries > MAX_ENTRIES:
            raise PackageError(f"more than {MAX_ENTRIES} members")
        return "/".join(parts) if parts else None

    def _parent(self, rel: str, name: str) -> int | None:
        """An O_DIRECTORY fd of the parent of ``rel``, each directory on the way created or lstat()ed as one;
        None (noted) when a component is not a real directory."""
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for comp in rel.split("/")[:-1]:
                try:
                    st = os.lstat(comp, dir_fd=fd)
                except FileNotFoundError:
                    os.mkdir(comp, 0o755, dir_fd=fd)
                    st = os.lstat(comp, dir_fd=fd)
                if not stat.S_ISDIR(st.st_mode):
                    self.skip(name, f"not extracted ({comp} on its way is a {_type(st.st_mode)})")
                    os.close(fd)
                    return None
                nfd = os.open(comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _replace(self, fd: int, base: str, rel: str, name: str) -> bool:
        """Make room for a new entry ``base``: an earlier file or link is replaced (noted), a directory kept."""
        try:
            st = os.lstat(base, dir_fd=fd)
        except FileNotFoundError:
            return True
        if stat.S_ISDIR(st.st_mode):
            self.skip(name, "not extracted (a directory of that name is there)")
            return False
        prev = self.owners.get(rel)
        if prev is not None and prev != self._index:
            self.notes.append(f"{self._who}: {name}: also in {self._names[prev]} (this one kept)")
        os.unlink(base, dir_fd=fd)
        return True

    @contextmanager
    def _at(self, rel: str, name: str):
        """(fd of ``rel``'s parent, ``rel``'s last component), the fd closed after; (None, base) when the parent
        is not a real directory (noted by _parent)."""
        fd = self._parent(rel, name)
        base = rel.rsplit("/", 1)[-1]
        try:
            yield fd, base
        finally:
            if fd is not None:
                os.close(fd)

    def directory(self, name: str) -> None:
        rel = self._rel(name)
        if rel is None:
            return
        with self._at(rel, name) as (fd, base):
            if fd is None:
                return
            try:
                st = os.lstat(base, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(base, 0o755, dir_fd=fd)
                return
            if not stat.S_ISDIR(st.st_mode):
                self.skip(name, f"directory not extracted (a {_type(st.st_mode)} of that name is there)")

    def file(self, name: str, mode: int, src, size: int) -> None:
        rel = self._rel(name)
        if size > MAX_FILE:
            raise PackageError(f"{name}: larger than the {MAX_FILE >> 30} GiB limit for one file")
        self.total += size
        if self.total > MAX_TOTAL:
            raise PackageError(f"more than {MAX_TOTAL >> 30} GiB of files")
        fd = self._parent(rel, name) if rel is not None else None
        if rel is None or fd is None:
            _skip(src, size)
            return
        try:
            base = rel.rsplit("/", 1)[-1]
            if not self._replace(fd, base, rel, name):
                _skip(src, size)
                return
            out = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                          (mode & 0o755) | 0o600, dir_fd=fd)
        finally:
            os.close(fd)
        with open(out, "wb") as w:
            left = size
            while left:
                part = src.read(min(left, _CHUNK))
                if not part:
                    raise PackageError(f"{name}: truncated")
                w.write(part)
                left -= len(part)
        self.owners[rel] = self._index

    def symlink(self, name: str, target: str) -> None:
        rel = self._rel(name)
        if rel is None:
            return
        start = [] if target.startswith("/") else rel.split("/")[:-1]
        parts: list[str] = []
        for comp in start + target.split("/"):
            if comp in ("", "."):
                continue
            if comp == "..":
                if not parts:
                    self.skip(name, f"link not extracted (its target {target} is outside the root)")
                    return
                parts.pop()
            else:
                parts.append(comp)
        with self._at(rel, name) as (fd, base):
            if fd is not None and self._replace(fd, base, rel, name):
                os.symlink(os.path.join(self.path, *parts), base, dir_fd=fd)
                self.owners[rel] = self._index

    def hardlink(self, name: str, target: str) -> None:
        rel, trel = self._rel(name), self._rel(target)
        if rel is None or trel is None:
            return
        if self.owners.get(trel) is None or not os.path.isfile(os.path.join(self.path, trel)) \
                or os.path.islink(os.path.join(self.path, trel)):
            self.skip(name, f"hard link not extracted ({target} is not a file extracted before it)")
            return
        with self._at(rel, name) as (fd, base):
            if fd is not None and self._replace(fd, base, rel, name):
                try:
                    os.link(os.path.join(self.path, trel), base, dst_dir_fd=fd, follow_symlinks=False)
                except OSError as e:
                    if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                        raise
                    shutil.copyfile(os.path.join(self.path, trel), os.path.join(self.path, rel),
                                    follow_symlinks=False)
                self.owners[rel] = self._index
