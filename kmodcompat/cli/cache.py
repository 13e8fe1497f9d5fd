"""``kmodcompat cache clear|info``: the record cache (``$XDG_CACHE_HOME/kmodcompat``, else ``~/.cache/kmodcompat``)."""

from __future__ import annotations

import os

from ..cache import CACHE_VERSION, RecordCache, default_path


def add_parser(sub) -> None:
    p = sub.add_parser("cache", help="show or clear the parsed-record cache", description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("clear", "info"))
    p.set_defaults(run=run)


def run(args) -> int:
    path = default_path()
    with RecordCache(path) as cache:
        if args.action == "clear":
            n = cache.clear()
            print(f"{path}: {n} record(s) removed")
        else:
            n = cache._db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
            size = sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))
            print(f"{path}: {n} record(s), {size} bytes, version {CACHE_VERSION}")
    return 0
