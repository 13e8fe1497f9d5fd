#!/bin/bash
# Which commands use the record cache: each run twice on one tree with a fresh XDG_CACHE_HOME (cold, then
# warm); wall seconds, exit status, and the cache directory's size after (4.0K: nothing was written).
#   bench/cache_by_command.sh [ROOT] > out.txt      (run from the checkout to measure; ROOT: a tree root)
# Not a benchmark (bench/bench_commands.py is): one run each, on a shared machine.
R=${1:-/tmp/realtrees/trixie-amd64}
K=$(ls "$R/lib/modules" | head -1)
M=$R/lib/modules/$K
PY=${PY:-python3}
t() { local s e rc; s=$(date +%s.%N); "$@" >/dev/null 2>&1; rc=$?; e=$(date +%s.%N)
      printf "%.2f(rc%d)" "$(echo "$e - $s" | bc)" "$rc"; }
out=$(mktemp -d)
for c in "report $R --out $out/r" "views $R" "simulate --format-as none --out $out/s $R" "diff $R $R" \
         "depmod -n -b $R $K" "exports $R" "graph $R" "symvers $R" "validate $R" \
         "loadable $M/kernel/fs --kernel $R" "modinfo $(find "$M/kernel/fs" -name '*.ko*' | tr '\n' ' ')"; do
  export XDG_CACHE_HOME=$(mktemp -d)
  a=$(t nice $PY -m kmodcompat $c); rm -rf "$out/s"  # simulate refuses an existing --out
  b=$(t nice $PY -m kmodcompat $c)
  echo "${c:0:60} | cold $a | warm $b | $(du -sh "$XDG_CACHE_HOME" | cut -f1)"
  rm -rf "$XDG_CACHE_HOME" "$out/s"
done
rm -rf "$out"
