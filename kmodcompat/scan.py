"""Parse many module files at once, across processes.

Workers return finished records (or the read error), never ELF objects, so
what crosses the process boundary is small and picklable. Results come back
in input order, and a module that fails never stops the others.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

from .errors import ModuleReadError
from .module import parse_module
from .records import ModuleRecord

Parsed = ModuleRecord | ModuleReadError

#: Below this many files a pool costs more than it saves.
_MIN_PARALLEL = 32


def parse_one(path: str) -> Parsed:
    try:
        return parse_module(path)
    except ModuleReadError as e:
        return e
    except Exception as e:  # a parser bug must not end a tree scan; it is reported per file
        return ModuleReadError(path, f"internal error: {type(e).__name__}: {e}".splitlines()[0], "internal-error")


def _parse_chunk(paths: list[str]) -> list[Parsed]:
    return [parse_one(p) for p in paths]


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parse_many(paths: Sequence[str], jobs: int | None = None,
               progress: Callable[[int, int], None] | None = None) -> list[Parsed]:
    """Parse ``paths`` with ``jobs`` processes (default: all usable cores), in input order.

    ``progress(done, total)`` is called as chunks finish.
    """
    jobs = default_jobs() if jobs is None else max(1, jobs)
    total = len(paths)
    if jobs == 1 or total < _MIN_PARALLEL:
        out = []
        for i, p in enumerate(paths, 1):
            out.append(parse_one(p))
            if progress and (i % 64 == 0 or i == total):
                progress(i, total)
        return out
    # Chunks small enough to balance the large modules (amdgpu, i915) across
    # workers, large enough to keep the pickling overhead low.
    size = max(8, min(64, total // (jobs * 8) or 1))
    chunks = [list(paths[i:i + size]) for i in range(0, total, size)]
    out: list[Parsed] = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for part in pool.map(_parse_chunk, chunks):
            out.extend(part)
            if progress:
                progress(len(out), total)
    return out


def stderr_progress(label: str) -> Callable[[int, int], None] | None:
    """A one-line progress bar on stderr when it is a terminal; None (quiet) otherwise."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show
