"""``kmodcompat diff OLD NEW``: what changed between two builds, and who it breaks.

OLD and NEW are both module files, both trees, or both Debian packages:

  kmodcompat diff old/foo.ko new/foo.ko
  kmodcompat diff /lib/modules/6.1.0-56-amd64 /lib/modules/6.12.107+deb13-amd64
  kmodcompat diff -b / 6.1.0-56-amd64 6.12.107+deb13-amd64          (one root, two kernels)
  kmodcompat diff -b ROOT1 -b ROOT2 6.1.0-56-amd64 6.12.107+deb13-amd64
  kmodcompat diff linux-image-6.1.0-56-amd64_*.deb linux-image-6.12.107+deb13-amd64_*.deb

A tree operand may also be a root holding one lib/modules/KVER (an unpacked
image); a .deb is unpacked with dpkg-deb into a temporary directory. Kernel
exports (for the kABI diff) come from --old-symvers/--new-symvers (a
Module.symvers, symvers.gz or a linux-headers .deb), else from where the
report finds them next to each tree.

Exit status (a bitmask, as abidiff's): 0 nothing changed; 4 something
changed (bit 2); 12 = 4|8 something changed and breaks a consumer (bit 3:
an export removed, its CRC changed, made GPL-only or put in a namespace; a
consumer's verdict falling to refuses/unreadable/false mismatch; a module
that became unreadable; a new dependency cycle; a newly unresolved import);
1 an error (unreadable module file, dpkg-deb failure); 2 bad usage.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass

from ..consumers import CONSUMERS
from ..diff import DEFAULT_CONSUMERS, EXIT_ERROR, EXIT_USAGE, diff_modules, diff_trees
from ..errors import ModuleReadError
from ..parse.module import parse_module
from ..report import diff_render
from ..report.diff_json import to_json
from ..parse.scan import stderr_progress
from ..depmod.tree import load_tree


class _Fail(Exception):
    """A one-line message and the exit status to leave with."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Operand:
    kind: str  # "module" | "tree"
    label: str  # what the user named
    path: str  # the module file, or the module directory (with kver None) / BASEDIR (with kver)
    kver: str | None = None


def add_parser(sub) -> None:
    lines = __doc__.splitlines()
    p = sub.add_parser("diff", help="compare two builds: modules, trees or .deb packages",
                       description=lines[0], epilog="\n".join(lines[2:]),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", metavar="OLD", help="module file, module tree, root, .deb, or KVER with -b")
    p.add_argument("new", metavar="NEW", help="the same kind as OLD")
    p.add_argument("-b", "--basedir", action="append", default=None, metavar="BASEDIR",
                   help="root holding lib/modules/KVER (kmod's -b); once for both, twice for OLD then NEW")
    p.add_argument("--old-symvers", metavar="FILE", help="OLD kernel's Module.symvers (or a linux-headers .deb)")
    p.add_argument("--new-symvers", metavar="FILE", help="NEW kernel's Module.symvers (or a linux-headers .deb)")
    p.add_argument("--consumer", action="append", choices=list(CONSUMERS), metavar="C",
                   help=f"consumer model to compare (repeatable; default {', '.join(DEFAULT_CONSUMERS)}; "
                        f"known: {', '.join(CONSUMERS)})")
    p.add_argument("--format", choices=("text", "markdown", "json", "html"), default="text")
    p.add_argument("--modules", action="store_true",
                   help="text/markdown/html: list every changed module in full and every row of every table")
    p.add_argument("-j", "--jobs", type=int, default=None, help="parallel workers (default: all cores)")
    p.set_defaults(run=run)


def run(args) -> int:
    try:
        with ExitStack() as stack:
            doc = _diff(args, stack)
    except _Fail as e:
        print(f"kmodcompat: {e}", file=sys.stderr)
        return e.status
    if args.format == "json":
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(diff_render.RENDERERS[args.format](doc, args.modules))
    return doc["status"]["exit_code"]


def _diff(args, stack: ExitStack) -> dict:
    consumers = tuple(args.consumer or DEFAULT_CONSUMERS)
    old, new = _operands(args, stack)
    if old.kind != new.kind:
        raise _Fail(f"{old.label} is a {old.kind} but {new.label} is a {new.kind}: compare like with like",
                    EXIT_USAGE)
    if old.kind == "module":
        if args.old_symvers or args.new_symvers:
            raise _Fail("--old-symvers/--new-symvers apply to trees only", EXIT_USAGE)
        recs = []
        for op in (old, new):
            try:
                recs.append(parse_module(op.path))
            except ModuleReadError as e:
                raise _Fail(str(e), EXIT_ERROR) from None
        d = diff_modules(recs[0], recs[1], consumers)  # two files: their paths differ by nature, not compared
        return to_json(d, old.label, new.label)
    trees = []
    for op, tag in ((old, "old"), (new, "new")):
        trees.append(load_tree(op.path, op.kver, jobs=args.jobs, progress=stderr_progress(f"reading {tag} tree")))
        if not trees[-1].modules:
            raise _Fail(f"{trees[-1].dirname}: no modules found", EXIT_USAGE)
    for t in trees:
        for m in t.failures:
            print(f"kmodcompat: {m.error}", file=sys.stderr)
    d = diff_trees(trees[0], trees[1], consumers, old_symvers=_symvers(args.old_symvers, stack),
                   new_symvers=_symvers(args.new_symvers, stack), old_label=old.label, new_label=new.label,
                   jobs=args.jobs)
    return to_json(d)


def _operands(args, stack: ExitStack) -> tuple[Operand, Operand]:
    bases = args.basedir
    if bases:
        if len(bases) > 2:
            raise _Fail("-b BASEDIR is given once (both trees) or twice (OLD then NEW)", EXIT_USAGE)
        ob, nb = bases[0], bases[-1]
        for b in {ob, nb}:
            if not os.path.isdir(b):
                raise _Fail(f"{b}: not a directory", EXIT_USAGE)
        return (Operand("tree", f"{ob} {args.old}", ob, args.old), Operand("tree", f"{nb} {args.new}", nb, args.new))
    return _operand(args.old, stack), _operand(args.new, stack)


def _operand(arg: str, stack: ExitStack) -> Operand:
    if not os.path.exists(arg):
        raise _Fail(f"{arg}: no such file or directory", EXIT_USAGE)
    if os.path.isfile(arg) and arg.endswith(".deb"):
        root = _unpack(arg, stack)
        return Operand("tree", os.path.basename(arg), _module_dir(root, arg), None)
    if os.path.isdir(arg):
        return Operand("tree", arg, _module_dir(arg, arg), None)
    return Operand("module", arg, arg)


def _module_dir(root: str, label: str) -> str:
    """A module directory itself, or the only ``[usr/]lib/modules/KVER`` under a root."""
    found = sorted({os.path.realpath(p) for p in glob.glob(os.path.join(root, "lib", "modules", "*"))
                    + glob.glob(os.path.join(root, "usr", "lib", "modules", "*")) if os.path.isdir(p)})
    if not found:
        return root
    if len(found) > 1:
        kvers = ", ".join(os.path.basename(p) for p in found)
        raise _Fail(f"{label}: several kernels ({kvers}): name one with -b {label} KVER", EXIT_USAGE)
    return found[0]


def _unpack(deb: str, stack: ExitStack) -> str:
    """``dpkg-deb -x`` into a temporary directory removed on exit."""
    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="kmodcompat-diff-"))
    try:
        p = subprocess.run(["dpkg-deb", "-x", deb, tmp], capture_output=True, text=True)
    except OSError as e:
        raise _Fail(f"{deb}: cannot run dpkg-deb: {e.strerror}", EXIT_ERROR) from None
    if p.returncode != 0:
        reason = (p.stderr.strip().splitlines() or [f"dpkg-deb exited with {p.returncode}"])[-1]
        raise _Fail(f"{deb}: {reason}", EXIT_ERROR)
    return tmp


def _symvers(path: str | None, stack: ExitStack) -> str | None:
    """A Module.symvers path; from a linux-headers .deb, the one it carries."""
    if path is None:
        return None
    if not os.path.isfile(path):
        raise _Fail(f"{path}: no such file", EXIT_USAGE)
    if not path.endswith(".deb"):
        return path
    root = _unpack(path, stack)
    found = sorted(glob.glob(os.path.join(root, "usr", "src", "*", "Module.symvers")))
    if not found:
        raise _Fail(f"{path}: no usr/src/*/Module.symvers in this package", EXIT_ERROR)
    return found[0]
