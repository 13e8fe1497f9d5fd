"""The kmod installed on the host, and the release kmodcompat emulates when ``--as`` is not given.

A plain ``kmodcompat depmod -n`` is meant to print what ``/usr/sbin/depmod -n``
prints on the same machine: on a Debian 12 host (kmod 30) it emulates kmod 30,
on Debian 13 (kmod 34.2) kmod 34. A host with no kmod, or a release we do not
model, gets kmod 34 (:data:`~kmodcompat.kmod.profile.DEFAULT_KMOD`).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

from .profile import DEFAULT_KMOD, KMOD30, KMOD34, Kmod

#: Where Debian installs the kmod binary (/usr/bin/kmod; /bin on unmerged-usr systems); the first on PATH wins.
_PLACES = ("/usr/bin/kmod", "/bin/kmod", "/usr/sbin/kmod", "/sbin/kmod")


@functools.cache
def host_kmod_version() -> str | None:
    """The host kmod's release as ``kmod --version`` prints it ("30", "34.2"), None without a kmod."""
    for path in (shutil.which("kmod"), *_PLACES):
        if path is None or not os.access(path, os.X_OK):
            continue
        try:
            out = subprocess.run([path, "--version"], capture_output=True, timeout=10, check=False,
                                 stdin=subprocess.DEVNULL).stdout.decode("utf-8", "replace")
        except (OSError, subprocess.SubprocessError):
            continue
        first = out.split("\n", 1)[0]
        if first.startswith("kmod version "):
            return first.removeprefix("kmod version ").strip()
    return None


def modelled(version: str | None) -> Kmod | None:
    """The profile of a host release we emulate: kmod 30, or a kmod 34 (34, 34.1, 34.2: libkmod-elf.c and
    depmod are the same blob in the three, profile.py)."""
    if version == "30":
        return KMOD30
    if version is not None and (version == "34" or version.startswith("34.")):
        return KMOD34
    return None


def default_kmod() -> Kmod:
    """The release to emulate when ``--as`` is not given: the host's when modelled, else kmod 34."""
    return modelled(host_kmod_version()) or DEFAULT_KMOD


def describe_default() -> str:
    """One line for ``kmodcompat --version``: which kmod is emulated by default, and why."""
    host = host_kmod_version()
    kmod = default_kmod()
    if host is None:
        why = "no kmod on this host"
    elif modelled(host) is None:
        why = f"this host's kmod {host} is not one kmodcompat models"
    else:
        why = f"this host's kmod is {host}"
    return f"emulates kmod {kmod.version} when --as is not given ({why})"
