"""``kmodcompat exports [TREE | -b BASEDIR KVER] [-E|-F FILE] [--format text|markdown|json]``: who exports what to whom.

For every symbol a module exports: the exporter, its CRC, GPL-only and
namespace, whether depmod resolves the symbol to this exporter (the last
exporter in depmod order wins) and every module importing it from there;
the exports nobody imports; and per module, what it imports from whom
(``vmlinux`` for the kernel when ``-E``/``-F`` is given).
"""

from __future__ import annotations

import sys
from typing import Any


from ..depmod.resolve import Depmod, run_depmod
from contextlib import ExitStack

from .inputs import add_symbol_options, add_tree_options, kernel_symbols_or_exit, tree_from_args
from ..report.text import table
from .helptext import CommandHelp, command_parser
from .output import write_json
from .terminal import columns


HELP = CommandHelp(
    summary="exported symbols, their importers, unused exports",
    description="""
For every symbol a module of the tree exports, shows the exporter, its CRC, whether it is GPL-only, its
namespace, whether depmod resolves the symbol to this exporter (the last exporter in depmod's order wins), and
every module that imports it from there. Then the exports nobody imports, and, per module, what it imports
from whom ("vmlinux" for the kernel itself when -E or -F names the kernel's exports).
""",
    examples=(
        ("kmodcompat exports /lib/modules/$(uname -r)", "Who exports what to whom in the running kernel's tree."),
        ("kmodcompat exports -E Module.symvers --format markdown linux-image-*.deb",
         "The same for a kernel package, with the kernel's own exports, as Markdown."),
    ),
    exit_status="0 on success, 2 for a usage or input error: an operand that names no tree, a tree that cannot be opened "
                "or holds no module, an unreadable -E or -F file.",
)


def add_parser(sub) -> None:
    p = command_parser(sub, "exports", HELP)
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text",
                   help="output format (default %(default)s)")
    add_symbol_options(p)
    add_tree_options(p)
    p.set_defaults(run=run)


def report(dm: Depmod) -> dict[str, Any]:
    """Exports with importers, unused exports and per-module imports, as plain data."""
    mods = dm.modules
    importers: dict[tuple[int, str], list[str]] = {}
    for (i, owner), syms in dm.edges.items():
        for s in syms:
            name = s[1:] if s.startswith(".") else s
            importers.setdefault((owner, name), []).append(mods[i].name)
    exports = []
    for i, m in enumerate(mods):
        rec = m.record
        if rec is None:
            continue
        for e in rec.exports:
            entry = dm.symbols.get(e.name)
            exports.append({
                "symbol": e.name, "exporter": m.name,
                "crc": None if e.crc is None else f"0x{e.crc & 0xFFFFFFFF:08x}",
                "gpl_only": e.gpl_only, "namespace": e.namespace,
                "resolved_here": entry is not None and entry.owner == i,
                "importers": importers.get((i, e.name), []),
            })
    imports = []
    for i, m in enumerate(mods):
        by_owner: dict[str, list[str]] = {}
        for (imp, owner), syms in dm.edges.items():
            if imp == i:
                by_owner.setdefault(mods[owner].name, []).extend(syms)
        if dm.kernel_imports and dm.kernel_imports[i]:
            by_owner["vmlinux"] = list(dm.kernel_imports[i])
        unresolved = [u.symbol for u in dm.unresolved if u.module == i]
        imports.append({"module": m.name, "from": by_owner, "unresolved": unresolved})
    return {"exports": exports, "unused": [f"{e['exporter']}:{e['symbol']}" for e in exports if not e["importers"]],
            "imports": imports, "kernel": None if dm.kernel is None else dm.kernel.path}


def run(args) -> int:
    kernel = kernel_symbols_or_exit(args)
    with ExitStack() as stack:
        op, tree = tree_from_args(args, stack)
        dm = run_depmod(tree, kernel, prefix=args.prefix)
        data = report(dm)
    if op.packages is not None:  # paths of the temporary root: the packages' names instead
        data["kernel"] = data["kernel"] and op.display(data["kernel"])
    if args.format == "json":
        write_json(data, 2)
        sys.stdout.write("\n")
        return 0
    rows = [[e["symbol"], e["exporter"], e["crc"] or "-", "GPL" if e["gpl_only"] else "", e["namespace"] or "",
             "" if e["resolved_here"] else "shadowed", " ".join(e["importers"]) or "(unused)"]
            for e in data["exports"]]
    head = ["symbol", "exporter", "crc", "license", "namespace", "depmod", "importers"]
    fmt = "github" if args.format == "markdown" else "plain"
    width = columns() if fmt == "plain" else None  # Markdown is for files: one row a line
    out = ["## Exports" if fmt == "github" else "Exports:", table(rows, head, width, tablefmt=fmt), ""]
    out.append("## Unused exports" if fmt == "github" else "Unused exports:")
    out += [f"- {u}" if fmt == "github" else f"  {u}" for u in data["unused"]] + [""]
    out.append("## Imports" if fmt == "github" else "Imports:")
    irows = [[imp["module"], owner, " ".join(syms)] for imp in data["imports"] for owner, syms in imp["from"].items()]
    irows += [[imp["module"], "(unresolved)", " ".join(imp["unresolved"])] for imp in data["imports"]
              if imp["unresolved"]]
    out.append(table(irows, ["module", "from", "symbols"], width, tablefmt=fmt))
    sys.stdout.write("\n".join(out) + "\n")
    return 0
