#!/usr/bin/env bash
# coverage.sh -- line coverage of daemon/ from the unit tests (gcc --coverage, plain gcov).
#
#   scripts/coverage.sh [--all] [--build-dir DIR] [--fail-under PCT] [--uncovered FILE]...
#
#   --all             run every test (unit and integration), not only `ctest -L unit`
#   --build-dir DIR   the instrumented build (default: build-cov at the top of the repo)
#   --fail-under PCT  exit non-zero when the total line coverage is below PCT
#   --uncovered FILE  also list the line numbers no test ran in FILE (daemon/mirror/mirror.c)
#
# Configures DIR with gcc, no sanitizers, -O0 and MM_COVERAGE=ON, builds it, clears the
# counters of any earlier run, runs the tests, then prints each source file under daemon/
# with its executable lines, the lines run and the percentage, and the total.  A source
# built into several binaries (cli.c into the daemon and into test_cli) counts a line
# as run when any of them ran it.  Files that no test binary links count with all their
# lines unrun.  Needs only gcc's gcov and python3 (both in scripts/deps.sh already).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$REPO/build-cov
ALL=0
FAIL_UNDER=
UNCOVERED=()
while [ $# -gt 0 ]; do
	case $1 in
	--all) ALL=1 ;;
	--build-dir) DIR=$(realpath -m "$2"); shift ;;
	--fail-under) FAIL_UNDER=$2; shift ;;
	--uncovered) UNCOVERED+=("$(realpath -m "$2")"); shift ;;
	-h | --help) sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) echo "coverage.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
JOBS=$(nproc 2>/dev/null || echo 2)

# -O0 for exact line counts.
cmake -S "$REPO" -B "$DIR" -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=Debug \
    -DMM_SANITIZE=OFF -DMM_FUZZ=OFF -DMM_COVERAGE=ON >/dev/null || exit 1
cmake --build "$DIR" -j "$JOBS" || exit 1

# Counters add up across runs: start from none.
find "$DIR" -name '*.gcda' -delete
if [ "$ALL" = 1 ]; then
	labels=()
else
	labels=(-L unit)
fi
(cd "$DIR" && ctest --output-on-failure -j "$JOBS" "${labels[@]}")
test_status=$?

python3 - "$DIR" "$REPO/daemon" "${FAIL_UNDER:-0}" "${UNCOVERED[@]}" <<'EOF'
import json, os, subprocess, sys, tempfile

build, src, fail_under = sys.argv[1], os.path.realpath(sys.argv[2]), float(sys.argv[3])
uncovered = sys.argv[4:]
def instrumented(note):
    """A .gcno whose object is still built with coverage (a target built
    without it since, like the ThreadSanitizer one, leaves a stale one)."""
    try:
        with open(note[:-len(".gcno")] + ".o", "rb") as f:
            return b"__gcov" in f.read()
    except OSError:
        return False

notes = [os.path.join(d, f) for d, _, fs in os.walk(build) for f in fs
         if f.endswith(".gcno") and instrumented(os.path.join(d, f))]
lines = {}  # source path -> {line number: times run, summed over every object}
with tempfile.TemporaryDirectory() as scratch:
    for note in sorted(notes):
        # gcov reads NAME.gcda beside NAME.gcno; without one, every line counts 0.
        out = subprocess.run(["gcov", "--json-format", "--stdout", note],
                             cwd=scratch, capture_output=True, text=True).stdout
        for doc in out.splitlines():
            if not doc.startswith("{"):
                continue
            for f in json.loads(doc)["files"]:
                path = os.path.realpath(os.path.join(os.path.dirname(note), f["file"])
                                        if not os.path.isabs(f["file"]) else f["file"])
                if not path.startswith(src + os.sep):
                    continue
                per = lines.setdefault(path, {})
                for ln in f["lines"]:
                    per[ln["line_number"]] = per.get(ln["line_number"], 0) + ln["count"]

total = run = 0
print(f"\n{'file':<40} {'lines':>6} {'run':>6} {'cover':>7}")
for path in sorted(lines):
    n = len(lines[path])
    r = sum(1 for c in lines[path].values() if c > 0)
    total += n
    run += r
    print(f"{os.path.relpath(path, os.path.dirname(src)):<40} {n:>6} {r:>6} "
          f"{100.0 * r / n if n else 100.0:>6.1f}%")
pct = 100.0 * run / total if total else 0.0
print(f"{'total':<40} {total:>6} {run:>6} {pct:>6.1f}%")
for path in uncovered:
    missed = sorted(n for n, c in lines.get(path, {}).items() if c == 0)
    ranges = []
    for n in missed:
        if ranges and ranges[-1][1] == n - 1:
            ranges[-1][1] = n
        else:
            ranges.append([n, n])
    print(f"\nnot run in {os.path.relpath(path, os.path.dirname(src))}: " +
          ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges))
sys.exit(1 if pct < fail_under else 0)
EOF
summary_status=$?
if [ "$test_status" -ne 0 ]; then
	echo "coverage.sh: some tests failed (the figures count what ran)" >&2
	exit 1
fi
exit "$summary_status"
