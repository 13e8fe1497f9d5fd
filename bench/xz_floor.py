#!/usr/bin/env python3
"""The decompression floor of a .ko.xz tree: every module inflated once, one core, nothing else.

    python3 bench/xz_floor.py [TREE_ROOT]                 # this Python's liblzma
    LD_LIBRARY_PATH=DIR python3 bench/xz_floor.py [ROOT]  # another liblzma.so.5 build, e.g. the
                                                          # one kmod 34.2 uses, from
                                                          # /opt/kmod-34/root/usr/lib/x86_64-linux-gnu

Python's lzma module is a thin layer over liblzma, so this measures the
library build; `xz -dc` over the same files is timed beside it. Not a test.
"""

import glob
import lzma
import subprocess
import sys
import time

root = sys.argv[1] if len(sys.argv) > 1 else "/tmp/realtrees/trixie-amd64"
files = sorted(glob.glob(f"{root}/lib/modules/*/kernel/**/*.ko.xz", recursive=True))
if not files:
    raise SystemExit(f"no .ko.xz under {root}/lib/modules")
data = [open(f, "rb").read() for f in files]
libs = [line.split()[-1] for line in open("/proc/self/maps") if "liblzma" in line]
t = time.perf_counter()
out = sum(len(lzma.decompress(d)) for d in data)
t_py = time.perf_counter() - t
t = time.perf_counter()
for i in range(0, len(files), 500):
    subprocess.run(["xz", "-dc", *files[i:i + 500]], stdout=subprocess.DEVNULL, check=True)
t_xz = time.perf_counter() - t
print(f"{len(files)} files, {sum(map(len, data)) >> 20} MiB -> {out >> 20} MiB")
print(f"python lzma ({sorted(set(libs))[0] if libs else '?'}): {t_py:.1f} s; xz -dc: {t_xz:.1f} s")
