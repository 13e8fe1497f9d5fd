"""The ELF layouts and constants: the one place each is written.

Values from the ELF gABI and the kernel's ``include/uapi/linux/elf.h`` /
``elf-em.h``. The parser (:mod:`.image`, ``parse/``), ``validate``,
``simulate``, the boot-image reader and the tests' mutators all import them
from here.
"""

from __future__ import annotations

from typing import NamedTuple

ELFMAG = b"\x7fELF"
EI_NIDENT = 16  # bytes of e_ident
ET_REL = 1  # a module is a relocatable object

SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA = 0, 1, 2, 3, 4
SHT_NOBITS, SHT_REL = 8, 9
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
SHN_UNDEF, SHN_ABS, SHN_COMMON = 0, 0xFFF1, 0xFFF2
SHN_LIVEPATCH = 0xFF20  # include/uapi/linux/elf.h: symbols livepatch resolves itself
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STT_NOTYPE, STT_OBJECT, STT_FUNC = 0, 1, 2
STT_SPARC_REGISTER = 13

EM_SPARC, EM_386, EM_M68K, EM_MIPS, EM_PARISC = 2, 3, 4, 8, 15
EM_PPC, EM_PPC64, EM_S390, EM_ARM, EM_SH, EM_SPARCV9 = 20, 21, 22, 40, 42, 43
EM_X86_64, EM_AARCH64, EM_RISCV, EM_LOONGARCH = 62, 183, 243, 258

#: Elf_Ehdr after e_ident, per word size: e_type e_machine e_version e_entry e_phoff e_shoff
#: e_flags e_ehsize e_phentsize e_phnum e_shentsize e_shnum e_shstrndx (struct elf{32,64}_hdr).
EHDR = {64: "HHIQQQIHHHHHH", 32: "HHIIIIIHHHHHH"}
EHDR_SIZE = {64: 64, 32: 52}  # sizeof(Elf_Ehdr), e_ident included
#: Elf_Shdr: sh_name sh_type sh_flags sh_addr sh_offset sh_size sh_link sh_info sh_addralign
#: sh_entsize (struct elf{32,64}_shdr).
SHDR = {64: "IIQQQQIIQQ", 32: "IIIIIIIIII"}
SHDR_SIZE = {64: 64, 32: 40}


class SymLayout(NamedTuple):
    """Where an Elf_Sym's fields sit (st_name, a u32, is first in both word sizes)."""

    size: int  # sizeof(Elf_Sym)
    info: int  # offset of st_info (u8)
    shndx: int  # offset of st_shndx (u16)
    value_format: str  # struct format of st_value
    value: int  # offset of st_value


SYM = {64: SymLayout(24, 4, 6, "Q", 8), 32: SymLayout(16, 12, 14, "I", 4)}
