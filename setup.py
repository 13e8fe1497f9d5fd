"""The one thing pyproject.toml cannot say: the optional C extension (kmodcompat/parse/_accel.c).

It is built when a C compiler and Python's headers are there; without them the build goes on
(``optional=True``: setuptools' build_ext warns and skips it) and kmodcompat runs the pure-Python
parser, the reference, which ``kmodcompat --version`` then names.
"""

import runpy
from pathlib import Path

from setuptools import Extension, setup

# The source's digest goes into the extension (parse/accel_source.py: a build of other source is not used).
# That file alone, not the package: its dependencies need not be installed in the build environment.
_PARSE = Path(__file__).resolve().parent / "kmodcompat" / "parse"
_SOURCE = runpy.run_path(str(_PARSE / "accel_source.py"))["digest"](_PARSE)

setup(ext_modules=[Extension("kmodcompat.parse._accel", ["kmodcompat/parse/_accel.c"],
                             depends=["kmodcompat/parse/_accel.h"], optional=True,
                             define_macros=[("KMODCOMPAT_ACCEL_SOURCE", f'"{_SOURCE}"')],
                             extra_compile_args=["-O2", "-std=c99", "-Wall", "-Wextra", "-Wno-unused-parameter"])])
