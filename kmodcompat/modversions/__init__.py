"""The on-disk MODVERSIONS formats, one module each.

* :mod:`.basic`: ``__versions``, fixed 64-byte ``struct modversion_info`` (all kernels);
* :mod:`.extended`: ``__version_ext_crcs`` + ``__version_ext_names`` (Linux 6.14+);
* :mod:`.varlen`: Gary Guo's rejected 2023 variable-length ``__versions``.

Each offers ``parse(elf)`` returning a record and findings, and ``encode(...)``
returning section bytes (used by format simulation and the fixture tests).
"""
