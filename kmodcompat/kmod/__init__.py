"""The libkmod layer: what kmod itself does with a module file, release by release.

Layered as kmod is: the release profiles (which knobs differ between kmod 30,
kmod 34.2 and PR #270), the readers of libkmod/libkmod-elf.c and
libkmod-file.c that depmod and modprobe build on, and the byte-exact outputs
of the tools (``modinfo``, ``modprobe --dump-modversions``,
``--show-exports``). The consumer model of kmod (what a user of kmod sees,
:mod:`kmodcompat.consumers.kmod`) and the depmod emulation
(:mod:`kmodcompat.depmod`) are built on this package; it imports neither.
"""
