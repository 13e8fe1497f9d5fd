"""ELF: the layouts of the ELF header, section and symbol tables, and a bounded reader of raw images.

:mod:`.image` reads a module's header and section table the way kmod's
``kmod_elf_new()`` accepts them; the parser, ``validate`` and ``simulate``
all go through it.
"""
