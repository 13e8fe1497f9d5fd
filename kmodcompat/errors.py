"""Errors that end the reading of one module (never a whole tree scan)."""

from __future__ import annotations

import errno as _errno
import os


class ModuleReadError(Exception):
    """A module file could not be read or is not a usable ELF image.

    ``str()`` is the one-line message users see: "<path>: <reason>".
    """

    def __init__(self, path: str | os.PathLike[str], reason: str, code: str = "unreadable",
                 errno: int = _errno.EINVAL, detail: str | None = None, compression: str | None = None,
                 transient: bool = False):
        self.path = os.fspath(path)
        self.reason = reason
        self.code = code
        self.errno = errno  # what libkmod would return for the same file
        self.detail = detail  # decoder-specific cause, e.g. "truncated" for a cut xz stream
        self.compression = compression  # set when the file's magic named a compression
        # A failure that depends on time or load (a parse deadline hit, a worker killed), not on
        # the file's bytes: never cached, the next run tries again.
        self.transient = transient
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):
        # Errors travel between processes (scan.parse_many) and into the cache:
        # rebuild them from every field, not from Exception.args.
        return (ModuleReadError, (self.path, self.reason, self.code, self.errno, self.detail, self.compression,
                                  self.transient))

    @property
    def cacheable(self) -> bool:
        """A fact about the file: neither transient nor an internal error (a parser bug, fixed by the next
        version)."""
        return not self.transient and self.code != "internal-error"


class ElfError(ValueError):
    """The bytes are not an ELF image kmod would accept (libkmod-elf.c kmod_elf_new)."""

    def __init__(self, reason: str, code: str = "bad-elf", errno: int = _errno.EINVAL):
        self.reason = reason
        self.code = code
        self.errno = errno  # kmod_elf_new(): ENOEXEC for a bad magic, EINVAL otherwise
        super().__init__(reason)

    def __reduce__(self):
        return (ElfError, (self.reason, self.code, self.errno))
