#!/bin/bash
# Install what the test suite needs, then run all of it (the README's test command; .ci/run calls it), and
# run it again, but the realtree tests, with the pure-Python parser (KMODCOMPAT_ACCEL=0).
#   tools/test.sh [PYTEST ARGS...]          e.g. tools/test.sh -m "not realtree"
# On Debian 12 or 13, as root (apt-get) only for what is missing. It first checks what is there, then sets up
# the light things that can fail (python venv, the kmod oracles from the public Debian archive), and only then
# installs the heavy one (chromium, for the HTML report test), so a failure costs little.
# The oracles come unpacked from deb.debian.org through tools/debian_archive.py, never installed: kmod 34.2
# (trixie's package) and kmod 30 (bookworm's, when the host's kmod is not 30) under $REALTREES/.kmod-<suite>,
# and the real Debian module trees the tests compare on, downloaded once into $REALTREES (default
# /tmp/realtrees) and reused after. The package and its test extras go into a venv ($KMODCOMPAT_VENV,
# default .venv; the active one when $VIRTUAL_ENV is set), so PEP 668's externally-managed Python is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
export REALTREES=${REALTREES:-/tmp/realtrees}
venv=${VIRTUAL_ENV:-${KMODCOMPAT_VENV:-$PWD/.venv}}

have() { command -v "$1" >/dev/null 2>&1; }
updated=
apt_install() {
  [ $# -gt 0 ] || return 0
  echo "test.sh: apt-get install $*" >&2
  [ -n "$updated" ] || { apt-get update -q >/dev/null; updated=1; }
  apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

# -- what is missing (nothing installed yet) -----------------------------------------------------------------
light=() heavy=()
if [ ! -x "$venv/bin/python" ]; then
  have python3 && python3 -c 'import ensurepip, venv' 2>/dev/null || light+=(python3-venv)
fi
have gpgv || light+=(gpgv)                                                  # InRelease signatures
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || light+=(debian-archive-keyring)
have readelf || light+=(binutils)                                           # a test reads sections with it
have dpkg-deb || light+=(dpkg)                                              # .deb packages in the diff tests
have xz || light+=(xz-utils)
have rpmbuild || light+=(rpm)                                               # builds the RPMs tests read
have busybox || light+=(busybox-static)                                     # the busybox oracle
have man && have groff || light+=(man-db)                                   # the installed man pages
have zsh || light+=(zsh)                                                    # the zsh completion
have gcc || light+=(gcc)                                                    # builds the compiled parser (and its ASan run)
python3 -c 'import os, sysconfig; os.stat(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' 2>/dev/null \
  || light+=(python3-dev)                                                   # ... against Python's headers
have chromium || have chromium-browser || heavy+=(chromium)                 # renders the HTML report
echo "test.sh: missing: ${light[*]:-nothing} ${heavy[*]:-}" >&2

# -- light set-up, each step able to fail before anything heavy is installed -------------------------------
apt_install "${light[@]}"
if [ ! -x "$venv/bin/python" ]; then
  # --system-site-packages: dependencies the machine already has are used, not downloaded again
  python3 -m venv --system-site-packages "$venv"
fi
# Editable, and with the C extension built in place (setup.py: optional, so a failed build only warns;
# tests/test_accel.py fails if a compiler is here and the extension is not).
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'
echo "test.sh: $("$venv/bin/python" -m kmodcompat --version | grep '^parser:')" >&2
kmod_ok() { # SUITE RELEASE: the unpacked kmod runs and is that release
  [ "$("$venv/bin/python" tools/debian_archive.py kmod --suite "$1" --prefix "$REALTREES/.kmod-$1" kmod --version \
       | head -1)" = "kmod version $2" ]
}
kmod_ok trixie 34.2 || { echo "test.sh: kmod 34.2 from trixie does not run" >&2; exit 1; }
host_kmod=$( (/usr/bin/kmod --version || /bin/kmod --version) 2>/dev/null | head -1 || true)
if [ "$host_kmod" != "kmod version 30" ]; then                              # tests/oracle.py uses bookworm's
  kmod_ok bookworm 30 || { echo "test.sh: kmod 30 from bookworm does not run" >&2; exit 1; }
fi

# -- heavy set-up, then the tests ----------------------------------------------------------------------------
apt_install "${heavy[@]}"
export KMODCOMPAT_FETCH_TREES=${KMODCOMPAT_FETCH_TREES:-1}                 # tests fetch the trees they need
status=0
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" || status=$?
# Once more with the pure-Python parser, the reference the compiled one is held to (parse/accel.py): the
# suite but the whole-tree comparisons (realtree), which are the slow half and which tests/test_accel.py
# already makes with both parsers. 5: the arguments selected realtree tests only.
echo "test.sh: again with KMODCOMPAT_ACCEL=0 (pure-Python parser), realtree tests left out" >&2
KMODCOMPAT_ACCEL=0 "$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not realtree" "$@" || {
  rc=$?; [ "$rc" = 5 ] || status=$rc; }
exit "$status"
