#!/usr/bin/env python3
"""Benchmark: the full `kmodcompat report` against real `depmod` on the same tree, same run.

    python3 bench/bench.py [--rounds 5] [--tree trixie-amd64] [--json bench/results.json]

Each round runs, in alternation: kmod 30's depmod, kmod 34.2's depmod (each
writing into its own scratch root whose module directories are symlinks to
the tree), `kmodcompat report` cold (--no-cache, all cores), warm (cache
filled by an untimed first run: the finished report is served), warm with
one module file rewritten (same bytes, new inode: the report is recomputed
from cached records but one, the case of a rebuilt out-of-tree module),
and cold on one core (-j 1); and the floors under a cold report (bench/floor.py:
the interpreter and imports alone; every module decompressed once; the tree
parsed into records, all cores, no analysis), which show how much of the
ratio is left to the analysis. With ``--liblzma FILE`` one more cold run loads
that liblzma build (e.g. the one kmod 34.2 runs with) instead of the
system's: on .ko.xz trees the decoder build alone changes the time a lot, and
this puts the same decoder on both sides of the ratio (the decompression floor
is timed with it too). With ``--pure-python`` the cold report and the parse floor
are timed once more per round with the pure-Python parser (KMODCOMPAT_ACCEL=0):
the compiled parser's gain, before and after in the same rounds. Every
command is timed by GNU time (wall, user+sys CPU, peak RSS of the process
tree's largest member). The machine is shared and noisy: what matters is
the median ratio kmodcompat/depmod, printed per pair. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests import oracle  # noqa: E402


def timed(argv: list[str], env: dict | None = None, ok: tuple[int, ...] | None = (0, 1)) -> dict:
    """Run under /usr/bin/time; wall seconds, CPU seconds, peak RSS (MiB). ``ok``: the exit statuses that
    are not a failure (None: any, e.g. diff's abidiff-style bits)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        p = subprocess.run(["/usr/bin/time", "-o", t.name, "-f", "%e %U %S %M", *argv],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        wall, user, sys_, rss = t.read().split()[-4:]
    if ok is not None and p.returncode not in ok:
        raise SystemExit(f"{argv[0]} failed ({p.returncode}): {p.stderr.decode()[-500:]}")
    return {"wall": float(wall), "cpu": float(user) + float(sys_), "rss_mib": int(rss) / 1024}


def medians(runs: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """Each run's median wall, CPU and peak RSS over the rounds."""
    return {k: {m: statistics.median(r[m] for r in v) for m in ("wall", "cpu", "rss_mib")} for k, v in runs.items()}


def print_table(med: dict[str, dict[str, float]], ratios: dict[str, float]) -> None:
    print(f"{'run':<26}{'wall s':>10}{'cpu s':>10}{'peak RSS MiB':>14}")
    for k, m in med.items():
        print(f"{k:<26}{m['wall']:>10.2f}{m['cpu']:>10.2f}{m['rss_mib']:>14.0f}")
    for k, r in ratios.items():
        print(f"{k:<40} {r:6.2f}x")


def report_root(root: Path, krel: str, dst: Path) -> tuple[Path, Path]:
    """A root for the report runs: the tree's directories linked, one module really copied.

    The copy goes to ``updates/`` (which depmod's default search puts first, so
    it stands in for the original) and can be rewritten between runs;
    ``boot/`` and ``usr/`` are linked so the kernel's Module.symvers and
    System.map are found as in the tree itself.
    """
    moddir = oracle.depmod_scratch_root(root, dst)
    for top in ("boot", "usr"):
        if (root / top).exists():
            (dst / top).symlink_to((root / top).resolve())
    order = (root / "lib" / "modules" / krel / "modules.order").read_text().split()
    src = next(p for p in (Path(m) for m in oracle.tree_modules(root)) if "/kernel/" in str(p)
               and p.name.split(".")[0] + ".ko" == Path(order[0]).name)
    copy = moddir / "updates" / "bench" / src.name
    copy.parent.mkdir(parents=True)
    rewrite(copy, src.read_bytes())
    return dst, copy


def rewrite(path: Path, data: bytes | None = None) -> None:
    """Write ``path`` anew (new inode), dated in the past so caches may trust its stat."""
    data = path.read_bytes() if data is None else data
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.utime(tmp, (1_600_000_000, 1_600_000_000))
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", default="trixie-amd64", help="a tree of tests/oracle.py TREES (fetched if missing)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--pure-python", action="store_true", help="also time the cold report and the parse floor with "
                    "the pure-Python parser (KMODCOMPAT_ACCEL=0) in the same rounds: before/after the compiled one")
    ap.add_argument("--liblzma", default=None, metavar="FILE", help="a liblzma.so.5 for one more cold run, e.g. "
                    "/opt/kmod-34/root/usr/lib/x86_64-linux-gnu/liblzma.so.5 (kmod 34.2's)")
    args = ap.parse_args()
    root = oracle.tree_root(args.tree, fetch=True)
    krel = oracle.tree_info(root)["krel"]
    work = Path(tempfile.mkdtemp(prefix="kmc-bench-"))
    cache_home = work / "xdg"
    # kmodcompat as installed: its bytecode compiled once (by the untimed first run), not on every
    # run, whatever PYTHONDONTWRITEBYTECODE this shell has; the bytecode goes to the scratch directory.
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
           "XDG_CACHE_HOME": str(cache_home), "PYTHONPYCACHEPREFIX": str(work / "pycache")}
    empty_conf = work / "depmod.d"
    empty_conf.mkdir()
    kmc_root, changed = report_root(root, krel, work / "kmc")
    report = [sys.executable, "-m", "kmodcompat", "report", "-b", str(kmc_root), krel, "--out", str(work / "out"),
              "--fail-on", "none"]
    floor = [sys.executable, str(REPO / "bench" / "floor.py")]
    scratch = {}
    depmods = {}
    for v in ("kmod30", "kmod34"):
        scratch[v] = work / v
        oracle.depmod_scratch_root(root, scratch[v])
        depmods[v] = oracle.kmod_argv(v, "depmod") + ["-C", str(empty_conf), "-b", str(scratch[v]), krel]
    timed(report, env)  # untimed: fills the cache for the warm runs
    runs: dict[str, list[dict]] = {k: [] for k in ("depmod-kmod30", "depmod-kmod34", "report-cold", "report-warm",
                                                   "report-1-changed", "report-cold-1core",
                                                   "floor-startup", "floor-decompress", "floor-parse")}
    if args.liblzma:
        # Only that one library: the directory of another distribution's libraries would bring its libc along.
        lib_dir = work / "liblzma"
        lib_dir.mkdir()
        (lib_dir / "liblzma.so.5").symlink_to(Path(args.liblzma).resolve())
        xz_env = {**env, "LD_LIBRARY_PATH": str(lib_dir)}
        loaded = subprocess.run([sys.executable, "-c", "import lzma; print(next(line.split()[-1] for line in "
                                 "open('/proc/self/maps') if 'liblzma' in line))"], env=xz_env, check=True,
                                capture_output=True, text=True).stdout.strip()
        print(f"report-cold-same-xz loads {loaded}", file=sys.stderr)
        runs["report-cold-same-xz"] = []
        runs["floor-decompress-same-xz"] = []
    if args.pure_python:
        pure_env = {**env, "KMODCOMPAT_ACCEL": "0"}
        runs["report-cold-pure-python"] = []
        runs["floor-parse-pure-python"] = []
    for i in range(args.rounds):
        runs["depmod-kmod30"].append(timed(depmods["kmod30"]))
        runs["report-cold"].append(timed(report + ["--no-cache"], env))
        runs["depmod-kmod34"].append(timed(depmods["kmod34"]))
        runs["report-warm"].append(timed(report, env))
        rewrite(changed)
        runs["report-1-changed"].append(timed(report, env))
        runs["report-cold-1core"].append(timed(report + ["--no-cache", "-j", "1"], env))
        if args.pure_python:
            runs["report-cold-pure-python"].append(timed(report + ["--no-cache"], pure_env))
        if args.liblzma:
            runs["report-cold-same-xz"].append(timed(report + ["--no-cache"], xz_env))
            runs["floor-decompress-same-xz"].append(timed(floor + ["decompress", str(kmc_root), krel], xz_env))
        runs["floor-startup"].append(timed(floor + ["startup"], env))
        runs["floor-decompress"].append(timed(floor + ["decompress", str(kmc_root), krel], env))
        runs["floor-parse"].append(timed(floor + ["parse", str(kmc_root), krel], env))
        if args.pure_python:
            runs["floor-parse-pure-python"].append(timed(floor + ["parse", str(kmc_root), krel], pure_env))
        print(f"round {i + 1}/{args.rounds} done", file=sys.stderr)
    med = medians(runs)
    ratios = {f"{a} / {b}": med[a]["wall"] / med[b]["wall"]
              for a in runs if a.startswith(("report-", "floor-"))
              for b in ("depmod-kmod30", "depmod-kmod34")}
    parser = subprocess.run([sys.executable, "-m", "kmodcompat", "--version"], env=env, capture_output=True,
                            text=True).stdout.splitlines()[-1]
    print(f"tree {args.tree} ({krel}), {len(oracle.tree_modules(root))} modules, {os.cpu_count()} cores, "
          f"{args.rounds} rounds (medians); {parser}")
    print_table(med, ratios)
    if args.json:
        Path(args.json).write_text(json.dumps({"tree": args.tree, "krel": krel, "cores": os.cpu_count(),
                                               "parser": parser,
                                               "rounds": args.rounds, "median": med, "ratios": ratios,
                                               "runs": runs}, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
