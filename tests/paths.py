"""The repository paths the tests share, in one place: ``from .paths import REPO, X86_64``.

A module, not ``conftest.py`` fixtures: module-level constants (a test table built at import,
a parametrize list) need the paths before any fixture exists, and pytest's conftest is not
meant to be imported.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
MODULES = FIXTURES / "modules"  # the fixture modules, one directory per architecture
X86_64 = MODULES / "x86_64"
DEMO = REPO / "kmodcompat" / "demo"  # the bundled demo tree (a root holding lib/modules/KVER)
DEMO_KVER = sorted(os.listdir(DEMO / "lib" / "modules"))[0]  # its one release, as cli/report.py demo_tree() finds it
TOOLS = REPO / "tools"
DATA = REPO / "tests" / "data"
FUZZ_CORPUS = REPO / "tests" / "fuzz-corpus"
KMC_TEST = DATA / "qemu-kernel-7.2" / "kmc_test.ko"  # built against the QEMU oracle's kernel
