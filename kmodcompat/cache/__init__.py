"""The cache of parsed records and finished reports and diffs: data, never code; never stale, never trusted when damaged.

* :mod:`.codec`: records as schema-checked JSON (no pickle);
* :mod:`.keys`: file identities, content digests, the code's fingerprints, report input keys;
* :mod:`.store`: the SQLite file (exact schema, a MAC per row, locks, moving a damaged one aside);
* :mod:`.record_cache`: what commands use: :func:`parse_cached`, :class:`RecordCache`, eviction.

It lives in ``$XDG_CACHE_HOME/kmodcompat`` (else ``~/.cache/kmodcompat``).
"""

from .keys import input_key, package_fingerprint, records_version
from .record_cache import (DEFAULT_MAX_AGE_DAYS, DEFAULT_MAX_BYTES, RecordCache, cacheable, default_path,
                           map_cached, parse_cached, prune)
from .store import CacheUnavailable

__all__ = ["CacheUnavailable", "DEFAULT_MAX_AGE_DAYS", "DEFAULT_MAX_BYTES", "RecordCache", "cacheable",
           "default_path", "input_key", "map_cached", "package_fingerprint", "parse_cached", "prune", "records_version"]
