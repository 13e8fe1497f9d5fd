"""Parsing: one module file → one immutable :class:`~kmodcompat.records.ModuleRecord`.

:mod:`.module` drives the readers of each part (:mod:`.modinfo`,
:mod:`.ksymtab`, :mod:`.signature`, and :mod:`kmodcompat.modversions`, one
module per version-table format); :mod:`.scan` parses many files across
processes, one failure never stopping the rest.
"""
