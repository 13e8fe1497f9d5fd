#!/usr/bin/env python3
"""Build the demo tree shipped with the package (kmodcompat/demo/) from fixtures/.

`kmodcompat report` analyses it when the machine has no /lib/modules/$(uname -r)
(a container, a CI runner), so a first run always shows a real report. It
holds one module of each modversions format, their exporter, the
placeholder-CRC pair, an xz-compressed module and a Module.symvers with the
kernel CRCs the fixtures were versioned against.

    python3 tools/make-demo-tree.py      # rewrites kmodcompat/demo/
"""

import shutil
import sys
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from kmodcompat.parse.module import parse_module  # noqa: E402

KVER = "6.14.0-kmodcompat-demo"
FIX = REPO / "fixtures" / "modules" / "x86_64"
SOURCES = ["exports-rel.ko", "exports-placeholder.ko", "imports-placeholder.ko", "basic.ko", "basic+ext.ko",
           "ext-only.ko", "none.ko", "varlen.ko", "basic+ext.ko.xz", "bad-ext-count.ko"]
#: Kernel symbols the fixtures import, with the CRCs generate.py gave them (crc_of).
KERNEL_EXPORTS = ["__fentry__", "printk", "kmalloc_caches", "kfree", "module_layout"]


def main() -> None:
    out = REPO / "kmodcompat" / "demo"
    shutil.rmtree(out, ignore_errors=True)
    moddir = out / "lib" / "modules" / KVER
    (moddir / "kernel" / "drivers" / "demo").mkdir(parents=True)
    order = []
    for src in SOURCES:
        rec = parse_module(str(FIX / src))
        name = dict(rec.modinfo).get("name")
        suffix = ".ko.xz" if src.endswith(".xz") else ".ko"
        if src.endswith(".xz"):
            name += "_xz"  # a second copy of kmc_basic_ext, compressed, under its own name
        rel = f"kernel/drivers/demo/{name}{suffix}"
        shutil.copy(FIX / src, moddir / rel)
        order.append(f"kernel/drivers/demo/{name}.ko")
    (moddir / "modules.order").write_text("".join(f"{o}\n" for o in order))
    (moddir / "modules.builtin").write_text("kernel/drivers/demo/kmc_builtin_demo.ko\n")
    (moddir / "modules.builtin.modinfo").write_bytes(b"kmc_builtin_demo.license=GPL\0"
                                                     b"kmc_builtin_demo.alias=kmodcompat-demo\0")
    headers = out / "usr" / "src" / f"linux-headers-{KVER}"
    headers.mkdir(parents=True)
    # The Rust-style long name the importers use: exported by the kernel too, so that
    # depmod -e -E shows its false "disagrees" on modules that version it only in ext.
    long_names = sorted({m.name for m in parse_module(str(FIX / "basic+ext.ko")).ext_versions.entries
                         if len(m.name) > 55})
    lines = [f"0x{zlib.crc32(b'kmodcompat:' + s.encode()):08x}\t{s}\tvmlinux\tEXPORT_SYMBOL\t\n"
             for s in KERNEL_EXPORTS + long_names]
    (headers / "Module.symvers").write_text("".join(lines))
    (out / "README").write_text(f"Demo module tree for `kmodcompat report` (made by tools/make-demo-tree.py from "
                                f"fixtures/). Kernel release {KVER}.\n")
    print(f"wrote {out}: {len(SOURCES)} modules")


if __name__ == "__main__":
    main()
