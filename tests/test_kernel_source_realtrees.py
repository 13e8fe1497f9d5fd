"""A real Debian tree installed without linux-headers: the report takes the kernel's exports from the boot image.

Debian's trixie amd64 linux-image gives ``/lib/modules/KVER``,
``boot/vmlinuz-KVER`` and the one-line placeholder ``boot/System.map-KVER``;
the tree of $KMODCOMPAT_REALTREES (default /tmp/realtrees) also has the
headers' Module.symvers, which a hard-linked copy leaves out. Measured
(trixie amd64, 4,230 modules): before, "156774 import(s) resolve to no
exporter", exporter CRCs "module's own", report.json 18.4 MB; after, no
unresolved import, every import checked against the image's CRCs, 1.7 MB.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kmodcompat.files.kernel import kernel_source

from . import oracle
from .paths import REPO

pytestmark = pytest.mark.realtree

ROOT = os.environ.get("KMODCOMPAT_REALTREES") or os.environ.get("REALTREES", "/tmp/realtrees")


def _without_headers(tmp_path: Path, name: str) -> tuple[Path, str, Path]:
    src = Path(ROOT) / name
    info = src / "TREE-INFO"
    if not info.exists() or not list(src.glob("usr/src/linux-headers-*/Module.symvers")):
        pytest.skip(f"{src}: not present or without the headers' Module.symvers")
    kver = next(line.split("=", 1)[1].strip() for line in info.read_text().splitlines() if line.startswith("krel="))
    dst = tmp_path / name
    subprocess.run(["cp", "-al", str(src), str(dst)], check=True)  # hard links: no copy of 100 MB
    shutil.rmtree(dst / "usr" / "src")
    return dst, kver, next(src.glob("usr/src/linux-headers-*/Module.symvers"))


def test_headerless_trixie_report_checks_imports_against_the_image(tmp_path):
    root, kver, symvers = _without_headers(tmp_path, "trixie-amd64")
    moddir = root / "lib" / "modules" / kver
    from_image = kernel_source(str(moddir), kver)
    assert from_image.kind == "boot image" and not from_image.notes
    # The kernel's CRCs every import is checked against: the same from the image as from the headers' file.
    assert from_image.expected([]) == kernel_source(None, None, symvers=str(symvers)).expected([])
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "kmodcompat", "report", str(moddir), "--out", str(out), "--no-cache",
                          "--fail-on", "unresolved,refuses:kernel-6.14"], capture_output=True, text=True, cwd=REPO,
                         env=oracle.ENV, timeout=900)
    assert run.returncode == 0, run.stderr
    assert f"kmodcompat: kernel exports from boot image {root}/boot/vmlinuz-{kver}" in run.stderr
    doc = json.loads((out / "report.json").read_text())
    assert doc["consumers"]["exporter_crcs"] == "tree"
    assert doc["graph"]["unresolved"]["total"] == 0 and doc["graph"]["not_checkable"]["total"] == 0
    assert not any("resolve to no exporter" in h for h in doc["headlines"])
    assert (out / "report.json").stat().st_size < 3_000_000
