"""libkmod's ``struct hash`` (shared/hash.c), as far as its iteration order shows.

depmod prints two things in hash-iteration order: the module array before
``modules.order`` sorts it (``depmod_modules_build_array()`` walks
``modules_by_name``, 512 buckets), which decides where modules missing from
``modules.order`` end up, and ``modules.symbols`` (``output_symbols()`` walks
the 2048-bucket symbol hash). ``hash_iter_next()`` visits the buckets in
index order and each bucket's entries in the order ``hash_add()`` keeps them:
sorted by ``strcmp()`` of the key. So the order is a pure function of the key
set: sort by (bucket, key bytes). Identical in kmod 30 and 34.2.

The bucket is ``hash_superfast(key) & (n_buckets - 1)``, Paul Hsieh's
SuperFastHash as libkmod compiles it on a little-endian host with signed
``char`` (x86-64, where Debian's depmod runs for every target architecture).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MODULES_BY_NAME_BUCKETS", "SYMBOLS_BUCKETS", "align_power2", "hash_order", "hash_superfast"]

_M = 0xFFFFFFFF

#: ``hash_new(512, ...)`` for ``depmod->modules_by_name`` (depmod_init()).
MODULES_BY_NAME_BUCKETS = 512
#: ``hash_new(2048, ...)`` for ``depmod->symbols`` (depmod_init()).
SYMBOLS_BUCKETS = 2048


def align_power2(n: int) -> int:
    """``ALIGN_POWER2()`` (shared/util.h): the bucket count hash_new() really allocates."""
    return 1 << (n - 1).bit_length()


def _schar(b: int) -> int:
    """A byte read through a (signed) ``char``, as the tail cases of hash_superfast() do."""
    return b - 256 if b >= 128 else b


def hash_superfast(key: bytes) -> int:
    """``hash_superfast(key, strlen(key))`` from shared/hash.c, bit for bit."""
    n = len(key)
    h = n & _M
    rem = n & 3
    i = 0
    for _ in range(n >> 2):
        h = (h + (key[i] | key[i + 1] << 8)) & _M
        tmp = (((key[i + 2] | key[i + 3] << 8) << 11) ^ h) & _M
        h = ((h << 16) ^ tmp) & _M
        i += 4
        h = (h + (h >> 11)) & _M
    if rem == 3:
        h = (h + (key[i] | key[i + 1] << 8)) & _M
        h ^= (h << 16) & _M
        h ^= (_schar(key[i + 2]) << 18) & _M
        h = (h + (h >> 11)) & _M
    elif rem == 2:
        h = (h + (key[i] | key[i + 1] << 8)) & _M
        h ^= (h << 11) & _M
        h = (h + (h >> 17)) & _M
    elif rem == 1:
        h = (h + _schar(key[i])) & _M
        h ^= (h << 10) & _M
        h = (h + (h >> 1)) & _M
    # "Force avalanching of final 127 bits"
    h ^= (h << 3) & _M
    h = (h + (h >> 5)) & _M
    h ^= (h << 4) & _M
    h = (h + (h >> 17)) & _M
    h ^= (h << 25) & _M
    h = (h + (h >> 6)) & _M
    return h


def hash_order(keys: Iterable[bytes], n_buckets: int) -> list[bytes]:
    """The keys in the order ``hash_iter_next()`` returns them from a ``hash_new(n_buckets)`` table."""
    mask = align_power2(n_buckets) - 1
    return sorted(set(keys), key=lambda k: (hash_superfast(k) & mask, k))
