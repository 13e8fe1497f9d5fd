#!/usr/bin/env python3
"""Long-run fuzzing of kmodcompat's module reader and validator (not run in CI).

    python3 bench/fuzz.py                 # 100,000 mutations over all cores
    python3 bench/fuzz.py -n 5000 -j 2    # a quick run

Each mutation takes a seed module (the fixtures, and real modules from the
Debian trees under $REALTREES when present), mutates it with tests/fuzzing.py
(bit flips, cuts, header and section-header lies, symbol lies, strings without
NUL, extended tables out of step, signature trailers, broken gzip/xz/zstd
streams) and checks the property of tests/test_fuzz.py: parsing gives a record
or ModuleReadError, validating gives a verdict, nothing else escapes. Every
input runs under an alarm (``--timeout``) and every worker under an address-
space limit (``--memory-limit``, so a runaway allocation is a MemoryError, not
a dead machine). An input that raises, hangs or kills its worker is written
to tests/fuzz-corpus/ with a note (seed file, run seed, mutation index, what
happened), where tests/test_fuzz.py replays it.

Mutation i of a run uses ``random.Random(f"{seed}:{i}")``: any input can be
rebuilt from the note. Exit status 0 when nothing broke and the peak RSS
stayed under ``--rss-bound``.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import random
import resource
import sys
import time
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kmodcompat.errors import ModuleReadError  # noqa: E402
from kmodcompat.files.opener import read_module_bytes  # noqa: E402
from kmodcompat.parse.scan import DeadlineExceeded, deadline  # noqa: E402
from tests import fuzzing, oracle  # noqa: E402

CORPUS = REPO / "tests" / "fuzz-corpus"
SHM = Path("/dev/shm") if os.path.isdir("/dev/shm") else Path("/tmp")


@dataclass
class Seed:
    name: str  # where it came from
    data: bytes  # decompressed image, or the raw (compressed) file for stream mutations
    compressed: bool


@dataclass
class BlockResult:
    done: int = 0
    outcomes: Counter = field(default_factory=Counter)
    broken: list[tuple[int, str, str]] = field(default_factory=list)  # (index, kind, saved note path)
    maxrss_kib: int = 0


def load_seeds(real: int, max_seed: int) -> list[Seed]:
    seeds = []
    for p in sorted(glob.glob(str(REPO / "fixtures/modules/*/*.ko*"))):
        rel = os.path.relpath(p, REPO)
        raw = Path(p).read_bytes()
        if raw[:4] != b"\x7fELF" and raw[:1] in (b"\x1f", b"\xfd", b"\x28"):
            seeds.append(Seed(rel, raw, True))
        try:
            data = read_module_bytes(p).data
        except ModuleReadError:
            continue
        if data[:4] == b"\x7fELF":
            seeds.append(Seed(rel, data, False))
    rng = random.Random(0)
    trees = [r for r in (oracle.tree_root(t) for t in sorted(oracle.TREES)) if r is not None]
    for root in trees:
        mods = [p for p in oracle.tree_modules(root) if os.path.getsize(p) <= max_seed]
        for p in rng.sample(mods, min(len(mods), real // max(len(trees), 1))):
            raw = Path(p).read_bytes()
            if raw[:4] != b"\x7fELF":
                seeds.append(Seed(p, raw, True))
            data = read_module_bytes(p).data
            if len(data) <= 4 * max_seed:
                seeds.append(Seed(p, data, False))
    return seeds


_SEEDS: list[Seed] = []
_ARGS: argparse.Namespace
_SKIP: frozenset[int] = frozenset()  # mutations that killed a worker already (recorded, not rerun)


def _init(seeds: list[Seed], args: argparse.Namespace, skip: frozenset[int]) -> None:
    global _SEEDS, _ARGS, _SKIP
    _SEEDS, _ARGS, _SKIP = seeds, args, skip
    limit = args.memory_limit << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def make_input(i: int, run_seed: int) -> tuple[Seed, bytes, bool]:
    """Mutation ``i``: (seed, bytes, as a file?). Deterministic in (run_seed, i)."""
    rng = random.Random(f"{run_seed}:{i}")
    seed = rng.choice(_SEEDS)
    if seed.compressed:
        return seed, fuzzing.break_stream(seed.data, rng), True
    if len(seed.data) <= 65536 and rng.random() < 0.15:
        return seed, fuzzing.mutate_compressed(seed.data, rng), True
    return seed, fuzzing.mutate(seed.data, rng), False


def run_block(start: int, stop: int) -> BlockResult:
    res = BlockResult()
    for i in range(start, stop):
        if i in _SKIP:
            continue
        seed, data, as_file = make_input(i, _ARGS.seed)
        inflight = SHM / f"kmc-fuzz-{os.getpid()}-{i}.ko"
        inflight.write_bytes(data)  # left behind if this input kills the process
        try:
            with deadline(_ARGS.timeout):
                parsed, verdict = fuzzing.check_file(str(inflight)) if as_file else fuzzing.check_image(data)
            res.outcomes["parse-ok" if not isinstance(parsed, ModuleReadError) else "parse-refused"] += 1
            res.outcomes["valid" if getattr(verdict, "valid", False) else "invalid-or-unreadable"] += 1
        except DeadlineExceeded:
            res.broken.append((i, "hang", save(data, seed, i, f"hang: no result within {_ARGS.timeout:g} s")))
        except Exception as e:  # noqa: BLE001 -- anything escaping the property is what we hunt
            what = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            tb = "".join(traceback.format_exception(e)[-6:])
            res.broken.append((i, "exception", save(data, seed, i, f"exception: {what}\n{tb}")))
        inflight.unlink()
        res.done += 1
    res.maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return res


def kills_a_worker(index: int, seeds: list[Seed], args: argparse.Namespace) -> bool:
    """Run mutation ``index`` alone in a fresh worker: does it kill it?"""
    try:
        with ProcessPoolExecutor(1, initializer=_init, initargs=(seeds, args, frozenset())) as pool:
            pool.submit(run_block, index, index + 1).result()
    except BrokenProcessPool:
        return True
    finally:
        for f in SHM.glob(f"kmc-fuzz-*-{index}.ko"):
            f.unlink(missing_ok=True)
    return False


def save(data: bytes, seed: Seed, index: int, what: str, run_seed: int | None = None) -> str:
    digest = hashlib.sha1(data).hexdigest()[:16]
    kind = what.split(":", 1)[0]
    path = CORPUS / f"fuzz-{kind}-{digest}.ko"
    path.write_bytes(data)
    run_seed = _ARGS.seed if run_seed is None else run_seed
    path.with_name(path.name + ".txt").write_text(
        f"origin: bench/fuzz.py --seed {run_seed}, mutation {index}\nseed file: {seed.name}\n{what}\n")
    return str(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--mutations", type=int, default=100_000)
    ap.add_argument("-j", "--jobs", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--seed", type=int, default=1, help="run seed (mutation i uses Random(f'{seed}:{i}'))")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per input before it counts as a hang")
    ap.add_argument("--memory-limit", type=int, default=3072, metavar="MIB",
                    help="address-space limit per worker (RLIMIT_AS)")
    ap.add_argument("--rss-bound", type=int, default=1024, metavar="MIB", help="peak RSS the run must stay under")
    ap.add_argument("--real", type=int, default=300, help="real modules to sample from the trees present")
    ap.add_argument("--max-seed", type=int, default=512 << 10, metavar="BYTES",
                    help="largest real module file used as a seed")
    ap.add_argument("--block", type=int, default=250, help="mutations per task")
    args = ap.parse_args()

    seeds = load_seeds(args.real, args.max_seed)
    global _SEEDS, _ARGS
    _SEEDS, _ARGS = seeds, args  # the parent rebuilds crashing inputs' seeds for their notes
    print(f"{len(seeds)} seeds ({sum(s.compressed for s in seeds)} compressed streams), "
          f"{args.mutations} mutations, {args.jobs} workers", flush=True)
    CORPUS.mkdir(parents=True, exist_ok=True)
    blocks = [(i, min(i + args.block, args.mutations)) for i in range(0, args.mutations, args.block)]
    total = BlockResult()
    started = time.monotonic()
    pending = list(blocks)
    skip: set[int] = set()
    while pending:
        try:
            with ProcessPoolExecutor(args.jobs, initializer=_init, initargs=(seeds, args, frozenset(skip))) as pool:
                futures = {pool.submit(run_block, a, b): (a, b) for a, b in pending}
                for fut in as_completed(futures):
                    r = fut.result()
                    pending.remove(futures[fut])
                    total.done += r.done
                    total.outcomes.update(r.outcomes)
                    total.broken += r.broken
                    total.maxrss_kib = max(total.maxrss_kib, r.maxrss_kib)
                    if total.done % 5000 < args.block:
                        print(f"  {total.done}/{args.mutations} mutations, {len(total.broken)} broken, "
                              f"{time.monotonic() - started:.0f} s", flush=True)
        except BrokenProcessPool:
            # A worker died (signal, OOM): the input it was on is still in its in-flight file.
            # The pool stops every worker when one dies, so an in-flight input is only a suspect
            # until it kills a process of its own again.
            for f in SHM.glob("kmc-fuzz-*-*.ko"):
                index, data = int(f.stem.rsplit("-", 1)[1]), f.read_bytes()
                f.unlink()
                if kills_a_worker(index, seeds, args):
                    note = save(data, make_input(index, args.seed)[0], index,
                                "crash: the worker process died on this input", args.seed)
                    total.broken.append((index, "crash", note))
                    skip.add(index)
            print("  a worker died; restarting the pool for the remaining blocks", flush=True)
    elapsed = time.monotonic() - started
    kinds = Counter(kind for _, kind, _ in total.broken)
    peak = max(total.maxrss_kib, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) >> 10
    print(f"mutations: {total.done}")
    print(f"uncaught exceptions: {kinds['exception']}, hangs: {kinds['hang']}, worker crashes: {kinds['crash']}")
    print(f"peak RSS of a worker: {peak} MiB (bound {args.rss_bound} MiB)")
    print(f"time: {elapsed:.0f} s ({total.done / max(elapsed, 1e-9):.0f} mutations/s)")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(total.outcomes.items())))
    for i, kind, note in total.broken[:20]:
        print(f"  #{i} {kind}: {note}")
    return 0 if not total.broken and peak <= args.rss_bound else 1


if __name__ == "__main__":
    sys.exit(main())
