#!/usr/bin/env python3
"""Benchmark: every kmodcompat command against the tool a user would otherwise run, same rounds.

    python3 bench/bench_commands.py [--rounds 5] [--tree trixie-amd64] [--old-tree bookworm-amd64]
                                    [--only depmod,modinfo,...] [--json bench/results/commands-TREE.json]

Each round runs every group below in turn; inside a group the baseline runs
first and each kmodcompat variant right after it, so every ratio compares
runs seconds apart on the same loaded machine (alternating pairs). The
figures that matter are the medians over rounds of those per-round ratios
(kmodcompat / baseline); absolute times on this shared machine are noise.

Groups (baseline → kmodcompat variants):

* ``depmod``: kmod 34.2 ``depmod -b ROOT KVER`` writing its files → ``kmodcompat depmod --as kmod34`` writing
  the same files into its own root;
* ``depmod-ne``: kmod 34.2 ``depmod -n -e -E Module.symvers`` → the same command line;
* ``modinfo``: kmod 34.2 ``modinfo FILE`` once per module (as ``find ... | xargs -n1 modinfo`` runs it;
  a second baseline) and batched, one process for all → ``kmodcompat modinfo`` of every file in one process;
* ``diff``: kmod 34.2 ``depmod`` on the old tree plus on the new one (the sum) → ``kmodcompat diff OLD NEW``;
* ``validate``, ``report``: kmod 34.2 ``depmod`` on the tree (nothing else reads a whole tree) → the command.

Variants: ``cold`` (an empty cache directory: parsing, and filling the cache), ``warm`` (the cache a
previous run filled), ``1-changed`` (one module file given other bytes: a rebuilt module), ``copied``
(the tree copied with ``cp -a`` to a new path, warm cache: found by content), and ``cold-1core`` /
``warm-1core`` (``taskset -c 0`` and ``-j 1``; the baselines are single-threaded anyway). Every run is
timed by GNU time: wall and CPU seconds, the peak RSS of the process tree's largest member. Not a test.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from bench import report_root, timed  # noqa: E402
from tests import oracle  # noqa: E402

GROUPS = ("depmod", "depmod-ne", "modinfo", "diff", "validate", "report")
ONE_CORE = ["taskset", "-c", "0"]


def changed_bytes(src: bytes, name: str, n: int) -> bytes:
    """``src`` (a module file's bytes) made different for round ``n``: the image padded with ``n`` + 1 NULs
    after its end (the signature no longer last: a rebuilt, unsigned module), recompressed for ``.ko.xz``."""
    if name.endswith(".ko"):
        return src + b"\0" * (n + 1)
    if name.endswith(".ko.xz"):
        return lzma.compress(lzma.decompress(src) + b"\0" * (n + 1), check=lzma.CHECK_CRC32)
    raise SystemExit(f"{name}: only .ko and .ko.xz trees are benchmarked")


def write_old(path: Path, data: bytes) -> None:
    """``path`` written anew (new inode), dated in the past: a stat check may trust it."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.utime(tmp, (1_600_000_000, 1_600_000_000))
    tmp.replace(path)


def copy_tree(root: Path, krel: str, dst: Path) -> Path:
    """A root holding a real copy of the tree's module directory (``cp -a``: same bytes and dates, new inodes
    and path), and its boot/ and usr/ linked."""
    shutil.copytree(root / "lib" / "modules" / krel, dst / "lib" / "modules" / krel)  # links followed: files
    for top in ("boot", "usr"):
        if (root / top).exists():
            (dst / top).symlink_to((root / top).resolve())
    return dst


class Bench:
    def __init__(self, args) -> None:
        self.rounds = args.rounds
        self.root = oracle.tree_root(args.tree, fetch=True)
        self.krel = oracle.tree_info(self.root)["krel"]
        self.old_root = oracle.tree_root(args.old_tree, fetch=True) if args.old_tree else None
        self.work = Path(tempfile.mkdtemp(prefix="kmc-bench-cmds-"))
        self.cache_home = self.work / "xdg"
        # Bytecode compiled once (the untimed first runs), into the scratch directory.
        self.env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
                    "XDG_CACHE_HOME": str(self.cache_home), "PYTHONPYCACHEPREFIX": str(self.work / "pycache"),
                    "LC_ALL": "C"}
        self.conf = self.work / "depmod.d"
        self.conf.mkdir()
        self.kmc, self.changed = report_root(self.root, self.krel, self.work / "kmc")
        self.changed_src = self.changed.read_bytes()
        self.dm = self.work / "dm34"
        oracle.depmod_scratch_root(self.root, self.dm)
        self.symvers = next((self.root / "usr" / "src").glob("*/Module.symvers"))
        self.modules = oracle.tree_modules(self.root)
        self.depmod34 = oracle.kmod_argv("kmod34", "depmod")
        self.modinfo34 = oracle.kmod_argv("kmod34", "modinfo")
        if self.old_root is not None:
            self.old_krel = oracle.tree_info(self.old_root)["krel"]
            self.dm_old = self.work / "dm34-old"
            oracle.depmod_scratch_root(self.old_root, self.dm_old)
        self.runs: dict[str, dict[str, list[dict]]] = {}
        self.ratios: dict[str, dict[str, list[float]]] = {}
        self.round = 0
        self.changes = 0

    # -- commands ------------------------------------------------------------------------------------------

    def kmc_cmd(self, *argv: str) -> list[str]:
        return [sys.executable, "-m", "kmodcompat", *argv]

    def depmod_kmod(self, root: Path, krel: str, *extra: str) -> list[str]:
        return [*self.depmod34, *extra, "-C", str(self.conf), "-b", str(root), krel]

    def fresh_cache(self) -> dict:
        """The environment of a cold run: an empty cache directory of its own."""
        d = Path(tempfile.mkdtemp(prefix="xdg-", dir=self.work))
        return {**self.env, "XDG_CACHE_HOME": str(d)}

    def time(self, group: str, name: str, argv: list[str], env: dict | None = None,
             ok: tuple[int, ...] | None = (0, 1)) -> float:
        r = timed(argv, env if env is not None else self.env, ok)
        self.runs.setdefault(group, {}).setdefault(name, []).append(r)
        return r["wall"]

    def pair(self, group: str, base: float, name: str, argv: list[str], env: dict | None = None,
             ok: tuple[int, ...] | None = (0, 1)) -> None:
        wall = self.time(group, name, argv, env, ok)
        self.ratios.setdefault(group, {}).setdefault(name, []).append(wall / base)

    def variants(self, group: str, base: float, argv_for, one_core: bool = True) -> None:
        """cold, warm, 1-changed, copied (and the 1-core pair) of the kmodcompat command ``argv_for(root)``."""
        self.pair(group, base, "cold", argv_for(self.kmc), self.fresh_cache())
        timed(argv_for(self.kmc), self.env)  # untimed: the cache holds this very tree (another group changed it)
        self.pair(group, base, "warm", argv_for(self.kmc))
        self.changes += 1  # other bytes than any run before saw
        write_old(self.changed, changed_bytes(self.changed_src, self.changed.name, self.changes))
        self.pair(group, base, "1-changed", argv_for(self.kmc))
        copy = copy_tree(self.kmc, self.krel, self.work / f"copy-{group}-{self.round}")
        self.pair(group, base, "copied", argv_for(copy))
        shutil.rmtree(copy)
        if one_core:
            self.pair(group, base, "cold-1core", ONE_CORE + argv_for(self.kmc) + ["-j", "1"], self.fresh_cache())
            self.pair(group, base, "warm-1core", ONE_CORE + argv_for(self.kmc) + ["-j", "1"])

    # -- groups --------------------------------------------------------------------------------------------

    def g_depmod(self) -> None:
        base = self.time("depmod", "kmod34", self.depmod_kmod(self.dm, self.krel))
        self.variants("depmod", base, lambda root: self.kmc_cmd(
            "depmod", "--as", "kmod34", "-C", str(self.conf), "-b", str(root), self.krel))

    def g_depmod_ne(self) -> None:
        extra = ("-n", "-e", "-E", str(self.symvers))
        base = self.time("depmod-ne", "kmod34", self.depmod_kmod(self.dm, self.krel, *extra))
        self.variants("depmod-ne", base, lambda root: self.kmc_cmd(
            "depmod", "--as", "kmod34", *extra, "-C", str(self.conf), "-b", str(root), self.krel), one_core=False)

    def g_modinfo(self) -> None:
        lst = self.work / "modules.list"
        lst.write_bytes(b"\0".join(os.fsencode(m) for m in self.modules))
        per_module = self.time("modinfo", "kmod34-per-module", ["sh", "-c", 'xargs -0 -n1 "$@" < "$0" > /dev/null',
                                                                  str(lst), *self.modinfo34])
        batched = self.time("modinfo", "kmod34-batched", [*self.modinfo34, *self.modules])
        for name, env in (("cold", self.fresh_cache()), ("warm", None)):
            wall = self.time("modinfo", name, self.kmc_cmd("modinfo", "--as", "kmod34", *self.modules), env)
            self.ratios.setdefault("modinfo", {}).setdefault(f"{name} / per-module", []).append(wall / per_module)
            self.ratios["modinfo"].setdefault(f"{name} / batched", []).append(wall / batched)

    def g_diff(self) -> None:
        if self.old_root is None:
            return
        base = (self.time("diff", "kmod34-old", self.depmod_kmod(self.dm_old, self.old_krel))
                + self.time("diff", "kmod34-new", self.depmod_kmod(self.dm, self.krel)))
        argv = self.kmc_cmd("diff", "--format", "json", "-b", str(self.old_root), "-b", str(self.kmc), self.old_krel,
                            self.krel)
        # diff's status is abidiff's bit mask (incompatible changes found: 12): not a failure
        self.pair("diff", base, "cold", argv, self.fresh_cache(), ok=None)
        timed(argv, self.env, ok=None)  # untimed: the cache holds these very trees
        self.pair("diff", base, "warm", argv, ok=None)

    def g_validate(self) -> None:
        base = self.time("validate", "kmod34-depmod", self.depmod_kmod(self.dm, self.krel))
        self.variants("validate", base, lambda root: self.kmc_cmd("validate", "--format", "json", "-b", str(root),
                                                                   self.krel))

    def g_report(self) -> None:
        base = self.time("report", "kmod34-depmod", self.depmod_kmod(self.dm, self.krel))
        out = self.work / "out"
        self.variants("report", base, lambda root: self.kmc_cmd("report", "-b", str(root), self.krel, "--out",
                                                                 str(out), "--fail-on", "none"))

    # -- the run -------------------------------------------------------------------------------------------

    def run(self, groups: list[str]) -> dict:
        for g in groups:  # untimed: bytecode compiled, the warm cache filled
            if g == "diff" and self.old_root is None:
                continue
            getattr(self, "g_" + g.replace("-", "_"))()
        self.runs.clear()
        self.ratios.clear()
        for n in range(self.rounds):
            self.round = n
            for g in groups:
                t0 = time.monotonic()
                getattr(self, "g_" + g.replace("-", "_"))()
                print(f"round {self.round + 1}/{self.rounds}: {g} ({time.monotonic() - t0:.0f} s)", file=sys.stderr)
        write_old(self.changed, self.changed_src)
        med = {g: {n: {m: statistics.median(r[m] for r in rs) for m in ("wall", "cpu", "rss_mib")}
                   for n, rs in v.items()} for g, v in self.runs.items()}
        ratios = {g: {n: statistics.median(rs) for n, rs in v.items()} for g, v in self.ratios.items()}
        return {"tree": self.root.name, "krel": self.krel, "modules": len(self.modules),
                "old_tree": self.old_root.name if self.old_root is not None else None,
                "cores": os.cpu_count(), "rounds": self.rounds, "kmod": "34.2 (trixie)",
                "python": sys.version.split()[0], "kmodcompat": _version(self.env), "commit": _commit(),
                "median": med, "median_ratio": ratios,
                "ratios": self.ratios, "runs": self.runs}


def _version(env: dict) -> str:
    """``kmodcompat --version`` as the runs see it (it says which parser is active)."""
    p = subprocess.run([sys.executable, "-m", "kmodcompat", "--version"], capture_output=True, text=True, env=env)
    return p.stdout.strip()


def _commit() -> str | None:
    p = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def render(doc: dict) -> str:
    lines = [f"tree {doc['tree']} ({doc['krel']}, {doc['modules']} modules), old tree {doc['old_tree']}, "
             f"{doc['cores']} cores, {doc['rounds']} rounds; medians of per-round ratios against kmod {doc['kmod']}",
             f"{doc.get('kmodcompat', '')} (commit {doc.get('commit')})"]
    for g, runs in doc["median"].items():
        lines.append(f"\n{g}")
        lines.append(f"  {'run':<22}{'wall s':>9}{'cpu s':>9}{'RSS MiB':>9}{'ratio':>9}")
        for n, m in runs.items():
            r = doc["median_ratio"].get(g, {}).get(n)
            lines.append(f"  {n:<22}{m['wall']:>9.2f}{m['cpu']:>9.2f}{m['rss_mib']:>9.0f}"
                         + (f"{r:>8.2f}x" if r is not None else ""))
        for n, r in doc["median_ratio"].get(g, {}).items():
            if n not in runs:
                lines.append(f"  {n:<49}{r:>8.2f}x")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", default="trixie-amd64", help="a tree of tests/oracle.py TREES (fetched if missing)")
    ap.add_argument("--old-tree", default="bookworm-amd64", help="diff's old tree ('' : no diff group)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated groups of {', '.join(GROUPS)}")
    ap.add_argument("--json", default=None, help="write the results here (and the table beside it, .txt)")
    args = ap.parse_args()
    groups = [g for g in args.only.split(",") if g]
    unknown = set(groups) - set(GROUPS)
    if unknown:
        ap.error(f"unknown group(s): {', '.join(sorted(unknown))}")
    bench = Bench(args)
    try:
        doc = bench.run(groups)
    finally:
        shutil.rmtree(bench.work, ignore_errors=True)
    text = render(doc)
    sys.stdout.write(text)
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        Path(args.json).with_suffix(".txt").write_text(text)


if __name__ == "__main__":
    main()
