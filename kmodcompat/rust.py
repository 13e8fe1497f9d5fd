"""Rust symbol names: recognising and demangling them.

Rust-for-Linux exports use the v0 mangling (``_R...``, RFC 2603) and older
toolchains the legacy one (``_ZN...17h<16 hex>E``). Demangling uses
``pyderust`` (bindings to rustc-demangle, the Rust project's own demangler)
where a wheel exists (x86_64, aarch64), else binutils' ``c++filt`` if present;
otherwise names are shown mangled.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache

_LEGACY = re.compile(r"^_ZN.*17h[0-9a-f]{16}E$")
# v0: "_R", an optional decimal (encoding version), then a path production tag.
_V0 = re.compile(r"^_R[0-9]*[CMXYNIB]")


def is_rust(name: str) -> bool:
    return bool(_V0.match(name) or _LEGACY.match(name))


def mangling(name: str) -> str | None:
    """"v0", "legacy" or None."""
    if _V0.match(name):
        return "v0"
    if _LEGACY.match(name):
        return "legacy"
    return None


@cache
def demangle(name: str) -> str:
    """Readable form of a Rust symbol; the name itself when it is not Rust or no demangler is here."""
    if not is_rust(name):
        return name
    try:
        import pyderust
    except ImportError:
        return _cxxfilt(name)
    try:
        return pyderust.demangle(name)
    except Exception:  # pyderust.DemangleError: not decodable after all
        return name


def _cxxfilt(name: str) -> str:
    exe = shutil.which("c++filt")
    if exe is None:
        return name
    out = subprocess.run([exe, "--format=rust", name], capture_output=True, text=True).stdout.strip()
    return out or name
