"""depmod's messages on stderr, kept as data until they are printed.

tools/log.c prints ``"%s: %s: %s"`` (program name, priority name, message):
``depmod: WARNING: ...``, ``depmod: ERROR: ...``, ``depmod: FATAL: ...``.
Each diagnostic also carries a stable ``code`` and the fields a program wants,
so ``--format json`` needs no parsing of the text.
"""

from __future__ import annotations

from typing import Any, NamedTuple

WARNING = "WARNING"
ERROR = "ERROR"
FATAL = "FATAL"


class Diagnostic(NamedTuple):
    """One line depmod writes to stderr (``text`` has no program/priority prefix, no newline)."""

    level: str  # WARNING | ERROR | FATAL
    code: str  # e.g. "unknown-symbol", "disagrees", "cycle", "modules-order-missing"
    text: str
    data: tuple[tuple[str, Any], ...] = ()

    def line(self, program: str = "depmod") -> str:
        """The exact stderr line, newline included."""
        return f"{program}: {self.level}: {self.text}\n"

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level, "code": self.code, "text": self.text, **dict(self.data)}


def diag(level: str, code: str, text: str, **data: Any) -> Diagnostic:
    return Diagnostic(level, code, text, tuple(data.items()))
