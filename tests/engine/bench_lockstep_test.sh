#!/usr/bin/env bash
# medinfer-bench --lockstep, the protocol bench/lockstep.py drives: 'ready'
# after the warmup, one run per input line with 'ms TIME' after it, lines
# 't' timed (at most --runs), the summary over those; no timed run: exit 1.
# usage: bench_lockstep_test.sh MEDINFER_BENCH MODEL
set -u
bench=$1 model=$2
fail() { echo "FAIL: $*" >&2; exit 1; }

out=$(printf 'w\nt\nt\n' | "$bench" "$model" --threads 1 --runs 5 --warmup 1 --lockstep) || fail "exit $? on three lines"
[ "$(sed -n 1p <<<"$out")" = ready ] || fail "first line is not 'ready': $out"
[ "$(grep -cE '^ms [0-9]+\.[0-9]{3}$' <<<"$out")" = 3 ] || fail "not one 'ms' line per run: $out"
grep -qx 'runs: 2' <<<"$out" || fail "two timed runs expected: $out"

out=$(printf 't\nt\nt\n' | "$bench" "$model" --threads 1 --runs 2 --warmup 0 --lockstep) || fail "exit $? past --runs"
[ "$(grep -c '^ms ' <<<"$out")" = 3 ] && grep -qx 'runs: 2' <<<"$out" || fail "a 't' past --runs must run untimed: $out"

err=$(printf 'w\n' | "$bench" "$model" --threads 1 --lockstep 2>&1 >/dev/null)
rc=$?
[ $rc = 1 ] && grep -q 'no timed run' <<<"$err" || fail "no timed run: exit $rc, '$err'"

out=$("$bench" "$model" --threads 1 --runs 3 --warmup 0 </dev/null) || fail "exit $? without --lockstep"
grep -q '^ready' <<<"$out" && fail "'ready' without --lockstep"
grep -qx 'runs: 3' <<<"$out" || fail "three runs expected without --lockstep: $out"
echo "bench_lockstep_test: ok"
