"""``kmodcompat validate MODULE|TREE... [--format text|json]``: would the kernel (and kmod) accept these modules?

Each module file goes through the kernel loader's checks (``module_sig_check``,
the ``elf_validity_*`` functions, ``simplify_symbols``; docs/formats.md §1.5) and
kmod's (``kmod_elf_new``, libkmod-elf.c's table readers), see
:mod:`kmodcompat.validate`. A TREE is walked for ``*.ko``, ``*.ko.gz``,
``*.ko.xz`` and ``*.ko.zst`` files (symbolic links followed, each directory
once; ``build`` and ``source`` skipped as depmod does); every file that
cannot be read or walked is named with its reason, none is dropped.
"""

from __future__ import annotations

import argparse
import errno
import functools
import json
import os
import stat
import sys
from contextlib import ExitStack
from dataclasses import asdict

from ..errors import ModuleReadError
from ..parse.scan import PARSE_TIMEOUT, DeadlineExceeded, deadline
from ..files.bounded import file_type
from ..records import MODULE_SUFFIXES
from ..validate import Failure, Target, Validation, validate_file
from ..files.packages import is_package
from ..cache import map_cached
from ..cache.record_cache import verdicts
from .inputs import add_cache_option, may_be_kver, resolve, tree_cache, usage
from .output import add_as_option, emulated_kmod, shown
from .helptext import CommandHelp, command_parser
from .terminal import paint, progress

#: What depmod and kmod take for module files (the suffixes of every compression kmod knows).
#: Names depmod never descends into (tools/depmod.c depmod_modules_search_dir()).
_SKIPPED_NAMES = {"build", "source"}
_MACHINE_ALIASES = {"amd64": "X86_64", "arm64": "AARCH64", "armhf": "ARM", "armel": "ARM", "armmp": "ARM",
                    "s390x": "S390", "i386": "386", "i686": "386", "ppc64le": "PPC64", "ppc64el": "PPC64",
                    "powerpc": "PPC", "powerpc64": "PPC64", "riscv64": "RISCV", "loong64": "LOONGARCH"}


HELP = CommandHelp(
    summary="the kernel loader's and kmod's validity checks, per module",
    description="""
Puts each module file through the checks the kernel's loader makes before it loads a module (the signature
check, the ELF validity checks, symbol resolution) and those kmod makes when it opens one, and says which
fail, with the error number and message the kernel or kmod would give.

A TREE is walked for .ko, .ko.gz, .ko.xz and .ko.zst files (symbolic links followed, each directory once,
build and source skipped as depmod skips them); every file that cannot be read or walked is named with its
reason, none is dropped. The options describe the target kernel where it matters.
""",
    examples=(
        ("kmodcompat validate /lib/modules/$(uname -r)", "Check every module of the running kernel."),
        ("kmodcompat validate --machine aarch64 --sig-enforce -v foo.ko",
         "Would an arm64 kernel that enforces signatures load foo.ko? List what passes too."),
    ),
    exit_status="0 when every module passes, 1 when a module fails a check or could not be read (each named in the output"
                " with the check it fails), 2 for a usage or input error: an operand that does not exist, a tree that "
                "cannot be opened, a directory without module files.",
)


def add_parser(sub) -> None:
    p = command_parser(sub, "validate", HELP)
    p.add_argument("operands", nargs="*", metavar="MODULE|TREE",
                   help="module files and/or directories to walk, packages (combined into one root), or KVER with -b")
    p.add_argument("-b", "--basedir", default=None, metavar="BASEDIR",
                   help="root holding lib/modules/KVER (kmod's -b): the operand is then KVER")
    p.add_argument("--moddir", default=None, metavar="DIR",
                   help="the module directory DIR (same as a TREE operand), as in every command that takes a tree")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="output format (default %(default)s)")
    p.add_argument("--machine", type=machine_number, default=None, metavar="ARCH",
                   help="e_machine of the target kernel (x86_64, aarch64, s390x, ... or a number; "
                   "default: what each module claims)")
    p.add_argument("--struct-module-size", type=int, default=None, metavar="BYTES",
                   help="sizeof(struct module) of the target kernel (default: not checked)")
    p.add_argument("--ppc64-abi", type=int, choices=(1, 2), default=None,
                   help="ELF ABI of a ppc64 target kernel (default: either)")
    p.add_argument("--sig-enforce", action="store_true",
                   help="the target kernel refuses unsigned modules (module.sig_enforce=1)")
    p.add_argument("--no-strict-module-rwx", dest="strict_rwx", action="store_false",
                   help="the target kernel lacks CONFIG_STRICT_MODULE_RWX (writable+executable sections pass)")
    add_as_option(p)
    p.add_argument("-j", "--jobs", type=int, default=None, help="parallel checkers (default: all cores)")
    add_cache_option(p)
    p.add_argument("--timeout", type=float, default=PARSE_TIMEOUT, metavar="SECONDS",
                   help=f"time allowed per module before it is reported unreadable (default {PARSE_TIMEOUT:g})")
    p.add_argument("-v", "--verbose", action="store_true", help="text: also list the modules that pass")
    p.set_defaults(run=run)


def machine_number(value: str) -> int:
    """``x86_64``, ``EM_X86_64``, ``s390x`` or ``62`` → 62 (pyelftools' EM_* table)."""
    from elftools.elf.enums import ENUM_E_MACHINE

    if value.isdigit():
        return int(value)
    name = value.upper().removeprefix("EM_")
    name = _MACHINE_ALIASES.get(value.lower(), name)
    number = ENUM_E_MACHINE.get("EM_" + name)
    if number is None:
        raise argparse.ArgumentTypeError(f"unknown machine {value!r}")
    return number


def _names_a_tree(operands: list[str], basedir: str | None) -> bool:
    """Operands every command reads as a tree (cli/inputs.py): -b BASEDIR KVER, packages, KVER alone."""
    if basedir is not None or (operands and all(map(is_package, operands))):
        return True
    return len(operands) == 1 and not os.path.lexists(operands[0]) and may_be_kver(operands[0])


def run(args) -> int:
    if args.moddir is not None:
        if args.operands or args.basedir is not None:
            usage("--moddir DIR names the tree: no other operand, no -b")
        args.operands = [args.moddir]
    with ExitStack() as stack:
        op = None
        if _names_a_tree(args.operands, args.basedir):
            op = resolve(args.operands, args.basedir, stack)
            try:
                os.scandir(op.dirname).close()
            except OSError as e:
                usage(f"{op.display(op.dirname)}: cannot open directory: {e.strerror}")
            args.operands = [op.dirname]
        elif not args.operands:
            usage("name module files, directories or packages (or -b BASEDIR KVER)")
        status = _run(args, op.display if op is not None else str, op)
    return status


def _run(args, display, op=None) -> int:
    """``display``: paths of unpacked packages as the packages' names."""
    missing = [o for o in args.operands if not os.path.lexists(o)]
    if missing:
        print(f"kmodcompat: {shown(missing[0])}: no such file or directory", file=sys.stderr)
        return 2
    target = Target(machine=args.machine, struct_module_size=args.struct_module_size,
                    ppc64_elfv2=None if args.ppc64_abi is None else args.ppc64_abi == 2,
                    sig_enforce=args.sig_enforce, strict_module_rwx=args.strict_rwx,
                    kmod=emulated_kmod(args).id)
    files: list[str] = []
    walk_errors: list[ModuleReadError] = []
    skipped: list[tuple[str, str]] = []
    for operand in args.operands:
        if os.path.isdir(operand):
            found, errors, dups = find_modules(operand)
            if not found and not errors:
                usage(f"{display(operand)}: no modules found")
            files += found
            walk_errors += errors
            skipped += dups
        else:
            files.append(operand)
    worker = functools.partial(check_one, target=target, timeout=args.timeout)
    # Each file's verdict is a fact about its bytes and the target: kept in the record cache, by content.
    results = map_cached(worker, files, tree_cache(op, args), verdicts(target), args.jobs, progress("validating"))
    checked = [r for r in results if isinstance(r, Validation)]
    unreadable = walk_errors + [r for r in results if isinstance(r, ModuleReadError)]
    if args.format == "json":
        sys.stdout.write(display(json.dumps(to_json(args.operands, target, checked, unreadable, skipped), indent=1))
                         + "\n")
    else:
        sys.stdout.write(display(render(checked, unreadable, skipped, args.verbose)))
    return 0 if not unreadable and all(v.valid for v in checked) else 1


def check_one(path: str, target: Target, timeout: float | None) -> Validation | ModuleReadError:
    """One module, in a worker process: a verdict or the reason it could not be read. Never raises."""
    try:
        with deadline(timeout):
            return validate_file(path, target)
    except ModuleReadError as e:
        return e
    except DeadlineExceeded as e:
        return ModuleReadError(path, f"checking {e}", "timeout", errno.ETIMEDOUT, transient=True)
    except Exception as e:  # a bug must not end the run; it is reported for this file
        return ModuleReadError(path, f"internal error: {type(e).__name__}: {e}".splitlines()[0], "internal-error")


def find_modules(root: str) -> tuple[list[str], list[ModuleReadError], list[tuple[str, str]]]:
    """Module files under ``root`` (sorted walk), what could not be walked, and directories skipped.

    Directory links are followed, but each directory (by device and inode) is
    entered once: a link back up the tree (a loop) or a second link to the
    same directory is listed as skipped. Entries with a module suffix that are
    not regular files (dangling links, link loops, fifos, devices) are
    reported as unreadable without being opened.
    """
    files: list[str] = []
    errors: list[ModuleReadError] = []
    skipped: list[tuple[str, str]] = []
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            st = os.stat(directory)
            if (st.st_dev, st.st_ino) in seen:
                skipped.append((directory, "directory already walked (a symbolic link loop or a second link)"))
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            errors.append(_os_error(directory, e, "directory-unreadable"))
            continue
        subdirs = []
        for ent in entries:
            if ent.name in _SKIPPED_NAMES:
                continue
            path = os.path.join(directory, ent.name)
            is_module = ent.name.endswith(MODULE_SUFFIXES) and ent.name not in MODULE_SUFFIXES
            try:
                mode = os.stat(path).st_mode
            except OSError as e:  # a dangling link, a link loop, a vanished entry
                if is_module:
                    errors.append(_os_error(path, e, "unreadable"))
                else:
                    skipped.append((path, f"cannot follow: {e.strerror or e}"))
                continue
            if stat.S_ISDIR(mode):
                subdirs.append(path)
            elif is_module and not stat.S_ISREG(mode):
                errors.append(ModuleReadError(path, f"not a regular file ({file_type(mode)})", "unreadable",
                                              errno.EINVAL))
            elif is_module:
                files.append(path)
        stack += reversed(subdirs)  # depth first, in name order
    return files, errors, skipped


def _os_error(path: str, e: OSError, code: str) -> ModuleReadError:
    return ModuleReadError(path, e.strerror or str(e), code, e.errno or errno.EIO)


def _printable(s: str) -> str:
    """Control characters (the kernel's "\\177ELF") as escapes, one line (a message's lines joined by " / ")."""
    return shown(s.replace("\n", " / "))


def failure_line(f: Failure) -> str:
    level = paint("FAIL", "bad") if f.fatal else paint("WARN", "warn")
    said = f"{_printable(f.message)} ({_printable(f.detail)})" if f.message else _printable(f.detail)
    return f"{level} {f.source} {f.check} [{f.errno_name}] {said}"


def render(checked: list[Validation], unreadable: list[ModuleReadError], skipped: list[tuple[str, str]],
           verbose: bool) -> str:
    out = []
    for v in checked:
        if not v.failures and verbose:
            out.append(f"{shown(v.path)}: {paint('ok', 'good')}")
        for f in v.failures:
            out.append(f"{shown(v.path)}: {failure_line(f)}")
    for e in unreadable:
        out.append(f"{shown(e.path)}: {paint('UNREADABLE', 'bad')} {_printable(e.reason)}")
    for path, why in skipped:
        out.append(f"{shown(path)}: skipped, {shown(why)}")
    failing = sum(1 for v in checked if not v.valid)
    out.append(f"{len(checked) + len(unreadable)} module file(s): {len(checked) - failing} pass, {failing} fail a "
               f"check, {len(unreadable)} unreadable")
    return "\n".join(out) + "\n"


def to_json(operands: list[str], target: Target, checked: list[Validation], unreadable: list[ModuleReadError],
            skipped: list[tuple[str, str]]) -> dict:
    failing = sum(1 for v in checked if not v.valid)
    return {
        "schema_version": 1,
        "inputs": operands,
        "target": asdict(target),
        "totals": {"modules": len(checked) + len(unreadable), "pass": len(checked) - failing, "fail": failing,
                   "unreadable": len(unreadable)},
        "modules": [{
            "path": v.path, "valid": v.valid, "kernel_refuses": v.kernel_refuses, "image_size": v.image_size,
            "elf_size": v.elf_size,
            "failures": [{"check": f.check, "code": f.code, "source": f.source, "errno": f.errno_name,
                          "message": f.message, "detail": f.detail, "fatal": f.fatal} for f in v.failures],
        } for v in checked],
        "unreadable": [{"path": e.path, "reason": e.reason, "code": e.code,
                        "errno": errno.errorcode.get(e.errno, str(e.errno))} for e in unreadable],
        "skipped": [{"path": p, "reason": why} for p, why in skipped],
    }
