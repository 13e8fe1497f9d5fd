"""Views: every consumer's reading of a set of modules, as they are and in every simulated format.

This answers the tree-level questions ("if this tree were built with
extended-only versions, kmod 34.2 would lose N imports in M modules and
depmod -E would print K false warnings") by running each consumer model on
each module, as it is (``as-is``) and re-encoded by
:func:`kmodcompat.simulate.simulate_record` in each format.

Exporter CRCs come from the tree (``expected``: vmlinux's Module.symvers and
the modules' own exports) when known; otherwise each module's own CRCs stand
in for them, which isolates what the format does.
"""

from __future__ import annotations

from collections import Counter
import multiprocessing
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .consumers import CONSUMERS, standard
from .consumers.base import ConsumerView, Counts, Reading, exporter_crcs
from .records import ModuleRecord
from .parse.scan import default_jobs, worker_pool
from .simulate import FORMATS, BuildError, Simulation
from .tally import counting, module_tally

AS_IS = "as-is"
#: ``summarize_counts(path, counts, view)``: see :func:`compute_views`.
CountsSummarizer = Callable[[str, dict[str, Counts], Callable[[str], ConsumerView]], object]
ALL_FORMATS = (AS_IS,) + FORMATS


@dataclass(frozen=True)
class Totals:
    """One consumer over all modules in one format."""

    format: str
    consumer: str
    modules: int = 0  # modules this format could hold
    not_buildable: int = 0  # modules modpost could not build in this format (too long names, no CRCs)
    versioned_imports: int = 0  # imports with a CRC in the module (its truth)
    visible: int = 0  # import versions the consumer reads
    lost: int = 0  # versioned imports the consumer does not see
    modules_losing: int = 0
    misread: int = 0  # entries read wrongly
    unchecked: int = 0  # imports accepted without a CRC comparison
    messages: int = 0
    false_messages: int = 0  # warnings about a mismatch that is not real
    modules_false: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class ModuleViews:
    path: str
    # format → consumer → view (or the caller's summary of them), or why the format cannot hold the module
    by_format: dict[str, dict[str, ConsumerView] | object | str]


@dataclass(frozen=True)
class ViewsResult:
    formats: tuple[str, ...]
    consumers: tuple[str, ...]
    totals: tuple[Totals, ...]
    modules: tuple[ModuleViews, ...] = ()  # kept only when asked for (details)
    tree_crcs: bool = False  # exporter CRCs came from the tree, not the modules themselves

    def total(self, fmt: str, consumer: str) -> Totals:
        return next(t for t in self.totals if t.format == fmt and t.consumer == consumer)


def compute_views(entries: Iterable[tuple[str, ModuleRecord]], consumers: Sequence[str] | None = None,
                  formats: Sequence[str] = (AS_IS,), expected: Mapping[str, int] | None = None,
                  keep_formats: Sequence[str] = (), jobs: int | None = 1,
                  summarize: Callable[[str, dict[str, ConsumerView]], object] | None = None,
                  summarize_counts: CountsSummarizer | None = None,
                  progress: Callable[[int, int], None] | None = None, vermagic: str | None = None) -> ViewsResult:
    """Run ``consumers`` on every (display path, record) in every format of ``formats``.

    ``vermagic``: the kernel's VERMAGIC_STRING, which the loader models compare each module's with
    (consumers/kernel.py check_modinfo); None: unknown, not compared.

    ``keep_formats``: formats whose per-module views are kept in
    ``ViewsResult.modules`` (the totals always cover every format);
    ``summarize(path, views)``, a module-level function, replaces each kept
    format's views by what it returns (computed where the views are, so only
    the summary travels between processes). ``summarize_counts(path, counts,
    view)``, if given, summarizes instead a module as built that tally.py can
    count, from each consumer's :class:`~kmodcompat.consumers.base.Counts` and
    ``view(consumer)``, that model's full view (it returns None when the full
    views are needed after all); it must agree with ``summarize``. ``jobs`` > 1
    (None: all cores) splits the modules over worker processes; the result is
    the same as with one. ``progress(done, total)`` is called as parts of the work finish.
    """
    with views_started(entries, consumers, formats, expected, keep_formats, jobs, summarize,
                       summarize_counts, progress, vermagic) as result:
        return result()


class Started:
    """What :func:`views_started` gives the caller: call it for the views; :meth:`aside` for the result of
    the ``aside`` function it was given."""

    def __init__(self, result: Callable[[], ViewsResult], aside: Callable[[], Any]):
        self._result = result
        self.aside = aside

    def __call__(self) -> ViewsResult:
        return self._result()


@contextmanager
def views_started(entries: Iterable[tuple[str, ModuleRecord]], consumers: Sequence[str] | None = None,
                  formats: Sequence[str] = (AS_IS,), expected: Mapping[str, int] | None = None,
                  keep_formats: Sequence[str] = (), jobs: int | None = 1,
                  summarize: Callable[[str, dict[str, ConsumerView]], object] | None = None,
                  summarize_counts: CountsSummarizer | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  vermagic: str | None = None, aside: Callable[[], Any] | None = None) -> Iterator[Started]:
    """:func:`compute_views` begun in worker processes: the caller does other work, then calls what it
    is given for the result. With one process the views are computed in that call.

    ``aside``: other work of the caller's over the same records (small result), run by the first worker
    free, before the views, so that the caller's own share of the work does not wait for it; in this
    process, when it is alone."""
    entries = list(entries)
    args = (consumers, tuple(formats), expected, tuple(keep_formats), summarize, summarize_counts, True, vermagic)
    jobs = default_jobs() if jobs is None else max(1, jobs)
    in_process = aside if aside is not None else (lambda: None)
    if not (jobs > 1 and len(entries) >= 64 and "fork" in multiprocessing.get_all_start_methods()):
        def alone() -> ViewsResult:
            result = _compute(entries, *args)
            if progress is not None:
                progress(1, 1)
            return result

        yield Started(alone, in_process)
        return
    # Forked workers inherit the records copy-on-write: a task is an index
    # range, and only totals and (summarized) per-module views come back. The
    # workers are forked at the first submit, before the caller goes on.
    global _SHARED
    _SHARED = (entries, args, aside)
    size = -(-len(entries) // (jobs * 4))
    ranges = [(i, min(i + size, len(entries))) for i in range(0, len(entries), size)]
    pool = worker_pool(jobs)
    try:
        side = pool.submit(_aside) if aside is not None else None
        parts = [pool.submit(_views_range, r) for r in ranges]
        if progress is not None:
            # Called in the pool's thread as each part comes back, while the caller works on.
            lock, done = threading.Lock(), [0]

            def tick(_) -> None:
                with lock:
                    done[0] += 1
                    progress(done[0], len(parts))

            for part in parts:
                part.add_done_callback(tick)
        yield Started(lambda: _merge([p.result() for p in parts]),
                      in_process if side is None else side.result)
    finally:
        pool.shutdown(cancel_futures=True)
        _SHARED = None


_SHARED: tuple | None = None


def _views_range(bounds: tuple[int, int]) -> ViewsResult:
    assert _SHARED is not None  # set by views_started() before the workers fork
    entries, args, _ = _SHARED
    return _compute(entries[bounds[0]:bounds[1]], *args)


def _aside() -> Any:
    assert _SHARED is not None and _SHARED[2] is not None  # set by views_started() before the workers fork
    return _SHARED[2]()


def _merge(parts: list[ViewsResult]) -> ViewsResult:
    first = parts[0]
    totals = []
    for i, t in enumerate(first.totals):
        same = [p.totals[i] for p in parts]
        numbers = {k: sum(getattr(x, k) for x in same) for k in t.__dataclass_fields__
                   if k not in ("format", "consumer", "verdicts")}
        verdicts: Counter = Counter()
        for x in same:
            verdicts.update(x.verdicts)
        totals.append(Totals(t.format, t.consumer, **numbers, verdicts=dict(sorted(verdicts.items()))))
    modules = tuple(m for p in parts for m in p.modules)
    return ViewsResult(first.formats, first.consumers, tuple(totals), modules, first.tree_crcs)


def _compute(entries, consumers, formats, expected, keep_formats, summarize=None, summarize_counts=None,
             count=True, vermagic=None) -> ViewsResult:
    consumers = tuple(consumers or standard())
    unknown = [c for c in consumers if c not in CONSUMERS]
    if unknown:
        raise ValueError(f"unknown consumer(s): {', '.join(unknown)}; known: {', '.join(CONSUMERS)}")
    bad = [f for f in formats if f not in ALL_FORMATS]
    if bad:
        raise ValueError(f"unknown format(s): {', '.join(bad)}; known: {', '.join(ALL_FORMATS)}")
    readers = [CONSUMERS[c].read for c in consumers]
    simulated = [f for f in formats if f != AS_IS]
    modules: Counter[str] = Counter()  # format → modules it could hold
    versioned: Counter[str] = Counter()  # format → versioned imports of those modules
    not_buildable: Counter[str] = Counter()
    kept: list[ModuleViews] = []
    # Simulated formats whose views are not kept are counted (each consumer's count() on tally.py's
    # tables) where clean tables describe the module;
    # so is the module as built when its tables are what modpost writes, unless its views are kept
    # and its summary needs more than the counts.
    counted = tuple(f for f in simulated if f not in keep_formats) if count else ()
    count_as_built = count and AS_IS in formats and (AS_IS not in keep_formats or summarize_counts is not None)
    # Per format, per consumer (in ``consumers`` order): each module's view as Counts, counted or modelled.
    rows: dict[str, list[list[Counts]]] = {f: [[] for _ in consumers] for f in formats}
    wanted = frozenset(consumers)
    counters = counting(consumers)
    for path, rec in entries:
        truth = exporter_crcs(rec)
        per_format: dict[str, dict[str, ConsumerView] | str] = {}
        summaries: dict[str, object] = {}  # kept formats' summaries made from counts
        done: dict[str, dict[str, Counts] | None] = {}
        # One Reading per module and format: the consumers share what they derive from it.
        reading = Reading(rec, expected if expected is not None else truth, truth, path, expected is not None,
                          vermagic)
        facts = module_tally(rec, truth, expected, vermagic) if counted or count_as_built else None
        simulation: Simulation | None = None
        if facts is not None:
            done = facts.counts(counted, counters)
            built = facts.as_built(counters) if count_as_built else None
            if built is not None:
                done[AS_IS] = built
            # A consumer without a ``count`` is counted from its model's view
            # (Counts.of, as the modelled formats are), on the same record the counts describe.
            for fmt, by_consumer in done.items():
                if by_consumer is not None and not wanted <= by_consumer.keys():
                    if fmt == AS_IS:
                        r = reading
                    else:
                        simulation = simulation or Simulation(rec, expected)
                        r = reading.for_record(simulation.record(fmt))
                    by_consumer.update((c, Counts.of(CONSUMERS[c].read(r))) for c in consumers if c not in by_consumer)
            built = done.pop(AS_IS, None)
            if built is not None:
                built = {c: built[c] for c in consumers}
                if AS_IS not in keep_formats:
                    done[AS_IS] = built
                else:
                    summary = summarize_counts(path, built, lambda c, reading=reading: CONSUMERS[c].read(reading))
                    if summary is not None:
                        done[AS_IS] = built
                        summaries[AS_IS] = summary
        for fmt, by_consumer in done.items():
            if by_consumer is None:
                not_buildable[fmt] += 1
                continue
            modules[fmt] += 1
            versioned[fmt] += len(truth)
            for c, column in zip(consumers, rows[fmt]):
                column.append(by_consumer[c])
        modelled = [f for f in formats if f not in done]
        for fmt in modelled:
            if fmt == AS_IS:
                r = reading
            else:
                simulation = simulation or Simulation(rec, expected)
                try:
                    r = reading.for_record(simulation.record(fmt))
                except BuildError as e:  # NoVersionsError included
                    not_buildable[fmt] += 1
                    per_format[fmt] = str(e)
                    continue
            modules[fmt] += 1
            versioned[fmt] += len(truth)
            views = [read(r) for read in readers]
            for v, column in zip(views, rows[fmt]):
                column.append(Counts.of(v))
            if fmt in keep_formats:
                per_format[fmt] = dict(zip(consumers, views))
        if keep_formats:
            kept_views: dict[str, object] = {}
            for fmt in formats:
                if fmt in summaries:
                    kept_views[fmt] = summaries[fmt]
                elif fmt in keep_formats and fmt in per_format:
                    got = per_format[fmt]
                    kept_views[fmt] = summarize(path, got) if summarize and not isinstance(got, str) else got
            kept.append(ModuleViews(path, kept_views))
    totals = tuple(_totals(f, c, modules[f], not_buildable[f], versioned[f], column)
                   for f in formats for c, column in zip(consumers, rows[f]))
    return ViewsResult(tuple(formats), consumers, totals, tuple(kept), expected is not None)


def _totals(fmt: str, consumer: str, modules: int, not_buildable: int, versioned: int,
            rows: list[Counts]) -> Totals:
    """One consumer's Totals in one format, from each module's view as Counts."""
    lost = [n.lost for n in rows]
    false = [n.false_messages for n in rows]
    return Totals(fmt, consumer, modules, not_buildable, versioned, visible=sum(n.visible for n in rows),
                  lost=sum(lost), modules_losing=len(lost) - lost.count(0), misread=sum(n.misread for n in rows),
                  unchecked=sum(n.unchecked for n in rows), messages=sum(n.messages for n in rows),
                  false_messages=sum(false), modules_false=len(false) - false.count(0),
                  verdicts=dict(sorted(Counter(n.verdict for n in rows).items())))
