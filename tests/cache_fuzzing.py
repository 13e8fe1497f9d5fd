"""Corrupting a cache database, for tests/test_cache_hostile.py (bounded) and bench/fuzz_cache.py (long runs)."""

from __future__ import annotations

import random

PAGE = 4096
KINDS = ("bytes", "page", "truncate", "zeroes", "swap")


def corrupt(data: bytearray, rng: random.Random) -> str:
    """Corrupt ``data`` (a database file) in place, one of :data:`KINDS`; returns the kind."""
    kind = rng.choice(KINDS)
    pages = max(1, len(data) // PAGE)
    if kind == "bytes":
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == "page":
        p = rng.randrange(pages)
        data[p * PAGE:(p + 1) * PAGE] = rng.randbytes(PAGE)
    elif kind == "truncate":
        del data[rng.randrange(len(data)):]
    elif kind == "zeroes":
        p, n = rng.randrange(pages), rng.randint(1, 3)
        data[p * PAGE:(p + n) * PAGE] = bytes(len(data[p * PAGE:(p + n) * PAGE]))
    else:
        a, b = rng.randrange(pages), rng.randrange(pages)
        pa, pb = bytes(data[a * PAGE:(a + 1) * PAGE]), bytes(data[b * PAGE:(b + 1) * PAGE])
        if len(pa) == len(pb):
            data[a * PAGE:(a + 1) * PAGE], data[b * PAGE:(b + 1) * PAGE] = pb, pa
    return kind
