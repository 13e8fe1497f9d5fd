"""Which parser runs: the compiled hot path (``_accel.c``) or the pure-Python reference.

``_accel`` is a C extension setup.py builds when the machine has a C compiler
(``pip install .`` without one still works: it is optional). It reads the section
table (elf/image.py ElfImage), ``.symtab`` (ksymtab.py scan_symbols), ``.modinfo``
(modinfo.py) and ``__versions`` (modversions/basic.py read_entries) into the same
rows the Python code builds, and answers None for anything but the plain case, where
the Python reader then runs: refusals, findings and their texts stay in Python, their
one home. Each reader asks :data:`ext` at call time, so ``KMODCOMPAT_ACCEL=0`` in the
environment (read once, at import) or a test setting ``accel.ext = None`` runs the
reference alone. An extension built from other source than the ``_accel.c`` beside it
(an editable checkout not rebuilt since the C changed) is not used (accel_source.py).
tests/test_accel.py compares the two record by record.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from . import accel_source

__all__ = ["compiled", "ext", "describe"]


def _built() -> tuple[ModuleType | None, str]:
    """The extension and, when there is none to use, why."""
    try:
        module = importlib.import_module(f"{__package__}._accel")
    except ImportError:
        return None, "the compiled parser was not built: no C compiler at install time"
    source = accel_source.digest()
    if source is not None and getattr(module, "SOURCE", None) != source:
        return None, "the compiled parser was built from other source than _accel.c: run pip install -e . again"
    return module, ""


#: The extension as built (None without one, or one built from other source), whatever the environment says.
compiled, _WHY_NOT = _built()
#: The extension the readers use: :data:`compiled` unless ``KMODCOMPAT_ACCEL=0``.
ext: ModuleType | None = None if os.environ.get("KMODCOMPAT_ACCEL", "") == "0" else compiled


def describe() -> str:
    """The active parser, for ``kmodcompat --version``."""
    if ext is not None:
        return "compiled (kmodcompat.parse._accel)"
    if compiled is None:
        return f"pure Python ({_WHY_NOT})"
    return "pure Python (KMODCOMPAT_ACCEL=0)" if os.environ.get("KMODCOMPAT_ACCEL", "") == "0" else "pure Python"
