"""The one thing pyproject.toml cannot say: the optional C extension (kmodcompat/parse/_accel.c).

It is built when a C compiler and Python's headers are there; without them the build goes on
(``optional=True``: setuptools' build_ext warns and skips it) and kmodcompat runs the pure-Python
parser, the reference, which ``kmodcompat --version`` then names.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("kmodcompat.parse._accel", ["kmodcompat/parse/_accel.c"],
                             depends=["kmodcompat/parse/_accel.h"], optional=True,
                             extra_compile_args=["-O2", "-std=c99", "-Wall", "-Wextra", "-Wno-unused-parameter"])])
