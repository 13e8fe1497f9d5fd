"""Reading every input that is not a module file: regular files only, bounded.

A tree's metadata (``modules.order``, ``modules.builtin``,
``modules.builtin.modinfo``, ``modules.dep``), depmod.d files, Module.symvers
and System.map (plain, or gzip-compressed as ``/boot/symvers-KVER.gz``) and the boot image all go
through :func:`read_input`:

* only regular files are read (and ``/dev/null``, as the empty file it is:
  ``depmod -E /dev/null``). The path is stat()ed first, so a FIFO, device or
  socket is refused without being opened; the file is then opened with
  ``O_NONBLOCK | O_NOCTTY`` (opening a FIFO swapped in meanwhile cannot block, a
  terminal does not become ours) and fstat()ed again before the first read.
  Real depmod fopen()s these files and blocks forever on a FIFO, or reads a link
  to ``/dev/zero`` until memory runs out;
* each kind of file has a size cap, far above real sizes (see :data:`KINDS`),
  checked on the bytes read, not on ``st_size`` (a file may grow while read);
* gzip is inflated only when the caller says the file is gzip (``.gz``: Fedora's,
  RHEL's and SUSE's ``/boot/symvers-KVER.gz``, ``/usr/lib/modules/KVER/symvers.gz``),
  in memory, within the same cap: one bounded decompressor call per member, so a
  3 GiB bomb costs the cap and a fraction of a second. Nothing goes to disk.

Errors are :class:`InputFileError`, an OSError whose ``strerror`` is the
one-line reason: the OS's own text for OS errors (what depmod's ``%m`` prints),
kmodcompat's for a refusal ("not a regular file (FIFO)").
"""

from __future__ import annotations

import errno
import os
import stat
import zlib
from typing import NamedTuple

__all__ = ["InputFileError", "InputKind", "KINDS", "file_type", "read_input", "DEPMOD_CONFIG", "MODULES_BUILTIN",
           "KABI_RULES", "KERNEL_IMAGE", "MODULES_BUILTIN_MODINFO", "MODULES_DEP", "MODULES_ORDER", "MODULE_SYMVERS",
           "SYMBOL_LIST", "SYSTEM_MAP"]


class InputKind(NamedTuple):
    """A kind of input file: its name in messages and the most bytes it may hold (after inflation)."""

    name: str
    limit: int


# Largest real sizes seen (Debian bookworm, trixie, sid; amd64, arm64, armmp, ppc64el, s390x):
# modules.order 178 KB, modules.builtin.modinfo 114 KB, Module.symvers 2.1 MB, a full System.map
# (kernel build tree) ~10 MB, depmod.d files a few hundred bytes. Each cap is 15-300 times that.
MODULES_ORDER = InputKind("modules.order", 8 << 20)
MODULES_BUILTIN = InputKind("modules.builtin", 8 << 20)
MODULES_BUILTIN_MODINFO = InputKind("modules.builtin.modinfo", 32 << 20)
MODULES_DEP = InputKind("modules.dep", 32 << 20)
DEPMOD_CONFIG = InputKind("depmod.d file", 1 << 20)
MODULE_SYMVERS = InputKind("Module.symvers", 32 << 20)
SYSTEM_MAP = InputKind("System.map", 64 << 20)
#: A boot image (files/kernel_image.py): Debian's largest, amd64's bzImage, is 12 MB, a plain ppc64el
#: vmlinux 46 MB; a debug vmlinux some hundreds. Its payload is inflated within the same cap.
KERNEL_IMAGE = InputKind("kernel image", 512 << 20)
#: kABI symbol lists and severity rules (files/kabi_lists.py): RHEL 9's kabi_stablelist_x86_64 is
#: ~100 KB, Android's largest abi_gki_aarch64_* list ~250 KB, SUSE's kabi/severities 5 KB.
SYMBOL_LIST = InputKind("kABI symbol list", 16 << 20)
KABI_RULES = InputKind("kABI rules file", 4 << 20)
KINDS = (MODULES_ORDER, MODULES_BUILTIN, MODULES_BUILTIN_MODINFO, MODULES_DEP, DEPMOD_CONFIG, MODULE_SYMVERS,
         SYSTEM_MAP, KERNEL_IMAGE, SYMBOL_LIST, KABI_RULES)

_CHUNK = 1 << 20
_DEV_NULL = os.makedev(1, 3)
_GZIP_MAGIC = b"\x1f\x8b"
#: Concatenated gzip members a file may hold (gzip(1) output has one; each costs a decoder).
MAX_GZIP_MEMBERS = 1024


class InputFileError(OSError):
    """An input file that could not be read: ``errno``, ``strerror`` (the reason), ``filename``."""

    def __init__(self, path: str | os.PathLike[str], err: int, reason: str):
        super().__init__(err, reason, os.fspath(path))

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"

    def __reduce__(self):
        return (InputFileError, (self.filename, self.errno, self.strerror))


_TYPES = ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
          (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"), (stat.S_ISLNK, "symbolic link"),
          (stat.S_ISREG, "regular file"))


def file_type(mode: int) -> str:
    """"FIFO", "character device", ... for an ``st_mode``: what a refusal names."""
    return next((name for test, name in _TYPES if test(mode)), f"file type {stat.S_IFMT(mode):o}")


def _refusal(path: str | os.PathLike[str], mode: int) -> InputFileError:
    if stat.S_ISDIR(mode):
        return InputFileError(path, errno.EISDIR, os.strerror(errno.EISDIR))
    try:
        link = "symbolic link to a " if stat.S_ISLNK(os.lstat(path).st_mode) else ""
    except OSError:
        link = ""
    return InputFileError(path, errno.EINVAL, f"not a regular file ({link}{file_type(mode)})")


def _os_error(path: str | os.PathLike[str], e: OSError) -> InputFileError:
    code = e.errno or errno.EIO
    return InputFileError(path, code, e.strerror or os.strerror(code))


def read_input(path: str | os.PathLike[str], kind: InputKind, *, gzip: bool = False) -> bytes:
    """The bytes of ``path``, a regular file of at most ``kind.limit`` bytes.

    ``gzip``: the file is gzip-compressed (its members back to back, NUL
    padding allowed as gzip(1) and Python's gzip module allow it); what it
    inflates to is returned, at most ``kind.limit`` bytes. Raises
    :class:`InputFileError`.
    """
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == _DEV_NULL:
                return b""  # "-E /dev/null": the one device that is a file (empty, never blocking)
            raise _refusal(path, st.st_mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):  # swapped for something else since the stat()
                raise _refusal(path, st.st_mode)
            data = read_up_to(fd, min(st.st_size, kind.limit) + 1, kind.limit + 1)
        finally:
            os.close(fd)
    except InputFileError:
        raise
    except OSError as e:
        raise _os_error(path, e) from None
    if len(data) > kind.limit:
        raise InputFileError(path, errno.EFBIG, f"larger than the {_size(kind.limit)} limit for a {kind.name}")
    return _gunzip(path, data, kind) if gzip else data


def read_up_to(fd: int, first: int, limit: int) -> bytes:
    """The bytes of ``fd`` up to its end or to ``limit`` bytes; ``first`` bytes asked for first (a regular
    file's size + 1: read(n) allocates n bytes up front), then chunks."""
    parts = []
    size = 0
    want = min(first, limit)
    while want:
        part = os.read(fd, want)
        if not part:
            break
        parts.append(part)
        size += len(part)
        want = min(_CHUNK, limit - size)
    return b"".join(parts)


def _gunzip(path: str | os.PathLike[str], data: bytes, kind: InputKind) -> bytes:
    """gzip(1)'s members back to back (trailing NUL padding allowed), at most ``kind.limit`` bytes out."""
    if not data.startswith(_GZIP_MAGIC):
        raise InputFileError(path, errno.EINVAL, "not a gzip file")
    out: list[bytes] = []
    size = 0
    rest = memoryview(data)
    for _ in range(MAX_GZIP_MEMBERS):
        d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        pending: bytes | memoryview = rest
        while not d.eof:
            # At most a chunk out per call, never past one byte beyond the cap: a bomb stops
            # there, holding the cap and one chunk.
            want = min(_CHUNK, kind.limit + 1 - size)
            try:
                chunk = d.decompress(pending, want)
            except zlib.error as e:
                raise InputFileError(path, errno.EINVAL, f"corrupt gzip stream: {e}") from None
            pending = d.unconsumed_tail
            out.append(chunk)
            size += len(chunk)
            if size > kind.limit:
                raise InputFileError(path, errno.EFBIG, f"gzip stream inflates past the {_size(kind.limit)} "
                                                        f"limit for a {kind.name}")
            if not pending and len(chunk) < want:
                break  # every byte of input taken, every byte of output given: the stream is cut short
        if not d.eof:
            raise InputFileError(path, errno.EINVAL, "gzip stream is truncated")
        rest = memoryview(d.unused_data.lstrip(b"\0"))
        if not rest:
            return b"".join(out)
        if bytes(rest[:2]) != _GZIP_MAGIC:
            raise InputFileError(path, errno.EINVAL, "gzip stream is followed by non-gzip bytes")
    raise InputFileError(path, errno.EINVAL, f"more than {MAX_GZIP_MEMBERS} concatenated gzip members")


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and not n & ((1 << 20) - 1) else f"{n}-byte"
