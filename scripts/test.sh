#!/usr/bin/env bash
# test.sh -- build mboxmirror and run every test, as CI does.
#
#   build/       gcc, no sanitizers             unit + integration tests
#   build-asan/  clang (else gcc), ASan+UBSan    unit + integration tests
#   build-fuzz/  clang, libFuzzer                the fuzz tests, 10 s each (skipped without clang;
#                                                scripts/fuzz.sh runs them for longer)
#
# Installs missing packages first (scripts/deps.sh).  Every configuration runs even when
# an earlier one failed; the exit status is non-zero when anything failed.  Works from
# any directory, as root or as an ordinary user (with sudo for the install step).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=$(nproc 2>/dev/null || echo 2)
# Tests at a time: twice the cores, as the integration tests spend most of their time
# waiting for the server or the daemon (the ones that measure timings take turns
# through a ctest resource lock, see tests/integration/CMakeLists.txt).
CTEST_JOBS=${MM_CTEST_JOBS:-$((JOBS * 2))}
start_all=$SECONDS

bash "$REPO/scripts/deps.sh" || {
	echo "test.sh: installing dependencies failed" >&2
	exit 1
}

summary=()
total_pass=0
total_fail=0
failed=0

# run_config NAME CC CTEST-ARGS... -- CMAKE-ARGS...
run_config() {
	local name=$1 cc=$2
	shift 2
	local ctest_args=() cmake_args=() t0=$SECONDS log status pass fail
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		ctest_args+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift
	cmake_args=("$@")
	local dir=$REPO/$name
	log=$(mktemp)

	echo "==== $name: configure ($cc ${cmake_args[*]})"
	if ! cmake -S "$REPO" -B "$dir" -DCMAKE_C_COMPILER="$cc" "${cmake_args[@]}"; then
		summary+=("$name: FAILED at configure ($((SECONDS - t0)) s)")
		total_fail=$((total_fail + 1))
		failed=1
		return
	fi
	echo "==== $name: build"
	if ! cmake --build "$dir" -j "$JOBS"; then
		summary+=("$name: FAILED to build ($((SECONDS - t0)) s)")
		total_fail=$((total_fail + 1))
		failed=1
		return
	fi
	echo "==== $name: ctest ${ctest_args[*]}"
	(cd "$dir" && ctest --output-on-failure -j "$CTEST_JOBS" --no-tests=ignore \
	    "${ctest_args[@]}") 2>&1 | tee "$log"
	status=${PIPESTATUS[0]}
	# "100% tests passed, 0 tests failed out of 37"
	fail=$(sed -n 's/.*tests passed, \([0-9]*\) tests\{0,1\} failed out of \([0-9]*\).*/\1/p' "$log" | tail -n1)
	pass=$(sed -n 's/.*tests passed, \([0-9]*\) tests\{0,1\} failed out of \([0-9]*\).*/\2/p' "$log" | tail -n1)
	rm -f "$log"
	if [ -z "$pass" ]; then
		fail=0
		pass=0
	else
		pass=$((pass - fail))
	fi
	if [ "$status" -ne 0 ] && [ "$fail" = 0 ]; then
		fail=1
	fi
	total_pass=$((total_pass + pass))
	total_fail=$((total_fail + fail))
	if [ "$status" -eq 0 ]; then
		summary+=("$name: ok, $pass passed, $fail failed ($((SECONDS - t0)) s)")
	else
		summary+=("$name: FAILED, $pass passed, $fail failed ($((SECONDS - t0)) s)")
		failed=1
	fi
}

if command -v clang >/dev/null; then
	ASAN_CC=clang
else
	ASAN_CC=gcc
fi

run_config build gcc -- -DMM_SANITIZE=OFF -DMM_FUZZ=OFF
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    run_config build-asan "$ASAN_CC" -- -DMM_SANITIZE=ON -DMM_FUZZ=OFF
if command -v clang >/dev/null; then
	run_config build-fuzz clang -L fuzz -- -DMM_FUZZ=ON -DMM_SANITIZE=OFF \
	    -DMM_FUZZ_SECONDS=10
else
	summary+=("build-fuzz: skipped (no clang)")
fi

echo
echo "==== summary"
for line in "${summary[@]}"; do
	echo "test.sh: $line"
done
echo "test.sh: total time $((SECONDS - start_all)) s"
echo "total: $total_pass passed, $total_fail failed"
exit "$failed"
