#!/usr/bin/env python3
"""Benchmark: two revisions of kmodcompat against real depmod on the same tree, in the same run.

    python3 bench/revisions.py --before /path/to/old/.venv/bin/python [--after PYTHON]
                               [--tree bookworm-amd64] [--rounds 3] [--json FILE]

"Not slower" for a refactor means the ratios to depmod do not grow between the two revisions. Each round
runs, in alternation: kmod 34.2's depmod, then each revision's ``report`` cold (--no-cache, all cores) and
warm (its own cache, filled by an untimed first run), the revisions' order swapped every round so neither
always runs after the other. ``--before`` and ``--after`` are interpreters with a kmodcompat installed (a
venv of each checkout; ``--after`` defaults to this one). Timed as bench/bench.py times (GNU time); what
matters is the median ratio per revision, not the seconds: the machine is shared. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench import medians, print_table, timed  # noqa: E402  (bench/bench.py: this script's directory is first on sys.path)
from tests import oracle  # noqa: E402


def revision(python: str) -> str:
    """What ``python -m kmodcompat --version`` says, and the checkout's commit."""
    version = subprocess.run([python, "-m", "kmodcompat", "--version"], capture_output=True, text=True).stdout
    where = subprocess.run([python, "-c", "import kmodcompat, os; print(os.path.dirname(kmodcompat.__file__))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    commit = subprocess.run(["git", "-C", where, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return f"{commit or where}: {version.strip().splitlines()[0] if version.strip() else '?'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, metavar="PYTHON")
    ap.add_argument("--after", default=sys.executable, metavar="PYTHON")
    ap.add_argument("--tree", default="bookworm-amd64", help="a tree of tests/oracle.py TREES (fetched if missing)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    root = oracle.tree_root(args.tree, fetch=True)
    krel = oracle.tree_info(root)["krel"]
    work = Path(tempfile.mkdtemp(prefix="kmc-revs-"))
    # ``python -m`` and ``-c`` put the working directory first on sys.path: run from the scratch
    # directory, or a checkout's kmodcompat would shadow the one each interpreter has installed.
    os.chdir(work)
    empty_conf = work / "depmod.d"
    empty_conf.mkdir()
    oracle.depmod_scratch_root(root, work / "kmod34")
    depmod = oracle.kmod_argv("kmod34", "depmod") + ["-C", str(empty_conf), "-b", str(work / "kmod34"), krel]
    sides = {"before": args.before, "after": args.after}
    names = {side: revision(python) for side, python in sides.items()}
    argv, env = {}, {}
    for side, python in sides.items():
        env[side] = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
                     "XDG_CACHE_HOME": str(work / side / "xdg"), "PYTHONPYCACHEPREFIX": str(work / side / "pyc")}
        argv[side] = [python, "-m", "kmodcompat", "report", "-b", str(root), krel, "--out", str(work / side / "out"),
                      "--fail-on", "none"]
        timed(argv[side], env[side])  # untimed: fills this side's cache and bytecode
    runs: dict[str, list[dict]] = {"depmod-kmod34": [], **{f"{s}-{k}": [] for s in sides for k in ("cold", "warm")}}
    for i in range(args.rounds):
        runs["depmod-kmod34"].append(timed(depmod))
        for side in (("before", "after") if i % 2 == 0 else ("after", "before")):
            runs[f"{side}-cold"].append(timed(argv[side] + ["--no-cache"], env[side]))
            runs[f"{side}-warm"].append(timed(argv[side], env[side]))
        print(f"round {i + 1}/{args.rounds} done", file=sys.stderr)
    med = medians(runs)
    ratios = {f"{k} / depmod-kmod34": med[k]["wall"] / med["depmod-kmod34"]["wall"] for k in runs if k != "depmod-kmod34"}
    print(f"tree {args.tree} ({krel}), {len(oracle.tree_modules(root))} modules, {os.cpu_count()} cores, "
          f"{args.rounds} rounds (medians)")
    for side, name in names.items():
        print(f"{side}: {name}")
    print_table(med, ratios)
    if args.json:
        Path(args.json).write_text(json.dumps({"tree": args.tree, "krel": krel, "cores": os.cpu_count(),
                                               "rounds": args.rounds, "revisions": names, "median": med,
                                               "ratios": ratios, "runs": runs}, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
