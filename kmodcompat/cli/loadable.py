"""``kmodcompat loadable MODULE|DIR... --kernel TREE|KVER|IMAGE... [--format text|json]``: the load matrix.

For every module × kernel: would the kernel's loader accept it, and why not,
symbol by symbol (kmodcompat/loadable.py: module_layout, vermagic, each
import's CRC in the table the kernel reads, symbols missing, GPL-only
symbols used by a non-GPL module, namespaces not imported), what
CONFIG_MODULE_FORCE_LOAD would change, and what Red Hat's weak-modules and
SUSE's weak-modules2 decide. The modules given together satisfy each
other's symbols (an out-of-tree stack). A kernel is a boot image, a module
directory (its exports from its Module.symvers or boot image) or an
installed KVER. The loader's profile is Debian's (a missing __versions entry
refuses the load: module-disable-matching-missing-version-crc.patch) when the
kernel's version string says Debian built it, kernel.org's otherwise;
--kernel-profile names it for every kernel.
"""

from __future__ import annotations

import os
import sys


from ..consumers import WEAK_MODULES
from ..consumers.kernel import PROFILES
from ..errors import ModuleReadError
from ..files.kernel import KernelSourceError
from ..loadable import load_matrix, target_for
from ..cache import parse_cached
from ..records import MODULE_SUFFIXES
from .inputs import add_cache_option, open_cache
from .output import shown, write_json
from .helptext import CommandHelp, command_parser
from ..report.text import table
from .terminal import columns, note, paint


HELP = CommandHelp(
    summary="would each kernel's loader accept each module, and why not",
    description="""
For every module and every kernel, says whether the kernel's loader accepts the module, and if not why,
symbol by symbol: module_layout, vermagic, each import's CRC in the table that kernel reads, missing symbols,
GPL-only symbols used by a non-GPL module, namespaces not imported. It also says what
CONFIG_MODULE_FORCE_LOAD would change, and what Red Hat's weak-modules and SUSE's weak-modules2 decide.

The modules given together satisfy each other's symbols (an out-of-tree stack). A kernel is a boot image, a
module directory (its exports read from its Module.symvers or boot image) or an installed kernel release.

The loader is modelled as Debian's (a symbol missing from __versions refuses the load:
module-disable-matching-missing-version-crc.patch) when the kernel's version string says Debian built it,
or, without a boot image, when its release has Debian's +debN suffix; as kernel.org's otherwise.
--kernel-profile names the profile for every kernel.
""",
    examples=(
        ("kmodcompat loadable my.ko --kernel 6.1.0-56-amd64 --kernel 6.12.57+deb13-amd64",
         "Would either of two installed kernels load my.ko?"),
        ("kmodcompat loadable --format json build/ --kernel /boot/vmlinuz-$(uname -r)",
         "Check every module under build/ against the running kernel's boot image, as JSON."),
    ),
    exit_status="0 when every module loads into every kernel, 1 when some are refused, 2 for a usage or input error: an "
                "operand that does not exist, a directory without module files, a module file that cannot be read (the "
                "others are still checked), a kernel that cannot be used.",
)


def add_parser(sub) -> None:
    p = command_parser(sub, "loadable", HELP)
    p.add_argument("modules", nargs="+", metavar="MODULE|DIR", help="module files, or directories searched for them")
    p.add_argument("--kernel", action="append", required=True, metavar="TREE|KVER|IMAGE",
                   help="a kernel: boot image, module directory or installed KVER (repeatable)")
    p.add_argument("--kernel-profile", choices=PROFILES, default=None,
                   help="the loader's profile for every kernel: mainline (kernel.org) or debian (fails closed on a "
                        "missing __versions entry); default: read from each kernel's version string")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="output format (default %(default)s)")
    p.add_argument("-j", "--jobs", type=int, default=None, help="parallel parsers (default: all cores)")
    add_cache_option(p)
    p.set_defaults(run=run)


def _module_files(operands: list[str]) -> list[str] | None:
    """The module files operands name, directories walked; None after one line for a directory without any."""
    out = []
    for op in operands:
        if os.path.isdir(op):
            found = []
            for d, dirs, files in os.walk(op):
                dirs.sort()
                found += [os.path.join(d, f) for f in sorted(files) if f.endswith(MODULE_SUFFIXES)]
            if not found:
                print(f"kmodcompat: {shown(op)}: no modules found", file=sys.stderr)
                return None
            out += found
        else:
            out.append(op)
    return out


def run(args) -> int:
    missing = [o for o in args.modules if not os.path.lexists(o)]
    if missing:
        print(f"kmodcompat: {shown(missing[0])}: no such file or directory", file=sys.stderr)
        return 2
    files = _module_files(args.modules)
    if files is None:
        return 2
    modules, bad = [], 0
    for f, parsed in zip(files, parse_cached(files, open_cache(args), args.jobs)):
        if isinstance(parsed, ModuleReadError):
            print(f"kmodcompat: {shown(parsed)}", file=sys.stderr)
            bad += 1
        else:
            modules.append((f, parsed))
    if not modules:
        return 2
    targets = []
    for k in args.kernel:
        try:
            t = target_for(k, args.kernel_profile)
        except (KernelSourceError, OSError) as e:
            print(f"kmodcompat: {shown(e)}", file=sys.stderr)
            return 2
        note(f"kmodcompat: {shown(k)}: {shown(t.source.line())}")
        note(f"kmodcompat: {shown(k)}: loader model {t.model.id} ({shown(t.model.title)}): {shown(t.profile_why)}")
        for n in t.notes:
            note(f"kmodcompat: {shown(k)}: {shown(n)}")
        targets.append(t)
    results = load_matrix(modules, targets)
    if args.format == "json":
        doc = {"kernels": [{"kernel": t.label, "release": t.release, "vermagic": t.vermagic,
                            "model": t.model.id, "profile": t.profile, "profile_evidence": t.profile_why,
                            "force_load": t.force_load, "modversions": t.modversions,
                            "exports": t.source.as_dict(), "notes": list(t.notes)} for t in targets],
               "results": [r.as_dict() for r in results], "unreadable": bad}
        write_json(doc, 1)
        sys.stdout.write("\n")
    else:
        rows = []
        for r in results:
            why = "; ".join(f"{x.check}{' ' + x.symbol if x.symbol else ''}: {x.detail}" for x in r.reasons[:3])
            if len(r.reasons) > 3:
                why += f"; ... {len(r.reasons) - 3} more"
            verdict = paint(r.verdict, "good" if r.verdict == "loads" else "warn" if r.loads else "bad")
            rows.append([shown(os.path.basename(r.module)), shown(r.kernel), verdict, shown(why) or "-",
                         r.force_load or "-",
                         ", ".join(f"{k} {v}" for k, v in r.weak_modules.items())])
        sys.stdout.write(table(rows, ["module", "kernel", "verdict", "why", "FORCE_LOAD flipped", WEAK_MODULES.id],
                               columns(), tablefmt="simple") + "\n")
    if bad:
        return 2
    return 0 if all(r.loads for r in results) else 1
