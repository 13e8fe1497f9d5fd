#!/bin/bash
# Regenerate the sample reports under reports/ from real Debian trees
# (fetched with tools/debian_archive.py into $REALTREES, default /tmp/realtrees).
#   tools/make-sample-reports.sh [SUITE-FLAVOR ...]     default: bookworm-amd64 trixie-amd64 sid-amd64
set -euo pipefail
cd "$(dirname "$0")/.."
trees=${REALTREES:-/tmp/realtrees}
[ $# -gt 0 ] || set -- bookworm-amd64 trixie-amd64 sid-amd64
for name in "$@"; do
  suite=${name%%-*}; flavor=${name#*-}
  [ -f "$trees/$name/TREE-INFO" ] || python3 tools/debian_archive.py tree -o "$trees" -H "$suite" "$flavor" >/dev/null
  krel=$(sed -n 's/^krel=//p' "$trees/$name/TREE-INFO" | head -1)
  python3 -m kmodcompat report -b "$trees/$name" "$krel" --out "reports/$name" --fail-on none
done
