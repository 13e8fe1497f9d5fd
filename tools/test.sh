#!/bin/bash
# Install everything the test suite needs, then run all of it (the README's test command; .ci/run calls it).
#   tools/test.sh [PYTEST ARGS...]
# Needs root (apt-get) on Debian. Real Debian module trees are downloaded once into
# $REALTREES (default /tmp/realtrees) by ../shared/tools/get-tree.sh and reused after.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
shared=${KMODCOMPAT_SHARED:-../shared}

need=()
[ -x /usr/sbin/modinfo ] || [ -x /sbin/modinfo ] || need+=(kmod)          # kmod 30, the bookworm oracle
command -v readelf >/dev/null || need+=(binutils)
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v xz >/dev/null || need+=(xz-utils)
command -v rpmbuild >/dev/null || need+=(rpm)                                  # builds the RPMs tests read
command -v busybox >/dev/null || need+=(busybox-static)                      # the busybox oracle
command -v chromium >/dev/null || need+=(chromium)                           # renders the HTML report
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
bash "$shared/tools/kmod34.sh" kmod --version >/dev/null                  # kmod 34.2, set up on first use
python3 -m pip install -q --disable-pip-version-check -e '.[test]'

export KMODCOMPAT_FETCH_TREES=${KMODCOMPAT_FETCH_TREES:-1}
exec python3 -m pytest -q -p no:cacheprovider "$@"
