"""The on-disk MODVERSIONS formats, one module each.

* :mod:`.basic`: ``__versions``, fixed 64-byte ``struct modversion_info`` (all kernels);
* :mod:`.extended`: ``__version_ext_crcs`` + ``__version_ext_names`` (Linux 6.14+);
* :mod:`.varlen`: Gary Guo's rejected 2023 variable-length ``__versions``;
* :mod:`.hashed`: Sami Tolvanen's 2024 RFC, long names as ``"sha256\\0"`` + digest in ``__versions``.

Each offers ``parse(elf)`` returning a record and findings, and ``encode(...)``
returning section bytes (used by format simulation and the fixture tests).
:class:`VersionTable` names the tables a module's versions sit in; a format
(:class:`~kmodcompat.records.ModversionsFormat`) is which of them a build writes.
"""

from __future__ import annotations

from enum import StrEnum
from operator import attrgetter

from ..records import Modversion

_NAME = attrgetter("name")


class VersionTable(StrEnum):
    """The version tables, by the ids ``kmodcompat modversions`` gives them (``--table``, a row's ``tables``):
    the one list of them. A member is its id, so JSON and output lines carry plain strings."""

    BASIC = "basic"  # __versions (.basic)
    EXTENDED = "extended"  # __version_ext_crcs + __version_ext_names (.extended)
    VARLEN = "varlen"  # the rejected variable-length __versions (.varlen)

    @property
    def diff_id(self) -> str:
        """The id ``kmodcompat diff`` gives it (a version change's ``tables``, report/diff-schema.json): the
        extended pair is "ext" there."""
        return "ext" if self is VersionTable.EXTENDED else self.value

    @property
    def heading(self) -> str:
        """As the renderers name it: the section(s) it is."""
        return _HEADINGS[self]


_HEADINGS = {VersionTable.BASIC: "__versions", VersionTable.EXTENDED: "__version_ext",
           VersionTable.VARLEN: "__versions (varlen)"}


def dedot(entries: tuple[Modversion, ...]) -> tuple[Modversion, ...]:
    """One leading '.' dropped from each name (ppc64 ELFv1 writes function imports with one, docs/formats.md
    §1.6), as libkmod's and module-init-tools' modversions readers do (``entries`` themselves when no
    name has one)."""
    names = "\0".join(map(_NAME, entries))
    if not names.startswith(".") and "\0." not in names:
        return entries
    return tuple(Modversion(e.crc, e.name[1:], e.terminated) if e.name.startswith(".") else e for e in entries)
