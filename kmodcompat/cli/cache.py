"""``kmodcompat cache clear|info``: the cache of parsed records and finished reports (``$XDG_CACHE_HOME/kmodcompat``, else ``~/.cache/kmodcompat``)."""

from __future__ import annotations

import os

from ..cache import CACHE_VERSION, RecordCache, default_path


def add_parser(sub) -> None:
    p = sub.add_parser("cache", help="show or clear the cache of parsed records and reports",
                       description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("clear", "info"))
    p.set_defaults(run=run)


def run(args) -> int:
    path = default_path()
    with RecordCache(path) as cache:
        if args.action == "clear":
            records, reports = cache.clear()
            print(f"{path}: {records} record(s) and {reports} report(s) removed")
        else:
            records, reports = cache.counts()
            size = sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))
            print(f"{path}: {records} record(s), {reports} report(s), {size} bytes, version {CACHE_VERSION}")
    return 0
