"""``depmod -A``: whether modules.dep is newer than every module file (tools/depmod.c ``depfile_up_to_date()``).

The same in kmod 30 and 34.2: ``modules.dep``'s mtime (seconds) against each
regular file ending in a module suffix, walking every directory but those named
``build`` or ``source`` (at any depth), following symbolic links (``fstatat()``
without ``AT_SYMLINK_NOFOLLOW``). The first module newer than ``modules.dep``
ends the walk: out of date. Errors on the way are printed and ignored; a module
directory that cannot be opened, or has no modules.dep, is an error depmod
prints before it goes on with the full run.
"""

from __future__ import annotations

import os
import stat

from ..records import PATH_MAX
from .diagnostics import ERROR, Diagnostic, diag


def _walk(path: str, mtime: int, suffixes: tuple[str, ...], diags: list[Diagnostic]) -> bool:
    """``depfile_up_to_date_dir()``: True (1) up to date, False (0) a module is newer."""
    up_to_date = True
    try:
        names = os.listdir(path)  # readdir() order is the file system's; the answer does not depend on it
    except OSError as e:
        diags.append(diag(ERROR, "uptodate-open", f"could not open directory {path}: {e.strerror}"))
        return True
    for name in names:
        if name in ("build", "source"):
            continue
        full = os.path.join(path, name)
        if len(path) + 1 + len(name) + 2 >= PATH_MAX:
            diags.append(diag(ERROR, "uptodate-path", f"path is too long {path}/{name}"))
            continue
        try:
            st = os.stat(full)
        except OSError as e:
            # fstatat(dfd, name): the message names the directory's descriptor, which we do not have
            diags.append(diag(ERROR, "uptodate-stat", f"fstatat({name}): {e.strerror}"))
            continue
        if stat.S_ISDIR(st.st_mode):
            up_to_date = _walk(full, mtime, suffixes, diags)
        elif stat.S_ISREG(st.st_mode):
            if not name.endswith(suffixes):
                continue
            up_to_date = int(st.st_mtime) <= mtime
        else:
            diags.append(diag(ERROR, "uptodate-type", f"unsupported file type {full}: {stat.S_IFMT(st.st_mode):o}"))
            continue
        if not up_to_date:
            break
    return up_to_date


def depfile_up_to_date(dirname: str, suffixes: tuple[str, ...]) -> tuple[bool, list[Diagnostic]]:
    """(up to date?, the errors depmod prints meanwhile). Not up to date also when the check itself fails
    (depmod: "ignore up-to-date errors (< 0)", then the full run)."""
    diags: list[Diagnostic] = []
    try:
        os.scandir(dirname).close()  # opendir(): its errno, whatever it is (ENOENT, ENOTDIR, EACCES, ...)
    except OSError as e:
        return False, [diag(ERROR, "uptodate-open", f"could not open directory {dirname}: {e.strerror}")]
    try:
        mtime = int(os.stat(os.path.join(dirname, "modules.dep")).st_mtime)
    except OSError as e:
        return False, [diag(ERROR, "uptodate-dep", f"could not fstatat({dirname}, modules.dep): {e.strerror}")]
    return _walk(dirname, mtime, suffixes, diags), diags
