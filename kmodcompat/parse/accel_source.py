"""The digest of the compiled parser's source, which the build writes into the extension.

setup.py (loading this file alone: the package may not be importable at build time) passes it
to the compiler as ``KMODCOMPAT_ACCEL_SOURCE``; parse/accel.py compares the built extension's
``SOURCE`` with the digest of the source beside it and does not use an extension built from
other source (an editable checkout whose _accel.c changed since ``pip install -e .``): its
rows could differ from what the Python readers now expect.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: The files the extension is built from, beside this one.
FILES = ("_accel.c", "_accel.h")


def digest(directory: str | Path | None = None) -> str | None:
    """The first 16 hex digits of SHA-256 over the source files, in order; None if one is missing."""
    where = Path(directory) if directory is not None else Path(__file__).parent
    h = hashlib.sha256()
    for name in FILES:
        try:
            h.update((where / name).read_bytes())
        except OSError:
            return None
    return h.hexdigest()[:16]
