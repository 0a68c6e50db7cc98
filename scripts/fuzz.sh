#!/usr/bin/env bash
# fuzz.sh -- build the libFuzzer targets and run them for a while.
#
#   scripts/fuzz.sh [-j N] [SECONDS] [TARGET...]
#
# Builds the fuzz configuration in build-fuzz/ (clang, -DMM_FUZZ=ON, as
# scripts/test.sh does) and runs each TARGET (parser, response, utf7, names,
# state; default: all of tests/fuzz/fuzz_*.c) for SECONDS (default 600), N
# at a time (default 1).  Each run starts from a scratch copy of the target's
# seed corpus, tests/fuzz/corpus-TARGET, and keeps what it finds in
# build-fuzz/fuzz-runs/TARGET/ (corpus/, artifacts/, log).  Prints, per
# target, the executions and the final coverage (libFuzzer's cov: and ft:);
# exits non-zero if any target crashed, leaked or failed a check (the
# reproducer is in its artifacts/; rerun it with build-fuzz/tests/fuzz/fuzz_TARGET
# ARTIFACT).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$REPO/build-fuzz
RUNS=$BUILD/fuzz-runs

usage() {
	echo "usage: fuzz.sh [-j N] [SECONDS] [TARGET...]" >&2
	exit 64
}

jobs=1
if [ "${1:-}" = -j ]; then
	[ $# -ge 2 ] || usage
	jobs=$2
	shift 2
fi
case $jobs in '' | *[!0-9]* | 0) usage ;; esac
seconds=600
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
	seconds=$1
	shift
fi
[ "$seconds" -gt 0 ] || usage
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for src in "$REPO"/tests/fuzz/fuzz_*.c; do
		t=${src##*/fuzz_}
		targets+=("${t%.c}")
	done
fi
for t in "${targets[@]}"; do
	if [ ! -f "$REPO/tests/fuzz/fuzz_$t.c" ] ||
	    [ ! -d "$REPO/tests/fuzz/corpus-$t" ]; then
		echo "fuzz.sh: no target $t (tests/fuzz/fuzz_$t.c and corpus-$t)" >&2
		exit 64
	fi
done
command -v clang >/dev/null || {
	echo "fuzz.sh: the fuzz targets need clang" >&2
	exit 1
}

echo "==== build-fuzz: configure and build"
cmake -S "$REPO" -B "$BUILD" -DCMAKE_C_COMPILER=clang -DMM_FUZZ=ON \
    -DMM_SANITIZE=OFF >/dev/null || exit 1
build_targets=()
for t in "${targets[@]}"; do
	build_targets+=(--target "fuzz_$t")
done
cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" \
    "${build_targets[@]}" || exit 1

# run_one TARGET: one bounded run; its status goes to $RUNS/TARGET/status.
run_one() {
	local t=$1 dir=$RUNS/$1 status
	rm -rf "$dir"
	mkdir -p "$dir/artifacts"
	cp -R "$REPO/tests/fuzz/corpus-$t" "$dir/corpus"
	"$BUILD/tests/fuzz/fuzz_$t" -max_total_time="$seconds" \
	    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" \
	    "$dir/corpus" >"$dir/log" 2>&1
	status=$?
	# A crash may be reported by a leak check after the last run.
	if [ "$status" -eq 0 ] && [ -n "$(ls -A "$dir/artifacts")" ]; then
		status=1
	fi
	echo "$status" >"$dir/status"
}

echo "==== fuzzing ${targets[*]} for $seconds s each, $jobs at a time"
running=0
for t in "${targets[@]}"; do
	if [ "$running" -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
	echo "fuzz.sh: $t started"
	run_one "$t" &
	running=$((running + 1))
done
wait

failed=0
echo
echo "==== summary"
printf '%-10s %-6s %14s %8s %8s %8s\n' target result execs exec/s cov ft
for t in "${targets[@]}"; do
	dir=$RUNS/$t
	status=$(cat "$dir/status" 2>/dev/null || echo 1)
	# "#1234	DONE   cov: 321 ft: 1234 corp: ..."
	done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE ' "$dir/log" | tail -n1)
	cov=$(sed -n 's/.* cov: \([0-9]*\) .*/\1/p' <<<"$done_line")
	ft=$(sed -n 's/.* ft: \([0-9]*\) .*/\1/p' <<<"$done_line")
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -n1)
	if [ "$status" -eq 0 ]; then
		result=ok
	else
		result=FAILED
		failed=1
	fi
	printf '%-10s %-6s %14s %8s %8s %8s\n' "$t" "$result" "${execs:--}" \
	    "${rate:--}" "${cov:--}" "${ft:--}"
done
if [ "$failed" -ne 0 ]; then
	echo
	for t in "${targets[@]}"; do
		dir=$RUNS/$t
		[ "$(cat "$dir/status" 2>/dev/null || echo 1)" -eq 0 ] && continue
		echo "==== $t: FAILED (log $dir/log)"
		grep -E -m 20 'ERROR|SUMMARY|deadly|Test unit written|==[0-9]+==' \
		    "$dir/log"
		ls "$dir/artifacts"
	done
fi
exit "$failed"
