#!/bin/bash
# build-kernel.sh - a small >= 6.14 x86_64 kernel with CONFIG_EXTENDED_MODVERSIONS for the QEMU oracle.
#
# usage: build-kernel.sh SOURCE OUTDIR [force|noforce]
#   SOURCE  Debian's linux-source-X.Y .deb, its linux-source-X.Y.tar.xz, or an unpacked tree
#   OUTDIR  receives bzImage, config, Module.symvers and kmc_test.ko (tools/qemu/kmc_test)
#   force   CONFIG_MODULE_FORCE_LOAD=y (Debian's choice; the default), noforce: =n
#
# tinyconfig plus what loading a module and talking over a serial console need:
# MODULES, MODULE_UNLOAD, MODVERSIONS (genksyms), EXTENDED_MODVERSIONS and
# BASIC_MODVERSIONS (modpost writes both __versions and __version_ext_*), the
# 8250 console, initramfs (gzip), ELF and script binaries, proc/sys, and PVH so
# qemu -kernel boots the ELF vmlinux directly. No module signing: the oracle's
# cases are about versions. Takes ~10 minutes on 2 cores.
set -euo pipefail
src=$1; out=$2; force=${3:-force}
mkdir -p "$out"; out=$(cd "$out" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=${KMC_BUILD_DIR:-${TMPDIR:-/tmp}/kmc-kernel-build}
mkdir -p "$work"
if [ -d "$src" ]; then
  tree=$src
else
  if [[ $src == *.deb ]]; then
    dpkg-deb --fsys-tarfile "$src" | tar -x -C "$work" --wildcards './usr/src/linux-source-*.tar.xz'
    src=$(ls "$work"/usr/src/linux-source-*.tar.xz)
  fi
  # linux-source-X.Y.tar.xz unpacks to linux-source-X.Y
  tree=$work/$(basename "$src" .tar.xz)
  [ -d "$tree" ] || tar -xJf "$src" -C "$work"
fi
cd "$tree"
make -s ARCH=x86_64 tinyconfig
on="64BIT MODULES MODULE_UNLOAD MODVERSIONS GENKSYMS EXTENDED_MODVERSIONS BASIC_MODVERSIONS
    TTY SERIAL_8250 SERIAL_8250_CONSOLE PRINTK BLK_DEV_INITRD RD_GZIP BINFMT_ELF BINFMT_SCRIPT
    PROC_FS SYSFS DEVTMPFS HYPERVISOR_GUEST PARAVIRT PVH"
off="MODULE_SIG GENDWARFKSYMS"
args=()
for o in $on; do args+=(--enable "$o"); done
for o in $off; do args+=(--disable "$o"); done
if [ "$force" = force ]; then args+=(--enable MODULE_FORCE_LOAD); else args+=(--disable MODULE_FORCE_LOAD); fi
scripts/config "${args[@]}"
make -s ARCH=x86_64 olddefconfig
for o in MODULES MODVERSIONS EXTENDED_MODVERSIONS BASIC_MODVERSIONS SERIAL_8250_CONSOLE BLK_DEV_INITRD PVH; do
  grep -q "^CONFIG_$o=y" .config || { echo "build-kernel: CONFIG_$o did not stick" >&2; exit 1; }
done
make -s ARCH=x86_64 -j"$(nproc)" bzImage modules
rm -rf "$work/kmc_test"; cp -r "$here/kmc_test" "$work/kmc_test"
make -s ARCH=x86_64 -C "$tree" M="$work/kmc_test" modules
cp arch/x86/boot/bzImage "$out/bzImage"
cp .config "$out/config"
cp Module.symvers "$out/Module.symvers"
cp "$work/kmc_test/kmc_test.ko" "$out/kmc_test.ko"
echo "$(make -s kernelrelease)" > "$out/kernelrelease"
ls -la "$out"
