"""Parse many module files at once, across processes.

Workers return finished records (or the read error), never ELF objects, so
what crosses the process boundary is small and picklable. Results come back
in input order, and a module that fails never stops the others.
"""

from __future__ import annotations

import errno
import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import TypeVar

from ..errors import ModuleReadError
from .module import parse_module
from ..records import ModuleRecord

Parsed = ModuleRecord | ModuleReadError

#: Below this many files a pool costs more than it saves.
_MIN_PARALLEL = 32

#: Seconds one module may take to parse in a scan. The largest real module
#: (amdgpu, 40 MiB) takes about a second; a file near this limit is hostile,
#: and is reported as unreadable instead of stalling the scan.
PARSE_TIMEOUT = 60.0


class DeadlineExceeded(Exception):
    """Raised inside a :func:`deadline` block when its time is up."""


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`DeadlineExceeded` in the block after ``seconds`` (wall clock), via SIGALRM.

    Only the main thread receives signals, so elsewhere (and for ``None``) this
    does nothing. An outer deadline is restored, with its remaining time, on exit.
    """
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expired(signum: int, frame: object) -> None:
        raise DeadlineExceeded(f"took longer than {seconds:g} s")

    started = time.monotonic()
    old_handler = signal.signal(signal.SIGALRM, _expired)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay:
            left = old_delay - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), old_interval)


def parse_one(path: str, timeout: float | None = PARSE_TIMEOUT) -> Parsed:
    try:
        with deadline(timeout):
            return parse_module(path)
    except ModuleReadError as e:
        return e
    except DeadlineExceeded as e:
        return ModuleReadError(path, f"parsing {e}", "timeout", errno.ETIMEDOUT, transient=True)
    except Exception as e:  # a parser bug must not end a tree scan; it is reported per file
        return ModuleReadError(path, f"internal error: {type(e).__name__}: {e}".splitlines()[0], "internal-error")


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
    return map_files(parse_one, paths, jobs, progress)


T = TypeVar("T")


def _run_chunk(worker: Callable[[str], T], paths: list[str]) -> list[T]:
    return [worker(p) for p in paths]


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while results pile up.

    A tree's records are over a million objects, made in one go and free of
    cycles. With the collector on, its passes over the growing heap cost more
    than building them: on bookworm amd64 it was 1.1 s of the 1.5 s the parent
    spent unpickling the records, and a third of a one-process parse.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _start_worker() -> None:
    # A forked worker inherits the parent's heap and its paused collector. Frozen, the
    # inherited objects are never traversed (nor copied on write by the collector's
    # bookkeeping); the worker's own garbage is collected as usual.
    gc.freeze()
    gc.enable()


def worker_pool(jobs: int) -> ProcessPoolExecutor:
    """The worker processes of a scan (and of views.py's views), forked where the platform has it.

    Forked: no interpreter start and re-import per worker (Python 3.14 makes
    forkserver the default on Linux), and views.py's workers find the records
    already in their memory.
    """
    context = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
    return ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_start_worker)


def map_files(worker: Callable[[str], T | ModuleReadError], paths: Sequence[str], jobs: int | None = None,
              progress: Callable[[int, int], None] | None = None) -> list[T | ModuleReadError]:
    """``worker(path)`` for every path, with ``jobs`` processes, in input order.

    ``worker`` is a picklable function that returns a result or a
    ModuleReadError and never raises. A worker process that dies (a crash
    in a C decoder, the OOM killer) costs only its own files: unfinished
    chunks run again, each in a fresh process, and a file that kills its
    process alone is reported as unreadable.
    """
    with gc_paused():
        return _map_files(worker, paths, default_jobs() if jobs is None else max(1, jobs), progress)


def _map_files(worker: Callable[[str], T | ModuleReadError], paths: Sequence[str], jobs: int,
               progress: Callable[[int, int], None] | None) -> list[T | ModuleReadError]:
    total = len(paths)
    if jobs == 1 or total < _MIN_PARALLEL:
        out = []
        for i, p in enumerate(paths, 1):
            out.append(worker(p))
            if progress and (i % 64 == 0 or i == total):
                progress(i, total)
        return out
    # Chunks small enough to balance the large modules (amdgpu, i915) across
    # workers, large enough to keep the pickling overhead low.
    size = max(8, min(64, total // (jobs * 8) or 1))
    chunks = [list(paths[i:i + size]) for i in range(0, total, size)]
    results: list[list[T | ModuleReadError] | None] = [None] * len(chunks)
    done = 0
    try:
        with worker_pool(jobs) as pool:
            futures = {pool.submit(_run_chunk, worker, chunk): i for i, chunk in enumerate(chunks)}
            for fut in as_completed(futures):
                i = futures[fut]
                results[i] = fut.result()
                done += len(chunks[i])
                if progress:
                    progress(done, total)
    except BrokenProcessPool:
        pass  # the chunks still without results run again below, one process each
    for i, chunk in enumerate(chunks):
        if results[i] is None:
            results[i] = _isolated(worker, chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return [r for part in results if part is not None for r in part]


def _isolated(worker: Callable[[str], T | ModuleReadError], paths: list[str]) -> list[T | ModuleReadError]:
    """Run ``paths`` in a fresh process; if it dies, each path alone, to find the one that kills it."""
    try:
        with worker_pool(1) as pool:
            return pool.submit(_run_chunk, worker, paths).result()
    except BrokenProcessPool:
        if len(paths) > 1:
            return [r for p in paths for r in _isolated(worker, [p])]
    return [ModuleReadError(paths[0], "its parser process died (a crash, or the memory limit)", "internal-error",
                            errno.EIO, transient=True)]


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
