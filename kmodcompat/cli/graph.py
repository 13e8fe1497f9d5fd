"""``kmodcompat graph [TREE | -b BASEDIR KVER] [-F System.map|-E Module.symvers] [--module M]... [--format dot|graphml|json]``.

The module dependency graph as depmod resolves it: one node per module (and
``vmlinux`` when kernel exports are given), one edge per importer/exporter
pair carrying the symbols. ``--module`` restricts it to the dependency
closure of the named modules.
"""

from __future__ import annotations

import io
import sys

import networkx as nx

from ..graph import KERNEL_NODE, closure, graph_for_tree
from contextlib import ExitStack

from .inputs import add_symbol_options, add_tree_options, kernel_symbols_or_exit, tree_from_args
from .helptext import CommandHelp, command_parser
from .output import write_json


HELP = CommandHelp(
    summary="module dependency graph (DOT, GraphML, JSON)",
    description="""
Prints the module dependency graph as depmod resolves it: one node per module (and one for vmlinux when the
kernel's exports are given with -E or -F), one edge per importer and exporter, carrying the symbols. With
--module, only the dependency closure of the named modules.
""",
    examples=(
        ("kmodcompat graph --module ext4 | dot -Tsvg > ext4.svg",
         "Draw what ext4 depends on in the running kernel's tree."),
        ("kmodcompat graph --format graphml -b /srv/root 6.1.0-56-amd64 > deps.graphml",
         "The whole graph of a root's tree, for a graph editor."),
    ),
    exit_status="0 on success, 2 for a usage or input error: an operand that names no tree, a tree that cannot be opened "
                "or holds no module, an unreadable -E or -F file, a --module the tree does not have.",
)


def add_parser(sub) -> None:
    p = command_parser(sub, "graph", HELP)
    p.add_argument("--module", "-m", action="append", default=[], help="only this module's dependency closure")
    p.add_argument("--format", choices=("dot", "graphml", "json"), default="dot",
                   help="output format (default %(default)s)")
    add_symbol_options(p)
    add_tree_options(p)
    p.set_defaults(run=run)


def _dot_id(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(g: nx.DiGraph) -> str:
    """Graphviz DOT; edges labelled with their symbol count, the kernel drawn as a box."""
    out = ["digraph modules {", "  rankdir=LR;", "  node [shape=ellipse];"]
    for n, a in g.nodes(data=True):
        attrs = ["shape=box"] if n == KERNEL_NODE else []
        if a.get("error"):
            attrs.append("color=red")
        out.append(f"  {_dot_id(n)}{' [' + ', '.join(attrs) + ']' if attrs else ''};")
    for u, v, a in g.edges(data=True):
        out.append(f"  {_dot_id(u)} -> {_dot_id(v)} [label={_dot_id(str(len(a['symbols'])))}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _flat(g: nx.DiGraph) -> nx.DiGraph:
    """A copy with only scalar attributes (GraphML cannot hold lists)."""
    h = nx.DiGraph()
    for n, a in g.nodes(data=True):
        h.add_node(n, **{k: ("" if v is None else v) for k, v in a.items()})
    for u, v, a in g.edges(data=True):
        h.add_edge(u, v, symbols=" ".join(a["symbols"]), count=len(a["symbols"]))
    return h


def run(args) -> int:
    kernel = kernel_symbols_or_exit(args)
    with ExitStack() as stack:
        tg = graph_for_tree(tree_from_args(args, stack)[1], kernel, args.prefix)
    g = tg.graph
    if args.module:
        try:
            g = closure(g, args.module)
        except KeyError as e:
            print(f"kmodcompat: no module {e.args[0]} in the tree", file=sys.stderr)
            return 2
    if args.format == "dot":
        sys.stdout.write(to_dot(g))
    elif args.format == "graphml":
        buf = io.BytesIO()
        nx.write_graphml(_flat(g), buf)
        sys.stdout.write(buf.getvalue().decode())
    else:
        data = nx.node_link_data(g, edges="links")
        for link in data["links"]:
            link["symbols"] = list(link["symbols"])
        data["cycles"] = [list(c) for c in tg.cycles]
        data["components"] = [list(c) for c in tg.components]
        data["unresolved"] = [{"module": m, "symbol": s, "weak": w} for m, s, w in tg.unresolved]
        write_json(data, 2)
        sys.stdout.write("\n")
    return 0
