"""A simulated tree: every module of a tree in another modversions format, the tree around it kept.

What ``kmodcompat simulate TREE --out DIR`` writes (cli/simulate.py says it to the
user), so that ``report DIR`` and ``diff TREE DIR`` show the format's effect and
nothing else:

* **the modules**, each at its own path below the module directory, written to
  ``DIR/lib/modules/KVER`` (``DIR/usr/lib/modules/KVER`` when the tree was only
  there), whichever way the tree was named: DIR is a root, so the release is
  the original's. Each keeps its compression, recompressed as the kernel's
  ``make modules_install`` does (files/compress.py). A module that already holds
  exactly the version tables of the format (a basic tree simulated as basic) is
  copied byte for byte, signature included (:func:`~.simulate.simulate_or_same`);
  every other is rewritten, and a signature on it is dropped: it signed bytes
  that changed;
* **the files depmod reads beside the modules**: ``modules.order``,
  ``modules.builtin``, ``modules.builtin.modinfo`` (tools/depmod.c
  ``depmod_modules_sort()``, ``depmod_load_modules_builtin()``). depmod's own
  outputs (modules.dep, the ``.bin`` indexes) are not copied: ``depmod -b DIR
  KVER`` writes them;
* **the depmod.d configuration** the tree was read with: the files of each
  depmod.d directory under the root named (any kmod release's,
  kmod/profile.py); none for a module directory named directly, which is read
  without one;
* **the kernel's files** the tree's readers look for beside it (files/kernel.py,
  files/kernel_image.py): Module.symvers, System.map and the boot image, at the
  same place relative to the root, so ``report DIR`` finds the same kernel
  exports;
* :data:`MARKER`, ``DIR/kmodcompat-simulation.json``: the format, the source,
  and the modules whose signature was dropped, so the report of DIR can say
  so (report/__init__.py).

Every file is read through the bounded readers (files/bounded.py) and written
through :class:`~.cli.outdir.OutputDirectory`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from .errors import ModuleReadError
from .files.bounded import (DEPMOD_CONFIG, KERNEL_IMAGE, MODULE_SYMVERS, MODULES_BUILTIN, MODULES_BUILTIN_MODINFO,
                            MODULES_ORDER, SYSTEM_MAP, InputFileError, InputKind, read_input)
from .files.compress import compress
from .files.kernel import base_of, kernel_files
from .files.kernel_image import find_image
from .files.opener import DEFAULT_MAX_SIZE, read_module_bytes
from .kmod.profile import KMOD_RELEASES
from .records import ModuleRecord
from .simulate import BuildError, LayoutError, simulate_or_same

__all__ = ["MARKER", "Simulated", "TreeFile", "marker", "marker_path", "module_directory", "read_marker",
           "simulate_files", "tree_files"]

#: The record a simulated tree keeps of how it was made, at its root.
MARKER = "kmodcompat-simulation.json"
#: Its size cap: a path per module of the largest tree (6,000 modules) is some 400 KB.
_MARKER_KIND = InputKind("simulation record", 8 << 20)
#: A module file copied unchanged: the opener's size cap (files/opener.py DEFAULT_MAX_SIZE).
_MODULE_FILE = InputKind("module file", DEFAULT_MAX_SIZE)
#: The files of a module directory depmod reads besides the modules.
MODULE_DIRECTORY_FILES = (MODULES_ORDER, MODULES_BUILTIN, MODULES_BUILTIN_MODINFO)


class TreeFile(NamedTuple):
    """A file of the tree copied into the output: read from ``source`` (as ``kind``), written as ``dest``."""

    source: str
    dest: str  # relative to the output directory
    kind: InputKind


def module_directory(dirname: str, kver: str) -> str:
    """Where the module directory goes in the output: ``usr/lib/modules/KVER`` when the tree was named there
    (a root without ``lib/modules``), else ``lib/modules/KVER``."""
    from .cli.outdir import safe_component

    top = "usr/lib/modules" if dirname.rstrip("/").endswith(f"/usr/lib/modules/{kver}") else "lib/modules"
    return f"{top}/{safe_component(kver)}"


def tree_files(dirname: str, kver: str, root: str | None, moddir: str) -> list[TreeFile]:
    """The files of the tree at ``dirname`` copied with its modules (see the module docstring), the output's
    module directory being ``moddir``. ``root``: the root the tree was named by ("" the host's /), None for a
    module directory named directly (read without depmod.d)."""
    base = base_of(dirname, kver)

    def dest(path: str) -> str:
        if path.startswith(dirname.rstrip("/") + "/"):
            return moddir + path[len(dirname.rstrip("/")):]
        return os.path.relpath(path, base)

    out = [TreeFile(os.path.join(dirname, k.name), f"{moddir}/{k.name}", k) for k in MODULE_DIRECTORY_FILES
           if os.path.isfile(os.path.join(dirname, k.name))]
    found = kernel_files(dirname, kver)
    for key, kind in (("symvers", MODULE_SYMVERS), ("system_map", SYSTEM_MAP)):
        if key in found:
            out.append(TreeFile(found[key], dest(found[key]), kind))
    image = find_image(base, kver)
    if image is not None:
        out.append(TreeFile(image, dest(image), KERNEL_IMAGE))
    if root is not None:
        top = root.rstrip("/")
        dirs = list(dict.fromkeys(d for k in KMOD_RELEASES.values() for d in k.depmod_config_dirs))
        seen: set[str] = set()
        for d in dirs:  # /lib/depmod.d and /usr/lib/depmod.d are often one directory (lib -> usr/lib)
            path = top + d
            real = os.path.realpath(path)
            if real in seen or not os.path.isdir(path):
                continue
            seen.add(real)
            try:
                names = sorted(os.listdir(path))
            except OSError:
                continue
            out += [TreeFile(os.path.join(path, n), d.lstrip("/") + "/" + n, DEPMOD_CONFIG) for n in names
                    if os.path.isfile(os.path.join(path, n))]
    return out


def read_tree_file(f: TreeFile) -> bytes:
    """The bytes of ``f``, bounded by its kind; raises InputFileError."""
    return read_input(f.source, f.kind)


class Simulated(NamedTuple):
    """One module simulated: the bytes to write (None: the file as it is), or why it could not be."""

    data: bytes | None
    signature_dropped: bool
    error: str | None = None


@dataclass(frozen=True)
class _Job:
    records: Mapping[str, ModuleRecord]
    fmt: str
    extra: Mapping[str, int] | None


_JOB: _Job | None = None  # what forked workers inherit: the records, copy-on-write


def _simulate_one(path: str) -> Simulated | ModuleReadError:
    """The worker of :func:`simulate_files` (map_files: returns, never raises)."""
    assert _JOB is not None
    rec = _JOB.records[path]
    try:
        opened = read_module_bytes(path)
        data = simulate_or_same(rec, opened.data, _JOB.fmt, _JOB.extra)
        if data is None:
            return Simulated(None, False)
        signed = rec.signature is not None and rec.signature.kmod_accepts
        return Simulated(compress(data, opened.compression), signed)
    except ModuleReadError as e:
        return e
    except (BuildError, LayoutError) as e:
        return Simulated(None, False, str(e))
    except Exception as e:  # a bug must cost one module, not the tree run (as scan.parse_one)
        return Simulated(None, False, f"internal error: {type(e).__name__}: {e}".splitlines()[0])


#: Modules simulated per pool of workers: the parent holds one batch of results at a time (a batch of bookworm's
#: plain modules is some 25 MB), not the whole tree's (400 MB).
BATCH = 256


def simulate_files(modules: Sequence[tuple[str, ModuleRecord]], fmt: str, extra: Mapping[str, int] | None = None,
                   jobs: int | None = None,
                   progress: Callable[[int, int], None] | None = None) -> Iterator[Simulated | ModuleReadError]:
    """Each module simulated in ``fmt``, in order, with ``jobs`` processes (the compressors are the cost)."""
    from .parse.scan import map_files

    global _JOB
    paths = [p for p, _ in modules]
    _JOB = _Job({p: r for p, r in modules}, fmt, extra)
    try:
        for start in range(0, len(paths), BATCH):
            def step(done: int, _total: int, start: int = start) -> None:
                if progress is not None:
                    progress(start + done, len(paths))

            yield from map_files(_simulate_one, paths[start:start + BATCH], jobs, step)
    finally:
        _JOB = None


def read_unchanged(path: str) -> bytes:
    """A module file as it is (the simulation of a module that needs no rewrite), by the bounded reader of
    every other input; raises InputFileError (an OSError)."""
    return read_input(path, _MODULE_FILE)


def marker(fmt: str, source: str, kver: str, moddir: str, rewritten: int, unchanged: int,
           dropped: Sequence[str]) -> str:
    """The text of :data:`MARKER`: ``dropped`` the modules (relative to the module directory) whose
    signature the simulation dropped."""
    return json.dumps({"kmodcompat_simulation": 1, "format": fmt, "source": source, "kernel_release": kver,
                       "module_directory": moddir, "rewritten": rewritten, "unchanged": unchanged,
                       "signatures_dropped": list(dropped)}, indent=1) + "\n"


def marker_path(dirname: str, kver: str) -> str:
    """Where the simulation record of the tree at ``dirname`` is: at the root the tree is in."""
    return os.path.join(base_of(dirname, kver), MARKER)


def read_marker(dirname: str, kver: str) -> dict | None:
    """What the simulation record beside the tree at ``dirname`` says, checked: None when there is none, or it
    is unreadable, malformed or about another release. ``signatures_dropped`` is the list of the modules it
    names (relative paths), as strings."""
    try:
        doc = json.loads(read_input(marker_path(dirname, kver), _MARKER_KIND))
    except (InputFileError, ValueError):
        return None
    if not (isinstance(doc, dict) and doc.get("kmodcompat_simulation") == 1 and doc.get("kernel_release") == kver
            and isinstance(doc.get("format"), str) and isinstance(doc.get("source"), str)
            and all(isinstance(doc.get(k), int) and not isinstance(doc.get(k), bool) and doc[k] >= 0
                    for k in ("rewritten", "unchanged"))
            and isinstance(doc.get("signatures_dropped"), list)
            and all(isinstance(p, str) for p in doc["signatures_dropped"])):
        return None
    return doc
