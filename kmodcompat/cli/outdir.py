"""Writing results into an output directory without being redirected by links someone else planted.

``report --out DIR`` and ``simulate --out DIR`` write files into a directory the
user names, often in a shared place (``/tmp``, a CI workspace). Two rules:

* **The directory**: each component of DIR is opened with ``O_NOFOLLOW`` from the
  one before (missing ones are created, as ``mkdir -p``). A component that is a
  symbolic link is followed only when the link is owned by the user, by root, or
  by the owner of the directory holding it: the rule of the kernel's
  ``fs.protected_symlinks`` for sticky directories (fs/namei.c
  ``may_follow_link()``). A link owned by anyone else, such as
  ``/tmp/reports -> /home/you/.ssh`` made by another user, is refused, and so is
  every link its target leads through. Links of your own (``reports ->
  /data/reports``) work as before.
* **The files**: each is written to a new temporary file in that directory
  (``O_CREAT | O_EXCL | O_NOFOLLOW``) and renamed over the name; an existing
  ``report.html`` that is a symbolic link is replaced, never written through.
  Below DIR (``simulate`` keeps the tree's subdirectories) no symbolic link is
  followed at all: kmodcompat creates those directories itself.

Everything goes through descriptors of the directories opened this way, so a
component swapped for a link after the check cannot redirect the writes.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat

__all__ = ["OutputDirectory", "safe_component"]

#: Symbolic links followed while resolving one output path (the kernel's MAXSYMLINKS).
_MAX_LINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def safe_component(name: str) -> str:
    """``name`` (a kernel release) as one path component inside another directory.

    ``/`` and NUL cannot be part of a file name, ``.`` and ``..`` name the directory
    itself and its parent, control characters make a name no one can type: each
    becomes ``_``. ``reports/<kver>`` then stays inside ``reports/``.
    """
    out = "".join("_" if ch in "/\0" or not ch.isprintable() else ch for ch in name)
    if out in ("", ".", ".."):
        out = "_" * max(len(out), 1)
    return out


class OutputDirectory:
    """An output directory, opened (and created) as the module docstring says; a context manager.

    Raises OSError with a one-line ``strerror`` when it cannot be opened, created or
    trusted.
    """

    def __init__(self, path: str):
        self.path = path
        self.fd = _open_directory(path)

    def __enter__(self) -> OutputDirectory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def write(self, relpath: str, data: bytes | str) -> None:
        """``data`` as ``relpath`` (may hold '/': subdirectories are made, never followed if links)."""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        *dirs, name = [c for c in relpath.split("/") if c not in ("", ".")]
        if ".." in dirs or name == "..":
            raise OSError(errno.EINVAL, f"{relpath}: '..' in an output path")
        fd = self.fd
        opened = []
        try:
            for d in dirs:
                fd = _subdirectory(fd, d, relpath)
                opened.append(fd)
            _replace(fd, name, data)
        finally:
            for f in opened:
                os.close(f)


def _subdirectory(parent: int, name: str, relpath: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
    except FileNotFoundError:
        try:
            os.mkdir(name, 0o777, dir_fd=parent)
        except FileExistsError:
            pass  # made meanwhile: opened below like any other
        return os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(parent, name):
            raise OSError(errno.ELOOP, f"{relpath}: {name} is a symbolic link inside the output directory: "
                                       "refusing to follow it") from None
        raise


def _replace(dirfd: int, name: str, data: bytes) -> None:
    """Write a temporary file next to ``name``, then rename it over ``name``."""
    tmp = f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=dirfd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dirfd)
        except OSError:
            pass
        raise


def _is_link(dirfd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=dirfd).st_mode)
    except OSError:
        return False


def _open_directory(path: str) -> int:
    """Resolve ``path`` one component at a time (creating missing ones), links checked as described."""
    parts = path.split("/")
    fd = os.open("/" if path.startswith("/") else ".", _DIR_FLAGS)
    links = steps = 0
    todo = [p for p in reversed(parts) if p not in ("", ".")]  # a stack: the next component last
    try:
        while todo:
            steps += 1
            if steps > 4 * (len(parts) + _MAX_LINKS) + 64:  # a directory made and removed under us, again and again
                raise OSError(errno.EAGAIN, "the output path keeps changing while it is opened")
            name = todo.pop()
            try:
                nxt = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                try:
                    os.mkdir(name, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
                todo.append(name)  # open it (or the link someone made meanwhile) through the checks
                continue
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.ENOTDIR) or not _is_link(fd, name):
                    raise
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP)) from None
                target = _trusted_link(fd, name)
                if target.startswith("/"):
                    os.close(fd)
                    fd = os.open("/", _DIR_FLAGS)
                todo += [p for p in reversed(target.split("/")) if p not in ("", ".")]
                continue
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def _trusted_link(dirfd: int, name: str) -> str:
    """The target of link ``name`` in ``dirfd``, if its owner is one whose links we follow."""
    link = os.lstat(name, dir_fd=dirfd)
    me = os.geteuid()
    if link.st_uid not in (me, 0) and link.st_uid != os.fstat(dirfd).st_uid:
        raise OSError(errno.EPERM, f"{name} is a symbolic link owned by uid {link.st_uid} (not you, root or the "
                                   "owner of its directory): refusing to follow it")
    return os.readlink(name, dir_fd=dirfd)
