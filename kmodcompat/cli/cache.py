"""``kmodcompat cache info|clear|prune``: the cache of parsed records, validate verdicts and finished reports and diffs.

It lives in ``$XDG_CACHE_HOME/kmodcompat``, else ``~/.cache/kmodcompat``.

Records are kept by the content of each module file (a copied or moved tree
finds them), at most 512 MiB and 30 days unused by default: after a run that
wrote to it, the least recently used records go first. ``prune`` applies
other limits now (``--max-size 100M``, ``--max-age 7``, in days). An unusable
cache location is one line on stderr ("record cache unavailable"), never a
failure of the command; ``clear`` moves a damaged database aside.
"""

from __future__ import annotations

import os
import re
import sys
import time

from ..cache.store import DB_ERRORS
from ..cache import DEFAULT_MAX_AGE_DAYS, DEFAULT_MAX_BYTES, RecordCache, default_path, prune, records_version
from ..cache.keys import verdict_prefix
from .output import shown
from .helptext import CommandHelp, command_parser

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


HELP = CommandHelp(
    summary="show, prune or clear the cache of parsed records, reports and diffs",
    description="""
Every command that reads module files (report, views, simulate, diff, depmod, exports, graph, symvers,
loadable, modinfo, modversions) keeps what it parsed, validate its verdicts, and report and diff their
finished results, in a cache in $XDG_CACHE_HOME/kmodcompat (else ~/.cache/kmodcompat), so that an unchanged
tree is read again without parsing a module (and reported or diffed again without reading one); --no-cache,
in each of them, neither reads nor writes it. Records are kept by the content of each module file, found
by a stat check first and by the file's digest when the stat does not prove it unchanged (a copied or
moved tree finds them), at most 512 MiB and 30 days unused by default: after a run
that wrote to the cache, the least recently used records go first.

info says what the cache holds (sizes in binary units), per module directory. prune applies other limits
now (--max-size, --max-age), and forgets the files that are gone or changed since they were read (a deleted
copy of a tree; eviction after a run does so too, daily). clear empties it, and moves a damaged database
aside. An unusable cache location is one line on stderr ("record cache unavailable"), never a failure of
the command that wanted it.
""",
    examples=(
        ("kmodcompat cache info", "Show the cache's size and what it holds."),
        ("kmodcompat cache prune --max-size 100M --max-age 7", "Keep at most 100 MiB, used in the last week."),
    ),
    exit_status="0 on success, 2 for a usage error.",
)


def add_parser(sub) -> None:
    p = command_parser(sub, "cache", HELP)
    p.add_argument("action", choices=("info", "clear", "prune"), help="what to do (see above)")
    p.add_argument("--max-size", type=_size, default=None, metavar="SIZE",
                   help=f"prune: keep at most SIZE (K, M, G suffixes; default {human(DEFAULT_MAX_BYTES)})")
    p.add_argument("--max-age", type=float, default=None, metavar="DAYS",
                   help=f"prune: drop records unused for DAYS (default {DEFAULT_MAX_AGE_DAYS})")
    p.set_defaults(run=run)


def human(n: float) -> str:
    """Bytes in binary units: ``512 B``, ``12.3 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if m is None:
        raise __import__("argparse").ArgumentTypeError(f"not a size: {text!r} (e.g. 500M, 2G)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def run(args) -> int:
    path = default_path()
    try:
        cache = RecordCache(path, repair=args.action == "clear")
    except OSError as e:
        print(f"kmodcompat: record cache unavailable ({shown(e)}); parsing everything", file=sys.stderr)
        return 0
    with cache:
        try:
            _act(args, cache, path)
        except DB_ERRORS as e:  # damage found while reading (the next run moves it aside; `clear` does now)
            print(f"kmodcompat: record cache damaged ({shown(e)}); `kmodcompat cache clear` moves it aside",
                  file=sys.stderr)
    return 0


def _act(args, cache: RecordCache, path: str) -> None:
    store = cache.store
    if store is not None:
        if args.action == "clear":
            records, reports = cache.clear()
            print(f"{shown(path)}: {records:,} record(s) and {reports:,} finished report(s) and diff(s) removed"
                  + "".join(f"; {shown(name)} deleted" for name in cache.removed))
        elif args.action == "prune":
            n, freed = prune(store, cache.version, args.max_size if args.max_size is not None else DEFAULT_MAX_BYTES,
                             args.max_age if args.max_age is not None else DEFAULT_MAX_AGE_DAYS)
            print(f"{shown(path)}: {n:,} record(s) evicted ({human(freed)})")
            _info(cache, path)
        else:
            _info(cache, path)


def _info(cache: RecordCache, path: str) -> None:
    if cache.store is None:  # went away (damaged, unusable): main() said so already
        return
    db = cache.store.conn
    records, reports = cache.counts()
    size = sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))
    prefix = verdict_prefix()
    # Rows of this kmodcompat: parse results under its records version, validate verdicts under its prefix.
    current = "(r.version = ? OR substr(r.version, 1, ?) = ?)"
    params = (cache.version, len(prefix), prefix)
    verdicts, stale = db.execute(f"SELECT COALESCE(SUM(r.version != ? AND {current}), 0), "
                                 f"COALESCE(SUM(NOT {current}), 0) FROM records r",
                                 (cache.version, *params, *params)).fetchone()
    print(f"{shown(path)}: {human(size)}, {records - verdicts:,} record(s)"
          + (f" ({stale:,} of another kmodcompat version, evicted first)" if stale else "")
          + f", {verdicts:,} validate verdict(s), {reports:,} finished report(s) and diff(s); records version "
            f"{records_version()}")
    legacy = os.path.join(os.path.dirname(path), "records.sqlite")
    if os.path.exists(legacy):
        print(f"{shown(legacy)}: an older cache (pickles: never read), {human(os.path.getsize(legacy))}; "
              "`kmodcompat cache clear` deletes it")
    print(f"limits: {human(DEFAULT_MAX_BYTES)}, {DEFAULT_MAX_AGE_DAYS} days unused (least recently used evicted "
          "first; `kmodcompat cache prune` applies them now)")
    rows = db.execute("SELECT f.tree, COUNT(DISTINCT f.path), COUNT(r.digest) FILTER (WHERE r.version = ?), "
                      "COUNT(r.digest) FILTER (WHERE r.version != ?), COALESCE(SUM(length(r.blob)), 0), MAX(r.used) "
                      f"FROM files f LEFT JOIN records r ON r.digest = f.digest AND {current} "
                      "GROUP BY f.tree ORDER BY MAX(r.used) DESC", (cache.version, cache.version, *params)).fetchall()
    if not rows:
        return
    print(f"{'files':>8} {'records':>8} {'verdicts':>8} {'size':>10}  {'last used':16}  tree")
    for tree, files, recs, verds, nbytes, used in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(used)) if isinstance(used, int) else "-"
        name = os.fsdecode(tree) if isinstance(tree, bytes) else str(tree)
        print(f"{files:8,} {recs:8,} {verds:8,} {human(nbytes):>10}  {when:16}  {shown(name)}")
